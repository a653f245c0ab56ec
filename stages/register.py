"""Stage ``register``: fit the final model on train, evaluate it once on test, register it.

The only stage that reads the test split. Writes the model bundle (``models/model.skops``
+ ``models/model.json``, deterministic) and its serving export (``models/serving/``: plain
arrays and LightGBM model text that the API loads without scikit-learn; format in
docs/serving-bundle.md), test metrics and plots for DVC, then logs the run
to MLflow, registers a version of ``housing_price_model`` as ``challenger`` and moves
``champion`` to it only if the promotion gates pass (every move is signed: docs/signing.md).
The candidate in ``models/`` is never served: the registry's champion is exported, signed, to
``champion/``, outside the stage's hashed outputs. Registry ids and timestamps go to an
uncached report, so they never break byte-identical rebuilds.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import choices, stage
from housing.artifact import META_FILE, MODEL_FILE, TRUSTED_TYPES, save_bundle
from housing.contract import TARGET, Contract
from housing.io import read_json, read_yaml, write_csv, write_json
from housing.metrics import PRICE_CAP, bootstrap_rmse_ci, regression_report, rmse
from housing.model import ModelSpec, build_model
from housing.registry.committed import git_commit
from housing.serving import SERVING_DIR
from housing.serving.export import ExportError, write_serving

logger = logging.getLogger(__name__)

TRAIN, TEST = Path("data/split/train.parquet"), Path("data/split/test.parquet")
CONTRACT = Path("data/contract.json")
BEST_PARAMS = Path("models/best_params.yaml")
SWEEP_SUMMARY = Path("reports/sweep/summary.json")
BUNDLE_DIR = Path("models")
METRICS = Path("reports/register/metrics.json")
PRED_PLOT = Path("reports/register/predicted_vs_actual.csv")
BAND_PLOT = Path("reports/register/residuals_by_band.csv")
IMPORTANCE_PLOT = Path("reports/register/feature_importance.csv")
REGISTRATION = Path("reports/register/registration.json")
# The registry's champion, signed: what `make serve` and the GCS publisher serve. Not a stage
# output (it depends on the registry's state and on a randomised signature): docs/governance.md.
CHAMPION_DIR = Path("champion")
DVC_LOCK = Path("dvc.lock")
RAW_DATA = "data/raw/housing.csv"
PRICE_BANDS = (0, 100_000, 200_000, 300_000, 400_000, 500_000, np.inf)


def evaluate(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """Test metrics: the headline set, bootstrap 95% CI of RMSE, RMSE on capped districts."""
    out: dict[str, Any] = regression_report(y_true, y_pred)
    lo, hi = bootstrap_rmse_ci(y_true, y_pred, n_resamples=n_resamples, seed=seed)
    capped = y_true >= PRICE_CAP
    out.update(
        rmse_ci95_low=lo,
        rmse_ci95_high=hi,
        rmse_capped=rmse(y_true[capped], y_pred[capped]) if capped.any() else None,
        n_capped=int(capped.sum()),
        n_test=len(y_true),
    )
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def residuals_by_band(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """RMSE, MAE and mean residual of predictions in each band of actual price."""
    bands = pd.cut(y_true, PRICE_BANDS, right=False)
    frame = pd.DataFrame({"band": bands, "residual": y_pred - y_true})
    rows = []
    for band, group in frame.groupby("band", observed=True):
        res = group["residual"].to_numpy()
        upper = "inf" if np.isinf(band.right) else f"{band.right / 1000:.0f}k"
        rows.append(
            {
                "band": f"{band.left / 1000:.0f}k-{upper}",
                "rmse": float(np.sqrt(np.mean(res**2))),
                "mae": float(np.mean(np.abs(res))),
                "mean_residual": float(res.mean()),
                "n": len(res),
            }
        )
    return pd.DataFrame(rows)


def feature_importance(model: Any) -> pd.DataFrame:
    """The regressor's own importances (gain for LightGBM), by feature name, largest first."""
    pipe = model.regressor_
    reg = pipe.named_steps["regressor"]
    names = list(pipe[:-1].get_feature_names_out())
    if hasattr(reg, "booster_"):
        values = reg.booster_.feature_importance(importance_type="gain")
    elif hasattr(reg, "feature_importances_"):
        values = reg.feature_importances_
    elif hasattr(reg, "named_steps") and "ridge" in reg.named_steps:
        values = np.abs(reg.named_steps["ridge"].coef_)
    else:
        return pd.DataFrame({"feature": names, "importance": np.nan})
    values = np.asarray(values, float)
    frame = pd.DataFrame({"feature": names, "importance": values / values.sum()})
    return frame.sort_values("importance", ascending=False, kind="stable")


def raw_data_md5(lock: Path = DVC_LOCK) -> str:
    """md5 of the raw CSV as recorded in dvc.lock (the data version this model saw)."""
    data = read_yaml(lock) or {}
    for out in data.get("stages", {}).get("download", {}).get("outs", []):
        if out.get("path") == RAW_DATA:
            return str(out["md5"])
    return "unknown"


def description(spec: ModelSpec, metrics: dict[str, Any], sweep: dict[str, Any]) -> str:
    """Markdown description of the run for the MLflow UI."""
    return "\n".join(
        [
            "### California housing price model",
            f"- family: **{spec.family}**, imputer: `{spec.imputer}`",
            f"- features: `{spec.features.to_dict()}`",
            f"- sweep `{sweep.get('sweep_id')}` ({sweep.get('engine')}): "
            f"{sweep.get('n_trials')} trials, {sweep.get('n_pruned')} pruned, "
            f"best CV RMSE {sweep.get('best_value', float('nan')):,.0f}",
            f"- test RMSE **{metrics['rmse']:,.0f}** "
            f"(95% CI {metrics['rmse_ci95_low']:,.0f} to {metrics['rmse_ci95_high']:,.0f}), "
            f"R² **{metrics['r2']:.3f}**, MAE {metrics['mae']:,.0f}",
            "- trained on the stratified train split only; test split read once, here.",
        ]
    )


def _register(**kwargs: Any) -> Any:
    """Register with MLflow, logging only the bundle (model, metadata, serving export)."""
    from housing.registry import log_and_register

    with tempfile.TemporaryDirectory() as tmp:
        for name in (MODEL_FILE, META_FILE):
            shutil.copy2(BUNDLE_DIR / name, Path(tmp) / name)
        shutil.copytree(BUNDLE_DIR / SERVING_DIR, Path(tmp) / SERVING_DIR)
        return log_and_register(bundle_dir=Path(tmp), **kwargs)


def main() -> None:
    p = stage.params("register")
    seed = int(p["seed"])
    best = read_yaml(BEST_PARAMS)
    contract = Contract.from_dict(read_json(CONTRACT))
    spec = ModelSpec(
        imputer=choices.imputer(),
        features=choices.features(),
        family=best["family"],
        params=best["params"],
        seed=seed,
    )
    train = pd.read_parquet(TRAIN)
    model = build_model(spec, categories=contract.categories)
    model.fit(train.drop(columns=[TARGET]), train[TARGET])

    test = pd.read_parquet(TEST)  # the one read of the test split
    y_test = test[TARGET].to_numpy(float)
    y_pred = model.predict(test.drop(columns=[TARGET]))
    metrics = evaluate(y_test, y_pred, n_resamples=int(p["bootstrap_resamples"]), seed=seed)

    write_json(METRICS, metrics)
    write_csv(PRED_PLOT, pd.DataFrame({"actual": y_test, "predicted": y_pred}))
    write_csv(BAND_PLOT, residuals_by_band(y_test, y_pred))
    write_csv(IMPORTANCE_PLOT, feature_importance(model))

    sweep = read_json(SWEEP_SUMMARY)
    data_md5 = raw_data_md5()
    meta = {
        "name": p["model_name"],
        "spec": {
            "imputer": spec.imputer,
            "features": spec.features.to_dict(),
            "family": spec.family,
            "params": dict(spec.params),
            "seed": seed,
        },
        "contract": contract.to_dict(),
        "metrics": metrics,
        "data_md5": data_md5,
        "sweep_id": sweep.get("sweep_id"),
        "sweep_engine": sweep.get("engine"),
    }
    try:
        serving_sha = write_serving(BUNDLE_DIR / SERVING_DIR, model, contract=contract.to_dict())
    except ExportError as exc:
        raise stage.StageError(f"cannot write the serving bundle: {exc}") from exc
    meta["serving_sha256"] = serving_sha
    sha = save_bundle(BUNDLE_DIR, model, meta)
    logger.info("test RMSE %.0f, R² %.4f; bundle sha256 %s", metrics["rmse"], metrics["r2"], sha)

    from housing.registry import (
        EvalSet,
        GateConfig,
        RegistryError,
        decision_report,
        test_fingerprint,
    )
    from housing.registry.committed import bundle_scorer
    from housing.registry.lookup import SERVING_SHA_TAG

    # The paired gate re-scores the champion on these same rows from its versioned serving
    # bundle, so the candidate is scored the same way, from the bundle just written (what the
    # API will serve). The reports above use the fitted pipeline's predictions (equal to
    # ~1e-12 relative: the bundle sums the trees in another order).
    scorer = bundle_scorer(test.drop(columns=[TARGET]))
    evaluation = EvalSet(
        y_true=y_test,
        predictions=scorer(BUNDLE_DIR, {SERVING_SHA_TAG: serving_sha}),
        fingerprint=test_fingerprint(test.index.to_numpy(), y_test),
        data_md5=data_md5,
    )

    try:
        registration = _register(
            sk_model=model,
            params={"spec": meta["spec"]},
            metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
            tags={
                "git_commit": git_commit(),
                "data_md5": data_md5,
                "sweep_id": str(sweep.get("sweep_id")),
                "sweep_engine": str(sweep.get("engine")),
                "model_family": spec.family,
                SERVING_SHA_TAG: serving_sha,
            },
            plots=[PRED_PLOT, BAND_PLOT, IMPORTANCE_PLOT, METRICS],
            description=description(spec, metrics, sweep),
            input_example=test.drop(columns=[TARGET]).head(5),
            gates=GateConfig.from_mapping(
                p["gates"], n_resamples=int(p["bootstrap_resamples"]), seed=seed
            ),
            evaluation=evaluation,
            score_champion=scorer,
            trusted_types=TRUSTED_TYPES,
            model_name=p["model_name"],
            experiment=p["experiment"],
        )
    except (RegistryError, ValueError) as exc:
        raise stage.StageError(f"registration failed: {exc}") from exc
    write_json(
        REGISTRATION,
        {
            "name": registration.name,
            "version": registration.version,
            "run_id": registration.run_id,
            "model_uri": registration.model_uri,
            "artifact_sha256": registration.artifact_sha256,
            "promoted": registration.promoted,
            "decision": registration.decision.reason,
            "previous_champion": registration.previous_champion,
            "gate": decision_report(registration.decision),
            "promotion_sequence": registration.promotion_sequence,
        },
    )
    logger.info(
        "registered %s v%s: %s",
        registration.name,
        registration.version,
        "promoted to champion" if registration.promoted else "held as challenger",
    )
    from housing.registry.signed import export_champion

    try:
        record = export_champion(CHAMPION_DIR, model_name=p["model_name"])
    except RegistryError as exc:
        raise stage.StageError(f"exporting the champion failed: {exc}") from exc
    if record is not None:
        logger.info(
            "%s/ now holds the champion: v%s (promotion #%d)",
            CHAMPION_DIR,
            record.version,
            record.sequence,
        )


if __name__ == "__main__":
    stage.run(main)
