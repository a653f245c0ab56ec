"""Turn settings into the ordered list of configured sources, saying why any is skipped."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from serve.config import Settings
from serve.sources.base import ModelSource

if TYPE_CHECKING:
    from serve.sources.registry import RegistrySource

logger = logging.getLogger(__name__)


def build_sources(settings: Settings) -> tuple[list[ModelSource], list[str]]:
    """Configured sources in MODEL_SOURCES order, and one line per source left out."""
    sources: list[ModelSource] = []
    skipped: list[str] = []
    limit = settings.context_points
    keys = settings.verify_keys
    for name in dict.fromkeys(settings.model_sources):
        if name == "registry":
            if not settings.mlflow_tracking_uri:
                skipped.append("registry: not configured (MLFLOW_TRACKING_URI is not set)")
                continue
            from serve.sources.registry import RegistrySource

            sources.append(
                RegistrySource(
                    settings.mlflow_tracking_uri,
                    model_name=settings.model_name,
                    alias=settings.model_alias,
                    context_limit=limit,
                    keys=keys,
                )
            )
        elif name == "gcs":
            if not settings.gcs_bucket:
                skipped.append("gcs: not configured (GCS_BUCKET is not set)")
                continue
            from serve.sources.gcs import GcsSource

            sources.append(
                GcsSource(
                    settings.gcs_bucket,
                    settings.gcs_prefix,
                    endpoint_url=settings.gcs_endpoint_url,
                    project=settings.gcs_project,
                    model_name=settings.model_name,
                    context_limit=limit,
                    keys=keys,
                )
            )
        elif name == "local":
            from serve.sources.local import LocalSource

            sources.append(
                LocalSource(
                    settings.local_model_dir,
                    model_name=settings.model_name,
                    context_limit=limit,
                    keys=keys,
                )
            )
    return sources, skipped


def build_challenger_source(settings: Settings) -> RegistrySource | None:
    """The registry's ``challenger`` as a source, verified like the champion (same keys,
    model name and context limit); None when no MLflow tracking URI is configured.

    Its ``load()`` raises ``NoAliasError`` (a SourceError) while the registry has no
    challenger, and a SourceError for a challenger without a valid signed record.
    """
    if not settings.mlflow_tracking_uri:
        return None
    from serve.sources.registry import RegistrySource

    return RegistrySource.challenger(
        settings.mlflow_tracking_uri,
        model_name=settings.model_name,
        context_limit=settings.context_points,
        keys=settings.verify_keys,
    )
