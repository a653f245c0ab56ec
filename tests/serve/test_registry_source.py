"""The registry source against a real SQLite MLflow registry: alias, lineage, reload, tamper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings

from serve.main import create_app

pytestmark = pytest.mark.slow


def _register(uri: str, bundle: Path, train, *, r2: float, rmse: float, commit: str) -> Any:
    from housing.artifact import TRUSTED_TYPES, load_bundle
    from housing.contract import TARGET
    from housing.registry import GateConfig, log_and_register

    model = load_bundle(bundle).model
    return log_and_register(
        sk_model=model,
        bundle_dir=bundle,
        params={"seed": 42},
        metrics={"r2": r2, "rmse": rmse},
        tags={"git_commit": commit, "data_md5": "md5-x"},
        plots=[],
        description="serve test",
        input_example=train.drop(columns=[TARGET]).head(3),
        gates=GateConfig(min_r2=0.0, max_rmse=1e9, max_regression_pct=100.0),
        trusted_types=list(TRUSTED_TYPES),
        tracking_uri=uri,
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory, model_bundle_dir, small_train):
    root = tmp_path_factory.mktemp("serve-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        reg = _register(uri, model_bundle_dir, small_train, r2=0.88, rmse=39_000, commit="c1")
    return uri, root, reg


def _settings(uri: str, **kw: Any):
    return make_settings(
        model_sources=("registry", "local"),
        mlflow_tracking_uri=uri,
        local_model_dir=Path("/nonexistent"),
        admin_token="tok",
        **kw,
    )


def test_serves_the_champion_with_lineage(registry):
    uri, _, reg = registry
    with TestClient(create_app(_settings(uri))) as c:
        info = c.get("/api/v1/model").json()
        assert info["source"] == "registry"
        assert info["version"] == reg.version and info["alias"] == "champion"
        assert info["run_id"] == reg.run_id and info["git_commit"] == "c1"
        assert info["sha256"] == reg.artifact_sha256
        assert info["metrics"]["rmse"] == pytest.approx(39_000)
        example = c.get("/api/v1/contract").json()["example"]
        body = c.post("/api/v1/predict", json={"instances": [example]}).json()
        assert body["model_alias"] == "champion" and body["model_version"] == reg.version


def test_alias_move_is_picked_up_by_reload(registry, bundle_v2, small_train):
    uri, root, first = registry
    with TestClient(create_app(_settings(uri))) as c:
        assert c.get("/ready").json()["model_version"] == first.version
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(root)
            second = _register(uri, bundle_v2, small_train, r2=0.9, rmse=38_000, commit="c2")
        assert second.promoted
        out = c.post("/api/v1/admin/reload", headers={"Authorization": "Bearer tok"}).json()
        assert out == {"reloaded": True, "model_version": second.version, "error": None}
        assert c.get("/api/v1/model").json()["git_commit"] == "c2"


def test_tampered_registry_artifact_is_refused(registry, tmp_path):
    uri, root, _ = registry
    from housing.registry import version_for_alias

    info = version_for_alias("champion", tracking_uri=uri)
    files = list(
        (root / "mlartifacts").rglob(f"{info.run_id}/artifacts/bundle/serving/booster.txt")
    )
    assert files, "the bundle artifact should be under mlartifacts/"
    original = files[0].read_bytes()
    try:
        files[0].write_bytes(original[:-10] + b"0123456789")
        store_app = create_app(_settings(uri))
        with TestClient(store_app) as c:
            assert c.get("/ready").status_code == 503
            errors = c.get("/api/v1/model").json()["load_errors"]
            assert any(e.startswith("registry:") and "sha256 mismatch" in e for e in errors)
    finally:
        files[0].write_bytes(original)
