"""The source cascade (registry → GCS → local), sha256 verification, and reload outcomes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from serve_support import REPO_ROOT, copy_bundle, make_settings, server_env, settings_for

from housing.signing import KeyRing
from serve.main import create_app
from serve.metrics import ServeMetrics
from serve.model_store import ModelStore
from serve.sources import build_sources


def _tamper(bundle: Path) -> None:
    """Flip one byte of the served booster, leaving model.json and the manifest as they were."""
    path = bundle / "serving" / "booster.txt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _store(settings) -> ModelStore:
    sources, skipped = build_sources(settings)
    return ModelStore(sources, ServeMetrics(), skipped=skipped)


def test_tampered_local_artifact_is_refused(model_bundle_dir, tmp_path, caplog):
    bad = copy_bundle(model_bundle_dir, tmp_path / "bad")
    _tamper(bad)
    store = _store(make_settings(local_model_dir=bad))
    assert store.load_initial() is False
    assert store.current is None
    assert "serving/booster.txt was modified" in store.load_errors[0]
    assert "serving/booster.txt was modified" in caplog.text


def test_the_served_contract_is_the_hashed_copy_not_model_json(model_bundle_dir, tmp_path):
    """A bundle promoted with a loosened contract in model.json: the record covers the edit,
    but requests are still checked against the serving bundle's hashed contract."""
    forged = Path(shutil.copytree(model_bundle_dir, tmp_path / "forged-candidate"))
    meta = json.loads((forged / "model.json").read_text())
    honest = json.loads(json.dumps(meta["contract"]))
    meta["contract"]["features"]["median_income"]["max"] = 1e9
    (forged / "model.json").write_text(json.dumps(meta))
    bundle = copy_bundle(forged, tmp_path / "forged")
    with TestClient(create_app(settings_for(bundle))) as client:
        assert client.get("/api/v1/contract").json() == honest
        row = dict(honest["example"], median_income=honest["features"]["median_income"]["max"] * 2)
        assert client.post("/api/v1/predict", json={"instances": [row]}).status_code == 422


def test_a_tampered_serving_contract_is_refused_naming_the_file(model_bundle_dir, tmp_path):
    bundle = copy_bundle(model_bundle_dir, tmp_path / "bad-contract")
    path = bundle / "serving" / "contract.json"
    contract = json.loads(path.read_text())
    contract["features"]["median_income"]["max"] = 1e9
    path.write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n")
    store = _store(make_settings(local_model_dir=bundle))
    assert store.load_initial() is False
    assert "serving/contract.json was modified" in store.load_errors[0]


def test_tampered_artifact_falls_through_to_the_next_source(
    model_bundle_dir, champion_dir, tmp_path, gcs_emulator
):
    gcs_emulator.upload_bundle(model_bundle_dir, "tampered", "champion")
    fs = gcs_emulator.filesystem()
    data = bytearray(fs.cat_file("tampered/champion/serving/booster.txt"))
    data[100] ^= 0xFF
    fs.pipe_file("tampered/champion/serving/booster.txt", bytes(data))
    settings = make_settings(
        model_sources=("gcs", "local"),
        gcs_bucket="tampered",
        gcs_endpoint_url=gcs_emulator.endpoint,
        local_model_dir=champion_dir,
    )
    store = _store(settings)
    assert store.load_initial() is True
    assert store.current.identity.source == "local"
    assert store.load_errors and "gcs:" in store.load_errors[0]
    assert "serving/booster.txt was modified" in store.load_errors[0]


def test_cascade_registry_unreachable_then_gcs(champion_dir, bundle_v2, tmp_path, gcs_emulator):
    """Registry down → the GCS object (from the emulator) serves, not the local file."""
    gcs_emulator.upload_bundle(bundle_v2, "cascade", "prod/model")
    settings = make_settings(
        model_sources=("registry", "gcs", "local"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}",
        gcs_bucket="cascade",
        gcs_prefix="prod/model",
        gcs_endpoint_url=gcs_emulator.endpoint,
        local_model_dir=champion_dir,
    )
    app = create_app(settings)
    with TestClient(app) as c:
        info = c.get("/api/v1/model").json()
        assert info["source"] == "gcs"
        assert info["sha256"] == json.loads((bundle_v2 / "model.json").read_text())["sha256"]
        assert any(
            e.startswith("registry:") and "no MLflow database" in e for e in info["load_errors"]
        )
        assert c.get("/ready").status_code == 200


def test_cascade_registry_and_gcs_down_then_local(champion_dir, tmp_path, gcs_emulator):
    """Registry unreachable, GCS object missing, GCS endpoint down: the local file serves."""
    for bucket, endpoint in (
        ("empty-bucket", gcs_emulator.endpoint),
        ("any", "http://127.0.0.1:9"),
    ):
        settings = make_settings(
            model_sources=("registry", "gcs", "local"),
            mlflow_tracking_uri="http://127.0.0.1:9",  # nothing listens on the discard port
            gcs_bucket=bucket,
            gcs_endpoint_url=endpoint,
            local_model_dir=champion_dir,
        )
        store = _store(settings)
        assert store.load_initial() is True
        assert store.current.identity.source == "local"
        registry_error, gcs_error = store.load_errors
        assert registry_error.startswith("registry:") and "unreachable" in registry_error
        assert gcs_error.startswith("gcs:")
        assert ("not found" in gcs_error) or ("unreachable" in gcs_error)


def test_unconfigured_sources_are_skipped_with_a_reason(model_bundle_dir):
    settings = make_settings(
        model_sources=("registry", "gcs", "local"), local_model_dir=model_bundle_dir
    )
    sources, skipped = build_sources(settings)
    assert [s.name for s in sources] == ["local"]
    assert skipped == [
        "registry: not configured (MLFLOW_TRACKING_URI is not set)",
        "gcs: not configured (GCS_BUCKET is not set)",
    ]


def test_mlflow_is_not_imported_without_a_registry(champion_dir):
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from serve.main import create_app\n"
        "from serve.config import Settings\n"
        f"s = Settings(_env_file=None, model_sources=('registry','gcs','local'), "
        f"local_model_dir={str(champion_dir)!r}, wandb_mode='disabled', "
        "load_in_background=False)\n"
        "with TestClient(create_app(s)) as c:\n"
        "    assert c.get('/ready').status_code == 200\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'mlflow', 'gcsfs', 'wandb'})\n"
        "assert not bad, bad\n"
    )
    env = server_env()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_failed_load_imports_no_yaml_or_training_stack(model_bundle_dir, tmp_path):
    bad = copy_bundle(model_bundle_dir, tmp_path / "bad")
    _tamper(bad)
    code = (
        "import sys\n"
        "from serve.config import Settings\n"
        "from serve.metrics import ServeMetrics\n"
        "from serve.model_store import ModelStore\n"
        "from serve.sources import build_sources\n"
        f"s = Settings(_env_file=None, model_sources=('local',), local_model_dir={str(bad)!r}, "
        "wandb_mode='disabled', load_in_background=False)\n"
        "sources, skipped = build_sources(s)\n"
        "store = ModelStore(sources, ServeMetrics(), skipped=skipped)\n"
        "assert store.load_initial() is False\n"
        "assert 'was modified' in store.load_errors[0], store.load_errors\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in {'yaml', 'sklearn', 'pandas', 'skops', 'mlflow'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_failed_reload_keeps_the_old_model_and_reports(model_bundle_dir, bundle_v2, tmp_path):
    live = copy_bundle(model_bundle_dir, tmp_path / "live")
    app = create_app(settings_for(live, admin_token="t"))
    auth = {"Authorization": "Bearer t"}
    with TestClient(app) as c:
        before = c.get("/api/v1/model").json()
        copy_bundle(bundle_v2, live)
        _tamper(live)
        outcome = c.post("/api/v1/admin/reload", headers=auth).json()
        assert outcome["reloaded"] is False and "was modified" in outcome["error"]
        after = c.get("/api/v1/model").json()
        assert after["sha256"] == before["sha256"]
        assert "was modified" in after["last_reload_error"]
        assert c.get("/ready").status_code == 200
        example = c.get("/api/v1/contract").json()["example"]
        assert c.post("/api/v1/predict", json={"instances": [example]}).status_code == 200
        assert "model_reload_failures_total 1.0" in c.get("/metrics").text
        copy_bundle(bundle_v2, live)  # fixed: the next check loads it and clears the error
        assert c.post("/api/v1/admin/reload", headers=auth).json()["reloaded"] is True
        final = c.get("/api/v1/model").json()
        assert final["last_reload_error"] is None and final["sha256"] != before["sha256"]


def test_reload_never_downgrades_to_a_lower_priority_source(
    model_bundle_dir, bundle_v2, tmp_path, gcs_emulator
):
    gcs_emulator.upload_bundle(model_bundle_dir, "prio", "m")
    settings = make_settings(
        model_sources=("gcs", "local"),
        gcs_bucket="prio",
        gcs_prefix="m",
        gcs_endpoint_url=gcs_emulator.endpoint,
        local_model_dir=copy_bundle(bundle_v2, tmp_path / "local"),
    )
    store = _store(settings)
    assert store.load_initial() and store.current.identity.source == "gcs"
    gcs_emulator.filesystem().rm("prio/m/promotion.json")  # GCS champion gone
    outcome = store.check_for_update()
    assert outcome.reloaded is False and "gcs:" in outcome.error
    assert store.current.identity.source == "gcs"  # still serving, not the local file
    gcs_emulator.upload_bundle(bundle_v2, "prio", "m")
    assert store.check_for_update().reloaded is True
    assert store.current.identity.source == "gcs"


def test_gcs_read_errors_do_not_carry_the_endpoint_password(tmp_path):
    """A real HTTP endpoint that fails quoting the URL it was called with (password and all),
    and a closed port: neither message carries the endpoint's password."""
    import http.server
    import threading

    from serve.sources.base import SourceError
    from serve.sources.gcs import GcsSource

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"backend error at {endpoint}{self.path}".encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    endpoint = f"http://user:gcsS3cret@127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for url in (endpoint, "http://user:gcsS3cret@127.0.0.1:9"):
            source = GcsSource(
                "bucket",
                "models",
                endpoint_url=url,
                project=None,
                model_name="m",
                context_limit=10,
                keys=KeyRing({}),
            )
            for call in (source.fingerprint, lambda s=source: s._fetch("x.json", tmp_path / "x")):
                try:
                    call()
                except SourceError as exc:
                    message = str(exc)
                    assert "gcsS3cret" not in message
                    if url == endpoint:
                        assert "cannot read gs://bucket/models/" in message and "503" in message
                    else:
                        assert "unreachable" in message
                else:
                    raise AssertionError("expected a SourceError")
    finally:
        server.shutdown()


def test_gcs_reads_objects_with_the_json_api_from_the_emulator(
    model_bundle_dir, tmp_path, gcs_emulator, monkeypatch
):
    """The light client against the emulator: a nested prefix with a space, an object name
    that needs quoting, the emulator's address from STORAGE_EMULATOR_HOST without a scheme,
    and a missing object named in one line."""
    from serve.sources.base import SourceError
    from serve.sources.gcs import GcsSource

    gcs_emulator.upload_bundle(model_bundle_dir, "light", "team a/prod/model")
    fs = gcs_emulator.filesystem()
    fs.pipe_file("light/team a/prod/model/odd name+#?.txt", b"quoted")
    host = gcs_emulator.endpoint.removeprefix("http://")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    source = GcsSource(
        "gs://light/",
        "/team a/prod/model/",
        endpoint_url=None,
        project=None,
        model_name="housing_price_model",
        context_limit=10,
        keys=KeyRing({}),
    )
    assert source.describe() == f"gs://light/team a/prod/model via {host}"
    assert source._fetch("odd name+#?.txt", tmp_path / "odd") == b"quoted"
    record = fs.cat_file("light/team a/prod/model/promotion.json")
    assert source._fetch("promotion.json", tmp_path / "p.json") == record
    assert (tmp_path / "p.json").read_bytes() == record
    try:
        source._fetch("absent.json", tmp_path / "absent")
    except SourceError as exc:
        assert str(exc) == "gs://light/team a/prod/model/absent.json not found"
    else:
        raise AssertionError("expected a SourceError")
    loaded = source.load()
    assert loaded.identity.source == "gcs"
