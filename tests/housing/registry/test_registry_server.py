"""log_and_register, list and resolve through a real ``mlflow server`` over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from registry_support import hgb_pipeline, register_kwargs, synthetic_frame, write_bundle

from housing.io import sha256_file
from housing.registry import list_versions, log_and_register, resolve

pytestmark = pytest.mark.slow


def test_register_and_resolve_through_a_tracking_server(
    mlflow_server: tuple[str, Path], tmp_path: Path, monkeypatch
):
    url, server_dir = mlflow_server
    monkeypatch.chdir(tmp_path)
    X, y = synthetic_frame(seed=3)
    model = hgb_pipeline(X, y)
    trusted = write_bundle(model, tmp_path / "bundle", note="server")
    plot = tmp_path / "plot.csv"
    plot.write_text("a,b\n1,2\n")
    kwargs = register_kwargs(
        model, tmp_path / "bundle", X, {"r2": 0.9, "rmse": 40_000.0}, trusted, plot, url
    )

    reg = log_and_register(**kwargs)
    assert reg.version == "1" and reg.promoted

    (info,) = list_versions(tracking_uri=url)
    assert info.aliases == ["champion"] and info.tags["artifact_sha256"] == reg.artifact_sha256

    resolved = resolve(tracking_uri=url, dst=tmp_path / "dl")
    assert resolved.version == "1"
    assert sha256_file(resolved.bundle_local_dir / "model.skops") == reg.artifact_sha256

    # The server stored the artifacts (proxied), not the client's working directory.
    stored = list((server_dir / "art").rglob("bundle/model.skops"))
    assert len(stored) == 1 and sha256_file(stored[0]) == reg.artifact_sha256
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()

    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    loaded = mlflow.sklearn.load_model("models:/housing_price_model@champion")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
