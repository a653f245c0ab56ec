"""Real MLflow registries for the registry tests: a SQLite one built once, and a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_support import (
    Scenario,
    hgb_pipeline,
    register_kwargs,
    ridge_pipeline,
    running_mlflow_server,
    synthetic_frame,
    test_rows,
    write_bundle,
)


@pytest.fixture(scope="session")
def registry_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Register three versions once per session (each registration costs seconds)."""
    from housing.registry import list_versions, log_and_register

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    scratch = tmp_path_factory.mktemp("cwd")
    X, y = synthetic_frame()
    test = test_rows()
    plot = root / "pred_vs_actual.csv"
    plot.write_text("actual,predicted\n1,1.1\n2,1.9\n")
    # The gate scores each model on the held-out rows (test RMSE: v1 21.5k, v2 39.0k, v3 12.3k);
    # the declared metrics are only what gets logged.
    plan = [
        ("1", ridge_pipeline(5.0, X, y), {"r2": 0.86, "rmse": 44_000.0}),  # first: promoted
        ("2", hgb_pipeline(X, y), {"r2": 0.86, "rmse": 44_800.0}),  # worse: held
        ("3", ridge_pipeline(1.0, X, y), {"r2": 0.87, "rmse": 43_000.0}),  # better: promoted
    ]
    models, bundles, regs, snaps = {}, {}, {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(scratch)  # anything MLflow wrongly writes to the cwd would land here
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for key, model, metrics in plan:
            bundle = root / f"bundle{key}"
            trusted = write_bundle(model, bundle, note=f"v{key}")
            kwargs = register_kwargs(model, bundle, X, metrics, trusted, plot, uri, test)
            regs[key] = log_and_register(**kwargs)
            snaps[key] = list_versions(tracking_uri=uri)
            models[key], bundles[key] = model, bundle
    return Scenario(root, uri, X, models, bundles, regs, snaps, plot, scratch)


@pytest.fixture
def registry_copy(registry_scenario: Scenario, tmp_path: Path) -> str:
    """A private copy of the scenario's database (artifacts shared, read-only) to mutate."""
    for path in registry_scenario.root.glob("mlflow.db*"):  # include -wal/-shm if present
        shutil.copy2(path, tmp_path / path.name)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real ``mlflow server`` (SQLite backend, proxied artifacts); yields (url, workdir)."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(workdir) as url:
        yield url, workdir
