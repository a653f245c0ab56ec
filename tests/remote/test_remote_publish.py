"""scripts/publish_model.py: only a signed champion is published, where the API's GCS source
reads it, and it serves.

Bad input (no keys, no record, unsigned, tampered, no bucket) fails with one clear line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from remote_support import create_bucket, serve_support

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "publish_model.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = serve_support().server_env()
    base = {k: v for k, v in base.items() if not k.startswith("GCS_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory, verify_pem) -> dict[str, str]:
    """The environment of a publisher that trusts the session's promotion key."""
    path = tmp_path_factory.mktemp("keys") / "signing-key.pub"
    path.write_text(verify_pem)
    return {"HOUSING_VERIFY_KEY_FILES": str(path)}


def test_no_verification_key_is_refused(signed_champion_dir):
    proc = _run("--champion-dir", str(signed_champion_dir), "--bucket", "b")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("publish_model: no verification keys: set ")


def test_a_directory_without_a_record_is_refused(tmp_path, model_bundle_dir, keys):
    for directory in (tmp_path, model_bundle_dir):  # nothing, and the stage's candidate
        proc = _run("--champion-dir", str(directory), "--bucket", "b", env=keys)
        assert proc.returncode == 2
        assert proc.stderr.strip() == (
            f"publish_model: {directory / 'promotion.json'} not found: {directory} is not a "
            "promoted champion (run the pipeline, or `housing-registry export --out champion`)"
        )


def test_unsigned_and_tampered_champions_are_refused(
    champion_dir, signed_champion_dir, keys, tmp_path
):
    unsigned = _run("--champion-dir", str(champion_dir), "--bucket", "b", env=keys)
    assert unsigned.returncode == 2 and "unsigned bundle" in unsigned.stderr
    bad = Path(shutil.copytree(signed_champion_dir, tmp_path / "bad"))
    data = bytearray((bad / "serving" / "booster.txt").read_bytes())
    data[10] ^= 1
    (bad / "serving" / "booster.txt").write_bytes(bytes(data))
    tampered = _run("--champion-dir", str(bad), "--bucket", "b", env=keys)
    assert tampered.returncode == 2
    assert (
        "refusing to publish" in tampered.stderr and "booster.txt was modified" in tampered.stderr
    )
    assert len(tampered.stderr.strip().splitlines()) == 1


def test_no_bucket_is_refused(signed_champion_dir):
    proc = _run("--champion-dir", str(signed_champion_dir))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "publish_model: no bucket: pass --bucket or set GCS_BUCKET"


@pytest.mark.slow
def test_unreachable_endpoint_and_missing_bucket(signed_champion_dir, keys, remote_emulator):
    port = serve_support().free_port()
    down = _run(
        "--champion-dir",
        str(signed_champion_dir),
        "--bucket",
        "b",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
        env=keys,
    )
    assert down.returncode == 2 and f"127.0.0.1:{port} unreachable" in down.stderr
    missing = _run(
        "--champion-dir",
        str(signed_champion_dir),
        "--bucket",
        "nope",
        env={"GCS_ENDPOINT_URL": remote_emulator.endpoint, **keys},
    )
    assert missing.returncode == 2
    assert "bucket gs://nope not found" in missing.stderr


@pytest.mark.slow
def test_published_champion_is_served_by_the_api_gcs_source(
    signed_champion_dir, keys, remote_emulator, tmp_path
):
    """Publish with the API's env names, then a real uvicorn with only the GCS source serves
    it, verifying the signature with the same key."""
    create_bucket(remote_emulator, "models-pub")
    env = {
        "GCS_BUCKET": "models-pub",
        "GCS_PREFIX": "prod/housing",
        "GCS_ENDPOINT_URL": remote_emulator.endpoint,
        **keys,
    }
    proc = _run("--champion-dir", str(signed_champion_dir), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "published the signed champion v1: gs://models-pub/prod/housing" in proc.stderr

    fs = remote_emulator.filesystem()
    for name in ("model.json", "model.sig", "promotion.json", "serving/manifest.json"):
        published = fs.cat_file(f"models-pub/prod/housing/{name}")
        assert published == (signed_champion_dir / name).read_bytes()
    assert not fs.exists("models-pub/prod/housing/model.skops")

    meta = json.loads((signed_champion_dir / "model.json").read_text())
    with serve_support().running_uvicorn(tmp_path, MODEL_SOURCES="gcs", **env) as server:
        info = httpx.get(f"{server.base_url}/api/v1/model", timeout=10).json()
        assert info["source"] == "gcs" and info["sha256"] == meta["sha256"]
        assert info["signed"] is True and info["version"] == "1"
        response = httpx.post(
            f"{server.base_url}/api/v1/predict",
            json={"instances": [meta["contract"]["example"]]},
            timeout=30,
        )
        assert (
            response.status_code == 200 and response.json()["predictions"][0]["predicted_price"] > 0
        )


@pytest.mark.slow
def test_a_restart_refuses_an_older_signed_champion_put_back_in_the_bucket(
    model_bundle_dir, signing_key, verify_pem, keys, remote_emulator, tmp_path
):
    """Replay across restarts, GCS source (serve/replay.py): v3 (sequence 5) is published
    and served; someone with write access to the bucket puts v2's genuine champion
    (sequence 4) back under the prefix, and the API restarts with the same
    REPLAY_STATE_DIR. In process (the API's app and GCS source), against the emulator."""
    from fastapi.testclient import TestClient

    from serve.main import create_app

    support = serve_support()
    create_bucket(remote_emulator, "models-replay")
    env = {
        "GCS_BUCKET": "models-replay",
        "GCS_PREFIX": "champion",
        "GCS_ENDPOINT_URL": remote_emulator.endpoint,
        **keys,
    }
    newer = support.copy_bundle(
        model_bundle_dir, tmp_path / "v3", key=signing_key, version="3", sequence=5
    )
    assert _run("--champion-dir", str(newer), env=env).returncode == 0
    settings = support.make_settings(
        model_sources=("gcs",),
        gcs_bucket="models-replay",
        gcs_prefix="champion",
        gcs_endpoint_url=remote_emulator.endpoint,
        housing_verify_keys=verify_pem,
        replay_state_dir=tmp_path / "replay",
    )
    with TestClient(create_app(settings)) as client:
        info = client.get("/api/v1/model").json()
        assert info["source"] == "gcs" and info["promotion"]["sequence"] == 5

    older = support.copy_bundle(
        model_bundle_dir, tmp_path / "v2", key=signing_key, version="2", sequence=4
    )
    fs = remote_emulator.filesystem()
    fs.rm("models-replay/champion", recursive=True)
    fs.put(f"{older}/", "models-replay/champion", recursive=True)
    assert json.loads(fs.cat_file("models-replay/champion/promotion.json"))["sequence"] == 4
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "refused: promotion sequence 4 (version 2) is older than 5 (version 3)" in str(
            ready.json()
        )
