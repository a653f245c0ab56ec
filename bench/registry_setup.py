"""A temporary SQLite MLflow registry holding the benchmarked bundle as the champion.

`make serve` serves the champion of ``sqlite:///mlflow.db``; the benchmark times the same
configuration against a registry of its own, so the project's mlflow.db is never touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def register_champion(model_dir: Path, root: Path, input_example: pd.DataFrame) -> str:
    """Register ``model_dir`` in a new registry under ``root``; return its tracking URI."""
    from housing.artifact import TRUSTED_TYPES, load_bundle
    from housing.registry import GateConfig, log_and_register

    uri = f"sqlite:///{root / 'mlflow.db'}"
    meta = json.loads((model_dir / "model.json").read_text())
    # As the register stage tags it: the registry source verifies the bundle against it.
    tags = {"git_commit": "bench", "data_md5": "bench"}
    if meta.get("serving_sha256"):
        tags["serving_sha256"] = str(meta["serving_sha256"])
    registration = log_and_register(
        sk_model=load_bundle(model_dir).model,
        bundle_dir=model_dir,
        params={"bench": True},
        metrics={"r2": 0.9, "rmse": 40_000.0},
        tags=tags,
        plots=[],
        description="serve_load benchmark",
        input_example=input_example,
        gates=GateConfig(min_r2=0.0, max_rmse=1e12),
        trusted_types=list(TRUSTED_TYPES),
        tracking_uri=uri,
        artifact_location=(root / "mlartifacts").as_uri(),
    )
    if not registration.promoted:
        raise RuntimeError(f"the benchmark bundle was not promoted to champion: {registration}")
    return uri
