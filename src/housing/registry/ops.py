"""Registry operations: log + register a candidate, list, promote, roll back, resolve an alias.

Aliases carry the lifecycle (registry stages are deprecated in MLflow 3): ``champion`` is what
the API serves, ``challenger`` the newest candidate the gates held back. Every move of
``champion`` is recorded on the version (``promotion.*`` tags) and appended to the registered
model's ``champion_history`` tag, which is what :func:`rollback` walks back through.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.io import sha256_file
from housing.registry.gates import Decision, GateConfig, evaluate_gates
from housing.registry.records import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    Registration,
    RegistryError,
    ResolvedModel,
    VersionInfo,
)
from housing.registry.tracking import (
    check_reachable,
    default_artifact_location,
    is_not_found,
    make_client,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT_PATH = "bundle"
PLOTS_ARTIFACT_PATH = "plots"
MODEL_ARTIFACT_NAME = "model"
BUNDLE_MODEL_FILE = "model.skops"
HISTORY_TAG = "champion_history"
HISTORY_MAX = 200
METRIC_TAG_PREFIX = "metric."
SHA_TAG = "artifact_sha256"
NOTE_TAG = "mlflow.note.content"
_PARAM_VALUE_MAX = 6000

_MODEL_DESCRIPTION = """\
California housing price model (median house value of a district, in USD).

Registered by the pipeline's `register` stage; each version carries its metrics
(`metric.*`), `git_commit`, `data_md5` and the sha256 of its `bundle/model.skops`
as version tags.

**Aliases**
- `champion`: the version the prediction API serves.
- `challenger`: the newest candidate that the promotion gates held back.

Promotions and rollbacks are recorded in `promotion.*` version tags and in the
`champion_history` model tag; use `housing-registry list|promote|rollback|show`.
"""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms_to_iso(ms: int | None) -> str:
    if not ms:
        return ""
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


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


def _metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                metrics[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                logger.warning("version tag %s=%r is not a number; ignored", key, value)
    return metrics


def _version_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    """Metrics from the version's ``metric.*`` tags, else from its run (versions made elsewhere)."""
    metrics = _metrics_from_tags(mv.tags or {})
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


def _aliases_by_version(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Version -> aliases, from the registered model (version searches omit aliases on SQL)."""
    by_version: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def _version_info(
    client: MlflowClient, mv: ModelVersion, aliases: dict[str, list[str]] | None = None
) -> VersionInfo:
    if aliases is None:
        aliases = _aliases_by_version(client, mv.name)
    return VersionInfo(
        version=str(mv.version),
        aliases=_aliases_sorted(aliases.get(str(mv.version), [])),
        run_id=mv.run_id or "",
        metrics=_version_metrics(client, mv),
        tags=dict(mv.tags or {}),
        created_at=_ms_to_iso(mv.creation_timestamp),
    )


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:
        if is_not_found(exc):
            raise RegistryError(f"model {name!r} has no version {version!r}") from exc
        raise


def _get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or None (read from the model: stores differ on errors)."""
    version = (client.get_registered_model(name).aliases or {}).get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def _require_model(client: MlflowClient, name: str, uri: str) -> Any:
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            raise RegistryError(f"no registered model named {name!r} at {uri}") from exc
        raise


def _read_history(client: MlflowClient, name: str) -> list[str]:
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("model tag %s is not JSON; starting a new history", HISTORY_TAG)
        return []
    return [str(v) for v in history] if isinstance(history, list) else []


def _write_history(client: MlflowClient, name: str, history: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_MAX:]))


def _set_champion(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    reason: str,
    mode: str,
    previous: str | None,
    history: list[str],
) -> None:
    """Point ``champion`` at ``version`` and record who it replaced, when, why and how."""
    client.set_registered_model_alias(name, CHAMPION, version)
    if str((client.get_registered_model(name).aliases or {}).get(CHALLENGER)) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    for key, value in {
        "promotion.decision": "promoted",
        "promotion.mode": mode,
        "promotion.reason": reason,
        "promotion.at": _now_iso(),
        "promotion.previous_champion": previous or "",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    _write_history(client, name, history)


def _validate_inputs(bundle_dir: Path, plots: Sequence[Path], metrics: Mapping[str, float]) -> Path:
    model_file = Path(bundle_dir) / BUNDLE_MODEL_FILE
    if not model_file.is_file():
        raise RegistryError(f"bundle_dir {bundle_dir} has no {BUNDLE_MODEL_FILE}")
    for plot in plots:
        if not Path(plot).is_file():
            raise RegistryError(f"plot {plot} does not exist")
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RegistryError(f"metric {key!r} must be a number, got {value!r}")
    return model_file


def _version_description(description: str, decision: Decision, metrics: Mapping[str, float]) -> str:
    rows = "\n".join(f"| {key} | {value:.6g} |" for key, value in sorted(metrics.items()))
    verdict = "promoted to `champion`" if decision.promote else "held as `challenger`"
    return (
        f"{description.strip()}\n\n**Gates:** {verdict}. {decision.reason}\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n"
    )


def log_and_register(
    *,
    sk_model: Any,
    bundle_dir: Path,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    plots: Sequence[Path],
    description: str,
    input_example: pd.DataFrame,
    gates: GateConfig,
    trusted_types: Sequence[str],
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    experiment: str = "housing-price",
    artifact_location: str | None = None,
) -> Registration:
    """Log a run, register its model as a new version, gate it, and promote it if it passes.

    The new version gets ``challenger``; if the gates pass against the current champion's
    metrics it takes ``champion`` instead. ``artifact_location`` applies only when the
    experiment is created (default: ``mlartifacts/`` beside a SQLite database).
    """
    bundle_dir = Path(bundle_dir)
    model_file = _validate_inputs(bundle_dir, plots, metrics)
    artifact_sha256 = sha256_file(model_file)
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=False)

    import mlflow
    from mlflow.models import infer_signature

    with translated(f"registering {model_name!r} at {uri}"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = make_client(uri)
        experiment_id = _experiment_id(client, experiment, artifact_location, uri)
        str_tags = {str(k): str(v) for k, v in tags.items()}
        float_metrics = {str(k): float(v) for k, v in metrics.items()}

        with mlflow.start_run(experiment_id=experiment_id) as run:
            run_id = run.info.run_id
            mlflow.log_params(flatten_params(params))
            mlflow.log_metrics(float_metrics)
            mlflow.set_tags({**str_tags, NOTE_TAG: description})
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
            )
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)

        version_tags = {
            **str_tags,
            SHA_TAG: artifact_sha256,
            **{f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in float_metrics.items()},
        }
        mv = mlflow.register_model(model_info.model_uri, model_name, tags=version_tags)
        version = str(mv.version)
        client.update_registered_model(model_name, description=_MODEL_DESCRIPTION)
        client.set_registered_model_alias(model_name, CHALLENGER, version)

        champion_mv = _get_alias(client, model_name, CHAMPION)
        previous = str(champion_mv.version) if champion_mv is not None else None
        champion_metrics = (
            _version_metrics(client, champion_mv) if champion_mv is not None else None
        )
        decision = evaluate_gates(float_metrics, champion_metrics, gates)
        logger.info("%s version %s: %s", model_name, version, decision.reason)

        if decision.promote:
            history = _read_history(client, model_name)
            if not history and previous is not None:
                history = [previous]
            _set_champion(
                client,
                model_name,
                version,
                reason=decision.reason,
                mode="gates",
                previous=previous,
                history=[*history, version],
            )
        else:
            for key, value in {
                "promotion.decision": "held",
                "promotion.mode": "gates",
                "promotion.reason": decision.reason,
                "promotion.at": _now_iso(),
                "promotion.previous_champion": previous or "",
            }.items():
                client.set_model_version_tag(model_name, version, key, value)
        client.update_model_version(
            model_name, version, description=_version_description(description, decision, metrics)
        )

    return Registration(
        name=model_name,
        version=version,
        run_id=run_id,
        model_uri=f"models:/{model_name}/{version}",
        artifact_sha256=artifact_sha256,
        decision=decision,
        promoted=decision.promote,
        previous_champion=previous,
    )


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None, uri: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            raise RegistryError(f"experiment {name!r} is deleted; restore it or pick another name")
        return existing.experiment_id
    location = artifact_location or default_artifact_location(uri)
    return client.create_experiment(name, artifact_location=location)


def list_versions(
    model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> list[VersionInfo]:
    """Every version of ``model_name``, newest first, with aliases, metrics and tags."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"listing {model_name!r} at {uri}"):
        client = make_client(uri)
        _require_model(client, model_name, uri)
        escaped = model_name.replace("'", "\\'")
        versions = client.search_model_versions(f"name='{escaped}'")
        aliases = _aliases_by_version(client, model_name)
        infos = [_version_info(client, mv, aliases) for mv in versions]
    return sorted(infos, key=lambda info: int(info.version), reverse=True)


def version_for_alias(
    alias: str = CHAMPION, model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> VersionInfo:
    """The version an alias points at, without downloading anything."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"reading {model_name}@{alias} at {uri}"):
        client = make_client(uri)
        _require_model(client, model_name, uri)
        mv = _get_alias(client, model_name, alias)
        if mv is None:
            raise RegistryError(f"model {model_name!r} has no version with alias {alias!r}")
        return _version_info(client, client.get_model_version(model_name, str(mv.version)))


def promote(
    version: str, reason: str, model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> VersionInfo:
    """Make ``version`` the champion by hand, recording the previous champion, time and reason."""
    if not reason or not reason.strip():
        raise RegistryError("a reason is required to promote a version")
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"promoting {model_name} version {version} at {uri}"):
        client = make_client(uri)
        _require_model(client, model_name, uri)
        target = str(_get_version(client, model_name, str(version)).version)
        current_mv = _get_alias(client, model_name, CHAMPION)
        current = str(current_mv.version) if current_mv is not None else None
        if current == target:
            raise RegistryError(f"version {target} of {model_name!r} is already the champion")
        history = _history_ending_at(client, model_name, current)
        _set_champion(
            client,
            model_name,
            target,
            reason=reason.strip(),
            mode="manual",
            previous=current,
            history=[*history, target],
        )
        logger.info("%s: champion %s -> %s (%s)", model_name, current, target, reason)
        return _version_info(client, client.get_model_version(model_name, target))


def _history_ending_at(client: MlflowClient, name: str, current: str | None) -> list[str]:
    """The champion history, made to end at the current champion if the alias moved elsewhere."""
    history = _read_history(client, name)
    if current is not None and (not history or history[-1] != current):
        history.append(current)
    return history


def rollback(
    reason: str, model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> VersionInfo:
    """Move ``champion`` back to the previous champion in the history; repeatable."""
    if not reason or not reason.strip():
        raise RegistryError("a reason is required to roll back")
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"rolling back {model_name} at {uri}"):
        client = make_client(uri)
        _require_model(client, model_name, uri)
        current_mv = _get_alias(client, model_name, CHAMPION)
        if current_mv is None:
            raise RegistryError(f"model {model_name!r} has no champion to roll back from")
        current = str(current_mv.version)
        history = _history_ending_at(client, model_name, current)
        history.pop()  # the current champion
        target: str | None = None
        while history:
            candidate = history[-1]
            try:
                _get_version(client, model_name, candidate)
            except RegistryError:
                logger.warning("version %s in the history no longer exists; skipped", candidate)
                history.pop()
                continue
            target = candidate
            break
        if target is None:
            raise RegistryError(
                f"nothing to roll back to: {model_name!r} has no earlier champion than "
                f"version {current}"
            )
        now = _now_iso()
        _set_champion(
            client,
            model_name,
            target,
            reason=reason.strip(),
            mode="rollback",
            previous=current,
            history=history,
        )
        client.set_model_version_tag(model_name, current, "rollback.at", now)
        client.set_model_version_tag(model_name, current, "rollback.reason", reason.strip())
        logger.info("%s: rolled champion back %s -> %s (%s)", model_name, current, target, reason)
        return _version_info(client, client.get_model_version(model_name, target))


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
        _require_model(client, model_name, uri)
        mv = _get_alias(client, model_name, alias)
        if mv is None:
            raise RegistryError(f"model {model_name!r} has no version with alias {alias!r}")
        tags = dict(mv.tags or {})
        sha = tags.get(SHA_TAG)
        if not sha:
            raise RegistryError(
                f"{model_name} version {mv.version} has no {SHA_TAG} tag; not registered by housing"
            )
        if not mv.run_id:
            raise RegistryError(f"{model_name} version {mv.version} has no run")
        target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="housing-model-"))
        target.mkdir(parents=True, exist_ok=True)
        local = client.download_artifacts(mv.run_id, BUNDLE_ARTIFACT_PATH, dst_path=str(target))
        metrics = _version_metrics(client, mv)
    return ResolvedModel(
        name=model_name,
        version=str(mv.version),
        alias=alias,
        run_id=mv.run_id,
        artifact_sha256=sha,
        bundle_local_dir=Path(local),
        metrics={k: v for k, v in metrics.items() if math.isfinite(v)},
        tags=tags,
    )
