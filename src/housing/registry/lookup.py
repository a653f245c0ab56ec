"""Read side of the registry: versions, aliases and metrics; list, show and resolve.

Shared by the write modules (register, promote) for their reads; nothing here writes.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.registry.records import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    RegistryError,
    ResolvedModel,
    VersionInfo,
)
from housing.registry.tracking import (
    check_reachable,
    is_not_found,
    make_client,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT_PATH = "bundle"
METRIC_TAG_PREFIX = "metric."
SHA_TAG = "artifact_sha256"  # version tag: sha256 of bundle/model.skops
SERVING_SHA_TAG = "serving_sha256"  # version tag: sha256 of the serving bundle (manifest)


def ms_to_iso(ms: int | None) -> str:
    if not ms:
        return ""
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                metrics[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                logger.warning("version tag %s=%r is not a number; ignored", key, value)
    return metrics


def version_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    """Metrics from the version's ``metric.*`` tags, else from its run (versions made elsewhere)."""
    metrics = metrics_from_tags(mv.tags or {})
    if metrics or not mv.run_id:
        return metrics
    try:
        return dict(client.get_run(mv.run_id).data.metrics)
    except Exception as exc:
        if is_not_found(exc):
            return {}
        raise


def _aliases_sorted(aliases: Sequence[str]) -> list[str]:
    order = {CHAMPION: 0, CHALLENGER: 1}
    return sorted(aliases, key=lambda alias: (order.get(alias, 2), alias))


def aliases_by_version(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Version -> aliases, from the registered model (version searches omit aliases on SQL)."""
    by_version: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def version_info(
    client: MlflowClient, mv: ModelVersion, aliases: dict[str, list[str]] | None = None
) -> VersionInfo:
    if aliases is None:
        aliases = aliases_by_version(client, mv.name)
    return VersionInfo(
        version=str(mv.version),
        aliases=_aliases_sorted(aliases.get(str(mv.version), [])),
        run_id=mv.run_id or "",
        metrics=version_metrics(client, mv),
        tags=dict(mv.tags or {}),
        created_at=ms_to_iso(mv.creation_timestamp),
    )


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:
        if is_not_found(exc):
            raise RegistryError(f"model {name!r} has no version {version!r}") from exc
        raise


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version number ``alias`` points at right now, or None."""
    version = (client.get_registered_model(name).aliases or {}).get(alias)
    return None if version is None else str(version)


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or None (read from the model: stores differ on errors)."""
    version = alias_version(client, name, alias)
    return None if version is None else client.get_model_version(name, version)


def require_model(client: MlflowClient, name: str, uri: str) -> Any:
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            raise RegistryError(f"no registered model named {name!r} at {uri}") from exc
        raise


def download_bundle(client: MlflowClient, mv: ModelVersion, dst: Path) -> Path:
    """Download the version's run ``bundle/`` artifacts under ``dst``; return the local dir."""
    if not mv.run_id:
        raise RegistryError(f"{mv.name} version {mv.version} has no run")
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(mv.run_id, BUNDLE_ARTIFACT_PATH, dst_path=str(dst)))


def list_versions(
    model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> list[VersionInfo]:
    """Every version of ``model_name``, newest first, with aliases, metrics and tags."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"listing {model_name!r} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        escaped = model_name.replace("'", "\\'")
        versions = client.search_model_versions(f"name='{escaped}'")
        aliases = aliases_by_version(client, model_name)
        infos = [version_info(client, mv, aliases) for mv in versions]
    return sorted(infos, key=lambda info: int(info.version), reverse=True)


def version_for_alias(
    alias: str = CHAMPION, model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> VersionInfo:
    """The version an alias points at, without downloading anything."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"reading {model_name}@{alias} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        mv = get_alias(client, model_name, alias)
        if mv is None:
            raise RegistryError(f"model {model_name!r} has no version with alias {alias!r}")
        return version_info(client, client.get_model_version(model_name, str(mv.version)))


def resolve(
    alias: str = CHAMPION,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    dst: Path | None = None,
) -> ResolvedModel:
    """Resolve ``alias`` to a version and download its run's ``bundle/`` to ``dst``.

    ``dst`` defaults to a fresh temp dir that the caller owns. The caller checks
    ``artifact_sha256`` against the downloaded ``model.skops`` before loading it.
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"resolving {model_name}@{alias} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        mv = get_alias(client, model_name, alias)
        if mv is None:
            raise RegistryError(f"model {model_name!r} has no version with alias {alias!r}")
        tags = dict(mv.tags or {})
        sha = tags.get(SHA_TAG)
        if not sha:
            raise RegistryError(
                f"{model_name} version {mv.version} has no {SHA_TAG} tag; not registered by housing"
            )
        target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="housing-model-"))
        local = download_bundle(client, mv, target)
        metrics = version_metrics(client, mv)
    return ResolvedModel(
        name=model_name,
        version=str(mv.version),
        alias=alias,
        run_id=mv.run_id,
        artifact_sha256=sha,
        bundle_local_dir=local,
        metrics={k: v for k, v in metrics.items() if math.isfinite(v)},
        tags=tags,
    )
