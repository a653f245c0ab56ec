"""scripts/publish_model.py: the bundle lands where the API's GCS source reads it, and it serves.

Bad input (missing bundle, mismatched bundle, no bucket) fails with one clear line.
"""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from remote_support import create_bucket, serve_support

from housing.io import sha256_file

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "publish_model.py"


@pytest.fixture(scope="module")
def publish_model():
    """The script's functions (it is a script, not a package module)."""
    return runpy.run_path(str(SCRIPT), run_name="publish_model")


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


def test_missing_bundle_is_one_clear_line(tmp_path):
    proc = _run("--model-dir", str(tmp_path), "--bucket", "b")
    assert proc.returncode == 2
    missing = tmp_path / "model.skops"
    assert proc.stderr.strip() == (
        f"publish_model: {missing} not found; run `dvc pull` (or `dvc repro`) first"
    )


def test_mismatched_bundle_is_refused(tmp_path, model_bundle_dir, publish_model):
    bundle = shutil.copytree(model_bundle_dir, tmp_path / "bundle")
    meta = json.loads((bundle / "model.json").read_text())
    meta["sha256"] = "0" * 64
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(publish_model["PublishError"], match="does not match"):
        publish_model["read_bundle"](bundle)


def test_no_bucket_is_refused(model_bundle_dir):
    proc = _run("--model-dir", str(model_bundle_dir))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "publish_model: no bucket: pass --bucket or set GCS_BUCKET"


@pytest.mark.slow
def test_unreachable_endpoint_and_missing_bucket(model_bundle_dir, remote_emulator, tmp_path):
    port = serve_support().free_port()
    down = _run(
        "--model-dir",
        str(model_bundle_dir),
        "--bucket",
        "b",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
    )
    assert down.returncode == 2 and f"127.0.0.1:{port} unreachable" in down.stderr
    missing = _run(
        "--model-dir",
        str(model_bundle_dir),
        "--bucket",
        "nope",
        env={"GCS_ENDPOINT_URL": remote_emulator.endpoint},
    )
    assert missing.returncode == 2
    assert "bucket gs://nope not found" in missing.stderr


@pytest.mark.slow
def test_published_bundle_is_served_by_the_api_gcs_source(
    model_bundle_dir, remote_emulator, tmp_path
):
    """Publish with the API's env names, then a real uvicorn with only the GCS source serves it."""
    create_bucket(remote_emulator, "models-pub")
    env = {
        "GCS_BUCKET": "models-pub",
        "GCS_PREFIX": "prod/housing",
        "GCS_ENDPOINT_URL": remote_emulator.endpoint,
    }
    proc = _run("--model-dir", str(model_bundle_dir), env=env)
    assert proc.returncode == 0, proc.stderr
    sha = sha256_file(model_bundle_dir / "model.skops")
    assert (
        f"published gs://models-pub/prod/housing/model.skops + model.json (sha256 {sha[:12]})"
        in proc.stderr
    )

    fs = remote_emulator.filesystem()
    for name in ("model.skops", "model.json"):
        assert (
            fs.cat_file(f"models-pub/prod/housing/{name}") == (model_bundle_dir / name).read_bytes()
        )

    example = json.loads((model_bundle_dir / "model.json").read_text())["contract"]["example"]
    with serve_support().running_uvicorn(tmp_path, MODEL_SOURCES="gcs", **env) as server:
        info = httpx.get(f"{server.base_url}/api/v1/model", timeout=10).json()
        assert info["source"] == "gcs" and info["sha256"] == sha
        response = httpx.post(
            f"{server.base_url}/api/v1/predict", json={"instances": [example]}, timeout=30
        )
        assert (
            response.status_code == 200 and response.json()["predictions"][0]["predicted_price"] > 0
        )
