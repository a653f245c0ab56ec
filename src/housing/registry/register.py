"""Registration: log a run, create a model version with its lineage tags, gate it, promote.

:func:`log_and_register` is the one code path for the register stage and for
``housing-registry register`` (which registers the committed bundle without the pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.io import sha256_file
from housing.registry.challenger import DROP, HOLD, move_challenger
from housing.registry.champion import ChampionScorer, score_version
from housing.registry.gates import (
    GATE_TAG_PREFIX,
    HELD,
    Decision,
    EvalSet,
    GateConfig,
    evaluate_gates,
    evaluate_metrics_only,
    gate_tags,
)
from housing.registry.history import actor
from housing.registry.log import experiment_id, log_run
from housing.registry.lookup import METRIC_TAG_PREFIX, SHA_TAG, alias_version, get_alias
from housing.registry.promote import decision_tags, move_champion, recover_champion, write_tags
from housing.registry.records import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    Registration,
    RegistryError,
)
from housing.registry.signed import signing_key
from housing.registry.tracking import (
    check_reachable,
    make_client,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

BUNDLE_MODEL_FILE = "model.skops"

_MODEL_DESCRIPTION = """\
California housing price model (median house value of a district, in USD).

Registered by the pipeline's `register` stage (or `housing-registry register`); each version
carries its metrics (`metric.*`), `git_commit`, `data_md5`, `test_fingerprint`, the gate's
evidence (`gate.*`) and the sha256 of its `bundle/model.skops` as version tags.

**Aliases**
- `champion`: the version the prediction API serves.
- `challenger`: the newest candidate that the promotion gates held back (none after a
  promotion); the API may score it in shadow.

Every move of either alias is signed and recorded: `promotion.*` / `challenger.*` version
tags, the model's `champion_event.<seq>` / `challenger_event.<seq>` tags; use
`housing-registry list|promote|rollback|challenger|history|show`.
"""


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


def _check_evaluation(evaluation: EvalSet, tags: Mapping[str, str]) -> None:
    declared = tags.get("data_md5")
    if declared is not None and declared != evaluation.data_md5:
        raise RegistryError(
            f"tag data_md5={declared!r} disagrees with the evaluation's {evaluation.data_md5!r}"
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
    evaluation: EvalSet | None = None,
    score_champion: ChampionScorer | None = None,
    force_promote_reason: str | None = None,
) -> Registration:
    """Log a run, register its model as a new version, gate it, and promote it if it passes.

    With ``evaluation`` (test targets, the candidate's predictions, the rows' fingerprint,
    the data md5) and ``score_champion`` (predicts the champion from its downloaded
    ``bundle/``), the paired gate decides; without them a champion cannot be compared and the
    candidate is held (fail closed). The champion moves only if it is still the version the
    gate compared against. ``force_promote_reason`` skips the gate's verdict (still
    recorded) and promotes as a manual, attributed move. A held version becomes the
    ``challenger`` (a signed move); a promoted one leaves no challenger (the previous one is
    dropped, signed). The signing key is looked up first: without one nothing is registered.
    """
    bundle_dir = Path(bundle_dir)
    model_file = _validate_inputs(bundle_dir, plots, metrics)
    if evaluation is not None:
        _check_evaluation(evaluation, tags)
    if force_promote_reason is not None and not force_promote_reason.strip():
        raise RegistryError("a reason is required to promote a version")
    artifact_sha256 = sha256_file(model_file)
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=False)
    key = signing_key()  # every outcome signs an alias move: fail before registering

    import mlflow

    with translated(f"registering {model_name!r} at {uri}"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = make_client(uri)
        str_tags = {str(k): str(v) for k, v in tags.items()}
        float_metrics = {str(k): float(v) for k, v in metrics.items()}
        run = log_run(
            experiment=experiment_id(client, experiment, artifact_location, uri),
            sk_model=sk_model,
            bundle_dir=bundle_dir,
            params=params,
            metrics=float_metrics,
            tags=str_tags,
            plots=plots,
            description=description,
            input_example=input_example,
            trusted_types=trusted_types,
        )
        version_tags = {
            **str_tags,
            SHA_TAG: artifact_sha256,
            **{f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in float_metrics.items()},
        }
        if evaluation is not None:
            version_tags["test_fingerprint"] = evaluation.fingerprint
        mv = mlflow.register_model(run.model_uri, model_name, tags=version_tags)
        version = str(mv.version)
        client.update_registered_model(model_name, description=_MODEL_DESCRIPTION)

        recover_champion(uri, model_name)  # a promotion a killed run recorded, completed
        champion_mv = get_alias(client, model_name, CHAMPION)
        previous = str(champion_mv.version) if champion_mv is not None else None
        if evaluation is None:
            decision = evaluate_metrics_only(float_metrics, previous, gates)
            evidence_tags = {
                f"{GATE_TAG_PREFIX}decision": decision.outcome,
                f"{GATE_TAG_PREFIX}reason": decision.reason,
            }
        else:
            evidence = (
                score_version(client, champion_mv, score_champion)
                if champion_mv is not None
                else None
            )
            decision = evaluate_gates(evaluation, evidence, gates)
            evidence_tags = gate_tags(decision, evaluation, gates)
        logger.info("%s version %s: %s", model_name, version, decision.reason)
        write_tags(client, model_name, version, evidence_tags)

        promoted, sequence = False, None
        if decision.promote or force_promote_reason:
            manual = force_promote_reason is not None
            reason = (
                f"{force_promote_reason.strip()} (manual; gates said: {decision.reason})"
                if force_promote_reason is not None
                else decision.reason
            )
            try:
                event = move_champion(
                    client,
                    uri,
                    model_name,
                    version,
                    expected_current=previous,
                    action="manual" if manual else "gates",
                    reason=reason,
                    key=key,
                )
                promoted, sequence = True, event.seq
            except RegistryError as exc:
                # The gate's "promoted" must not outlive a move that did not happen.
                write_tags(client, model_name, version, {f"{GATE_TAG_PREFIX}decision": HELD})
                now = alias_version(client, model_name, CHAMPION)
                if now == previous:
                    raise
                decision = Decision(
                    False,
                    f"Held: {exc}.",
                    HELD,
                    decision.candidate_rmse,
                    decision.bootstrap,
                    decision.champion_version,
                )
        if not promoted:
            write_tags(
                client,
                model_name,
                version,
                decision_tags(
                    decision="held",
                    mode="gates",
                    reason=decision.reason,
                    previous=previous,
                    who=actor(),
                ),
            )
        challenger_seq = _move_challenger(
            client, uri, model_name, version, promoted=promoted, reason=decision.reason, key=key
        )
        client.update_model_version(
            model_name, version, description=_version_description(description, decision, metrics)
        )

    return Registration(
        name=model_name,
        version=version,
        run_id=run.run_id,
        model_uri=f"models:/{model_name}/{version}",
        artifact_sha256=artifact_sha256,
        decision=decision,
        promoted=promoted,
        previous_champion=previous,
        gate_tags=evidence_tags,
        promotion_sequence=sequence,
        challenger_sequence=challenger_seq,
    )


def _move_challenger(
    client: Any,
    uri: str,
    name: str,
    version: str,
    *,
    promoted: bool,
    reason: str,
    key: Any,
) -> int | None:
    """A held version takes ``challenger``; a promoted one drops the previous challenger
    (held against a champion that is gone). Returns the challenger move's sequence number.

    The decision is recorded already, so a refused move (another registration took the
    sequence number at the same moment) is a warning, not a failed registration.
    """
    current = alias_version(client, name, CHALLENGER)
    if promoted and current is None:
        return None
    try:
        if promoted:
            why = f"v{version} was promoted to champion over it"
            event = move_challenger(
                client, uri, name, str(current), action=DROP, reason=why, key=key
            )
        else:
            event = move_challenger(client, uri, name, version, action=HOLD, reason=reason, key=key)
    except RegistryError as exc:
        logger.warning("%s version %s: the challenger did not move: %s", name, version, exc)
        return None
    return event.seq
