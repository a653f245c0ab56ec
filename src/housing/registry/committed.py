"""Register the committed model bundle (``models/``) without re-running the pipeline.

``housing-registry register`` uses this so a fresh registry (a new compose stack, a shared
server) can get its first champion from what ``dvc pull`` brought: the same
:func:`housing.registry.log_and_register` call as the register stage, with the same paired
gate on the same test split (read here for the gate and nothing else).
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from housing.registry.champion import ChampionScorer
from housing.registry.gates import EvalSet, GateConfig, test_fingerprint
from housing.registry.lookup import SERVING_SHA_TAG, SHA_TAG
from housing.registry.records import MODEL_NAME, Registration, RegistryError
from housing.registry.tracking import one_line

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

MODEL_FILE, META_FILE, SERVING_DIR = "model.skops", "model.json", "serving"
_METRIC_RTOL = 1e-6


def bundle_scorer(features: pd.DataFrame) -> ChampionScorer:
    """Score a downloaded ``bundle/`` on ``features`` (the test split without its target).

    Prefers the plain-data serving bundle (``serving/``, loadable whatever the feature
    classes became; verified against the version's ``serving_sha256`` tag), else the skops
    model verified against ``artifact_sha256`` (versions registered before the serving bundle).
    """

    def score(bundle: Path, tags: Mapping[str, str]) -> np.ndarray:
        from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES

        if (bundle / SERVING_DIR).is_dir():
            from housing.serving import load_serving

            model = load_serving(bundle, expected_sha256=tags.get(SERVING_SHA_TAG) or None)
            numeric = features[list(NUMERIC_FEATURES)].to_numpy(dtype=float)
            categories = np.array(
                [model.category_index(str(v)) for v in features[CATEGORICAL_FEATURE]]
            )
            return np.asarray(model.predict(numeric, categories), dtype=float)
        from housing.artifact import load_bundle

        sha = tags.get(SHA_TAG) or None
        return np.asarray(load_bundle(bundle, expected_sha256=sha).model.predict(features), float)

    return score


def git_commit(cwd: Path | None = None) -> str:
    """The current commit, with ``-dirty`` when the work tree has changes; "unknown" outside git."""
    try:
        run = {"capture_output": True, "text": True, "check": True, "cwd": cwd}
        sha = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()  # type: ignore[call-overload]
        dirty = subprocess.run(  # type: ignore[call-overload]
            ["git", "status", "--porcelain", "--untracked-files=no"], **run
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def register_committed(
    bundle_dir: Path,
    test_split: Path,
    *,
    gates: GateConfig,
    model_name: str = MODEL_NAME,
    experiment: str = "housing-price",
    tracking_uri: str | None = None,
    promote_reason: str | None = None,
    plots: Sequence[Path] = (),
    score_champion: ChampionScorer | None = None,
) -> Registration:
    """Register ``bundle_dir`` (model.skops + model.json [+ serving/]) and gate it.

    The candidate is re-scored on ``test_split`` and must reproduce the test RMSE its
    ``model.json`` records (else the bundle and the split come from different commits).
    ``promote_reason`` promotes whatever the gate says, recorded as a manual promotion.
    """
    import pandas as pd

    from housing.artifact import TRUSTED_TYPES, ArtifactError, bundle_only, load_bundle
    from housing.contract import TARGET
    from housing.registry.register import log_and_register

    bundle_dir, test_split = Path(bundle_dir), Path(test_split)
    try:
        bundle = load_bundle(bundle_dir)
    except ArtifactError as exc:
        raise RegistryError(f"cannot load the committed bundle: {exc}") from exc
    if not test_split.is_file():
        raise RegistryError(f"no test split at {test_split} (run `dvc pull` first)")
    test = pd.read_parquet(test_split)
    if TARGET not in test.columns:
        raise RegistryError(f"{test_split} has no {TARGET} column")
    features = test.drop(columns=[TARGET])
    y_true = test[TARGET].to_numpy(float)
    meta = bundle.meta
    scorer = score_champion or bundle_scorer(features)
    # Scored from the serving bundle like the champion (the skops model for older bundles).
    served = {SERVING_SHA_TAG: str(meta.get("serving_sha256") or "")}
    try:
        predictions = np.asarray(scorer(bundle_dir, served), float)
    except Exception as exc:
        raise RegistryError(f"cannot score the committed bundle: {one_line(exc)}") from None
    metrics = _numeric(meta.get("metrics") or {})
    recorded = metrics.get("rmse")
    rescored = float(np.sqrt(np.mean((predictions - y_true) ** 2)))
    if recorded is None or not math.isclose(recorded, rescored, rel_tol=_METRIC_RTOL):
        raise RegistryError(
            f"{bundle_dir / META_FILE} records test rmse {recorded} but the model scores "
            f"{rescored:.6f} on {test_split}: bundle and test split are from different commits"
        )
    data_md5 = str(meta.get("data_md5") or "unknown")
    evaluation = EvalSet(
        y_true=y_true,
        predictions=predictions,
        fingerprint=test_fingerprint(test.index.to_numpy(), y_true),
        data_md5=data_md5,
    )
    spec = meta.get("spec") or {}
    tags = {
        "git_commit": git_commit(),
        "data_md5": data_md5,
        "sweep_id": str(meta.get("sweep_id")),
        "sweep_engine": str(meta.get("sweep_engine")),
        "model_family": str(spec.get("family")),
        "registered_by": "housing-registry register",
    }
    if meta.get("serving_sha256"):
        tags[SERVING_SHA_TAG] = str(meta["serving_sha256"])
    description = (
        "### California housing price model (committed bundle)\n"
        f"- family: **{spec.get('family')}**; registered by `housing-registry register` "
        "from the committed `models/` without re-running the pipeline\n"
        f"- test RMSE **{rescored:,.0f}** (re-scored on {test_split.name})"
    )
    with bundle_only(bundle_dir) as staged:
        return log_and_register(
            sk_model=bundle.model,
            bundle_dir=staged,
            params={"spec": spec},
            metrics=metrics,
            tags=tags,
            plots=[p for p in plots if Path(p).is_file()],
            description=description,
            input_example=features.head(5),
            gates=gates,
            trusted_types=TRUSTED_TYPES,
            model_name=model_name,
            tracking_uri=tracking_uri,
            experiment=experiment,
            evaluation=evaluation,
            score_champion=scorer,
            force_promote_reason=promote_reason,
        )
