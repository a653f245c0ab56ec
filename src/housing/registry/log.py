"""MLflow run logging: params, metrics, tags, plots, the sklearn model and the bundle files."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.registry.lookup import BUNDLE_ARTIFACT_PATH
from housing.registry.records import RegistryError
from housing.registry.tracking import default_artifact_location

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

PLOTS_ARTIFACT_PATH = "plots"
MODEL_ARTIFACT_NAME = "model"
NOTE_TAG = "mlflow.note.content"
_PARAM_VALUE_MAX = 6000
# What loading the logged model needs, pinned to the versions that wrote it. Declared, so
# MLflow does not infer them: its inference re-loads the model in a subprocess (15-21 s of
# every registration, and a warning when `uv` is not on PATH). The API never reads them: it
# serves the bundle, not the MLflow model.
MODEL_DISTRIBUTIONS = ("scikit-learn", "lightgbm", "skops", "numpy", "scipy", "pandas")


def model_requirements() -> list[str]:
    """``name==version`` of each of MODEL_DISTRIBUTIONS as installed here."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_DISTRIBUTIONS]


def model_environment() -> dict[str, Any]:
    """The conda environment logged with the model: this Python and model_requirements().

    The file MLflow writes from ``pip_requirements``, declared whole: from those it also
    looks up the installed pip's version, and warned at every registration that uv's
    virtualenvs have none. MLflow adds its own ``mlflow==`` pin to the pip list.
    """
    import platform

    return {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={platform.python_version()}",
            "pip",
            {"pip": model_requirements()},
        ],
    }


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys with string values (lists as JSON), as MLflow stores them."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        if isinstance(value, list | tuple):
            text = json.dumps(list(value), default=str)
        else:
            text = str(value)
        if len(text) > _PARAM_VALUE_MAX:
            logger.warning("param %s is %d chars; truncated for MLflow", name, len(text))
            text = text[: _PARAM_VALUE_MAX - 3] + "..."
        flat[name] = text
    return flat


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite db) if missing."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            raise RegistryError(f"experiment {name!r} is deleted; restore it or pick another name")
        return existing.experiment_id
    location = artifact_location or default_artifact_location(uri)
    return client.create_experiment(name, artifact_location=location)


def log_run(
    *,
    experiment: str,
    sk_model: Any,
    bundle_dir: Path,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    plots: Sequence[Path],
    description: str,
    input_example: pd.DataFrame,
    trusted_types: Sequence[str],
) -> LoggedRun:
    """One run of ``experiment`` (id) with everything needed to reproduce and serve the model.

    The caller has set MLflow's tracking and registry URIs (``mlflow.start_run`` needs them).
    """
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params(flatten_params(params))
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags({**tags, NOTE_TAG: description})
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path=PLOTS_ARTIFACT_PATH)
        signature = infer_signature(input_example, sk_model.predict(input_example))
        model_info = mlflow.sklearn.log_model(
            sk_model,
            name=MODEL_ARTIFACT_NAME,
            signature=signature,
            input_example=input_example,
            serialization_format="skops",
            skops_trusted_types=list(trusted_types),
            conda_env=model_environment(),
        )
        mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)
    return LoggedRun(run_id=run.info.run_id, model_uri=model_info.model_uri)
