"""Helpers for the registry tests: tiny models, bundles, call arguments, a real mlflow server.

MLflow and scikit-learn are imported inside functions, so collecting fast tests stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from housing.registry.records import MODEL_NAME

SERVER_START_TIMEOUT_S = 240.0
# MLflow 3's server starts a job runner with huey consumers (for GenAI jobs) unless told not
# to; the registry never uses it, and it costs each server start seconds and processes.
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
FEATURES = ["median_income", "housing_median_age", "total_rooms"]
GATE_PARAMS = {"min_r2": 0.85, "max_rmse": 45_000, "max_delta_rmse": 300.0}
DATA_MD5 = "d41d8cd9"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthetic_frame(rows: int = 50, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A tiny regression problem with the shape of a few housing features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "median_income": rng.uniform(0.5, 15.0, rows),
            "housing_median_age": rng.uniform(1.0, 52.0, rows),
            "total_rooms": rng.uniform(100.0, 8000.0, rows),
        }
    )
    target = 40_000 * frame["median_income"] + 500 * frame["housing_median_age"]
    target = target + rng.normal(0.0, 10_000.0, rows)
    return frame, pd.Series(target, name="median_house_value")


def test_rows(rows: int = 300, seed: int = 9) -> tuple[pd.DataFrame, np.ndarray]:
    """Held-out rows for the paired gate (the models are fitted on ``synthetic_frame()``)."""
    X, y = synthetic_frame(rows=rows, seed=seed)
    return X, y.to_numpy(float)


test_rows.__test__ = False  # type: ignore[attr-defined]


def evaluation_for(model: Any, X_test: pd.DataFrame, y_test: np.ndarray) -> Any:
    """The gate's view of the candidate: its predictions on the test rows and their identity."""
    from housing.registry import EvalSet, test_fingerprint

    return EvalSet(
        y_true=y_test,
        predictions=np.asarray(model.predict(X_test), float),
        fingerprint=test_fingerprint(X_test.index.to_numpy(), y_test),
        data_md5=DATA_MD5,
    )


def skops_scorer(X_test: pd.DataFrame):
    """Score a downloaded ``bundle/`` on the test rows (the stage uses the serving bundle)."""

    def score(bundle: Path, tags: dict[str, str]) -> np.ndarray:
        import skops.io as sio

        path = bundle / "model.skops"
        model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return np.asarray(model.predict(X_test), float)

    return score


def ridge_pipeline(alpha: float, X: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X, y)


def hgb_pipeline(X: pd.DataFrame, y: pd.Series) -> Any:
    """A model whose skops file holds types skops does not trust by default (TreePredictor)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = HistGradientBoostingRegressor(max_iter=15, min_samples_leaf=5, random_state=0)
    return make_pipeline(StandardScaler(), model).fit(X, y)


def write_bundle(model: Any, bundle_dir: Path, note: str) -> list[str]:
    """Write model.skops + model.json like housing.artifact does; return its untrusted types."""
    import skops.io as sio

    bundle_dir.mkdir(parents=True, exist_ok=True)
    sio.dump(model, bundle_dir / "model.skops")
    (bundle_dir / "model.json").write_text(json.dumps({"note": note, "features": FEATURES}))
    return list(sio.get_untrusted_types(file=bundle_dir / "model.skops"))


@dataclass
class Scenario:
    """A SQLite registry with three versions: 1 champion, 2 held, 3 promoted over 1."""

    root: Path
    uri: str
    X: pd.DataFrame
    models: dict[str, Any]
    bundles: dict[str, Path]
    registrations: dict[str, Any]
    snapshots: dict[str, list[Any]]
    plot: Path
    scratch_cwd: Path
    kwargs: dict[str, Any] = field(default_factory=dict)


def register_kwargs(
    model: Any,
    bundle: Path,
    X: pd.DataFrame,
    metrics: dict[str, float],
    trusted: list[str],
    plot: Path,
    uri: str,
    test: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of log_and_register; with ``test``, the paired gate's inputs too."""
    from housing.registry import GateConfig

    extra: dict[str, Any] = {}
    if test is not None:
        extra = {
            "evaluation": evaluation_for(model, *test),
            "score_champion": skops_scorer(test[0]),
        }
    return {
        **extra,
        "sk_model": model,
        "bundle_dir": bundle,
        "params": {"train": {"engine": "ridge", "alpha": 1.0, "features": FEATURES}, "seed": 42},
        "metrics": metrics,
        "tags": {
            "git_commit": "abc123",
            "data_md5": DATA_MD5,
            "sweep_id": "sw-1",
            "engine": "optuna",
        },
        "plots": [plot],
        "description": "Ridge on three features, trained for the registry tests.",
        "input_example": X.head(3),
        "gates": GateConfig(**GATE_PARAMS, n_resamples=300),
        "trusted_types": trusted,
        "tracking_uri": uri,
    }


@contextlib.contextmanager
def running_mlflow_server(workdir: Path) -> Iterator[str]:
    """Start ``mlflow server`` on a free loopback port, wait for /health, stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(NO_JOB_RUNNER)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
        "--artifacts-destination", str(workdir / "art"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own session: the server and its workers
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def committed_bundle(
    directory: Path, train: pd.DataFrame, test: pd.DataFrame, *, n_estimators: int
) -> Path:
    """A real small LightGBM bundle as the register stage commits it: metrics on ``test``."""
    from housing.artifact import save_bundle
    from housing.contract import TARGET, derive_contract
    from housing.metrics import regression_report
    from housing.model import FeatureConfig, ModelSpec, build_model

    spec = ModelSpec(
        imputer="median",
        features=FeatureConfig(n_clusters=5, gamma=1.0, rotations=(30.0, 60.0), neighbors=8),
        family="lightgbm",
        params={"n_estimators": n_estimators, "num_leaves": 15},
        seed=42,
    )
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    y = test[TARGET].to_numpy(float)
    metrics = regression_report(y, model.predict(test.drop(columns=[TARGET])))
    meta = {
        "name": "housing_price_model",
        "spec": {
            "imputer": spec.imputer,
            "features": spec.features.to_dict(),
            "family": spec.family,
            "params": dict(spec.params),
            "seed": spec.seed,
        },
        "contract": derive_contract(train, margin=0.25).to_dict(),
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
        "data_md5": DATA_MD5,
        "sweep_id": "sw-test",
        "sweep_engine": "optuna",
    }
    save_bundle(directory, model, meta)
    return directory


def three_versions(tmp_path: Path, *, champion: str | None = "3") -> str:
    """A SQLite registry with versions 1-3, each a run holding only ``bundle/model.json``
    (every move signs a promotion record over the version's bundle files), ``champion``
    promoted; its URI."""
    from mlflow import MlflowClient

    from housing.registry import promote

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL_NAME)
    experiment = client.create_experiment("moves", (tmp_path / "artifacts").as_uri())
    for i in range(3):
        run_id = client.create_run(experiment).info.run_id
        meta = tmp_path / f"bundle{i}" / "model.json"
        meta.parent.mkdir()
        meta.write_text(json.dumps({"name": MODEL_NAME, "note": f"v{i + 1}"}))
        client.log_artifact(run_id, str(meta), artifact_path="bundle")
        client.set_terminated(run_id)
        client.create_model_version(MODEL_NAME, source=f"runs:/{run_id}/bundle", run_id=run_id)
    if champion is not None:
        promote(champion, "the starting champion", tracking_uri=uri, who="setup")
    return uri
