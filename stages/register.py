"""Stage ``register``: fit the final model on train, evaluate it once on test, register it.

Before the one fit on all of train, the final configuration is cross-validated on train
on folds of its own seed (``cv_folds``, ``cv_seed``), never those the choices were made on:
the pipeline's honest CV score. The same out-of-fold predictions calibrate the conformal
prediction interval (``interval_level``; docs/intervals.md) that the served model answers
with every price.

The only stage that reads the validation slice (the experiments' honest score,
``reports/register/validation.json``) and the test split. Writes the model bundle
(``models/model.skops`` + ``models/model.json``, deterministic) and its serving export
(``models/serving/``: plain arrays and LightGBM model text that the API loads without
scikit-learn, and the interval; format in docs/serving-bundle.md), test metrics (interval
coverage included) and plots for DVC, then logs the run to MLflow, registers a version of
``housing_price_model`` as ``challenger`` and moves ``champion`` to it only if the promotion
gates pass (every move is signed: docs/signing.md). The candidate in ``models/`` is never
served: the registry's champion is exported, signed, to ``champion/``, outside the stage's
hashed outputs. Registry ids and timestamps go to an
uncached report, so they never break byte-identical rebuilds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import choices, intervals, stage
from housing.artifact import TRUSTED_TYPES, bundle_only, save_bundle
from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, TARGET, Contract
from housing.cv import kfold, map_folds
from housing.io import read_json, read_yaml, write_csv, write_json
from housing.metrics import (
    PRICE_BANDS,
    PRICE_CAP,
    band_coverage_metric,
    bootstrap_rmse_ci,
    price_bands,
    regression_report,
    rmse,
)
from housing.model import ModelSpec, build_model
from housing.monitor.reference import build_reference
from housing.params.register import RegisterParams
from housing.registry.committed import git_commit
from housing.serving import SERVING_DIR
from housing.serving.export import ExportError, write_serving
from housing.workspace import in_experiment_copy, workspace_root

logger = logging.getLogger(__name__)

TRAIN, TEST = Path("data/split/train.parquet"), Path("data/split/test.parquet")
# Held out of train by the split stage; no stage before this one reads it: the final model's
# score on it is the experiments' honest score (what `dvc exp show` ranks on).
VALIDATION = Path("data/split/validation.parquet")
VALIDATION_METRICS = Path("reports/register/validation.json")
CONTRACT = Path("data/contract.json")
BEST_PARAMS = Path("models/best_params.yaml")
SWEEP_SUMMARY = Path("reports/sweep/summary.json")
BUNDLE_DIR = Path("models")
METRICS = Path("reports/register/metrics.json")
PRED_PLOT = Path("reports/register/predicted_vs_actual.csv")
BAND_PLOT = Path("reports/register/residuals_by_band.csv")
IMPORTANCE_PLOT = Path("reports/register/feature_importance.csv")
INTERVAL_PLOT = Path("reports/register/intervals_by_band.csv")
# This run's registration (run id, version, gate decision): new on every run, so it is not a
# DVC output and git ignores it (a run leaves git clean). MLflow and the champion's promotion
# record keep it for good; `make pipeline`'s summary reads this copy.
REGISTRATION = Path("reports/register/registration.json")
# The registry's champion, signed: what `make serve` and the GCS publisher serve. Not a stage
# output (it depends on the registry's state and on a randomised signature): docs/governance.md.
# Always the main workspace's (a `dvc exp run --temp` copy registers into its registry too).
CHAMPION_DIR = "champion"  # below the main workspace, also from `dvc exp run --temp`
DVC_LOCK = Path("dvc.lock")
RAW_DATA = "data/raw/housing.csv"


def out_of_fold(
    spec: ModelSpec,
    train: pd.DataFrame,
    *,
    n_splits: int,
    seed: int,
    categories: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Every training row's out-of-fold price and each fold's RMSE, for the model ``spec``.

    The whole model (``build_model``: preprocessing included) is refitted on each fold's
    other rows, so no validation row shapes the features it is scored with. The folds come
    from ``seed`` alone: pass one no choice was made on, and the mean RMSE is honest.
    """
    X = train.drop(columns=[TARGET])
    y = train[TARGET].to_numpy(float)
    splits = list(kfold(n_splits, seed).split(X))

    def one(numbered: tuple[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        number, (fit_idx, val_idx) = numbered
        start = time.perf_counter()
        model = build_model(spec, categories=categories).fit(X.iloc[fit_idx], y[fit_idx])
        pred = model.predict(X.iloc[val_idx])
        logger.info(
            "CV fold %d/%d: RMSE %.0f (%.1f s)",
            number,
            n_splits,
            rmse(y[val_idx], pred),
            time.perf_counter() - start,
        )
        return pred

    oof = np.full(len(y), np.nan)
    scores: list[float] = []
    for (_, val_idx), pred in zip(splits, map_folds(one, enumerate(splits, start=1)), strict=True):
        oof[val_idx] = pred
        scores.append(rmse(y[val_idx], pred))
    return oof, scores


def cv_metrics(scores: list[float]) -> dict[str, Any]:
    """The honest CV score: mean and standard deviation (ddof 0, as housing.cv) of folds.

    (The folds' count and seed are params, which dvc.lock records: not repeated here.)
    """
    values = np.asarray(scores, float)
    return {
        "cv_rmse": round(float(values.mean()), 6),
        "cv_rmse_std": round(float(values.std()), 6),
        "cv_rmse_folds": [round(float(v), 6) for v in values],
    }


@dataclass(frozen=True)
class Trained:
    """The final model fitted on all of train, its interval, and its honest CV scores."""

    model: Any
    interval: intervals.Interval
    cv: dict[str, Any]
    oof: np.ndarray | None = None  # the honest CV's out-of-fold prices, one per train row


def fit_final(
    spec: ModelSpec,
    train: pd.DataFrame,
    *,
    categories: tuple[str, ...] | None,
    level: float,
    cv_folds: int,
    cv_seed: int,
) -> Trained:
    """Cross-validate ``spec`` on train (folds of ``cv_seed``), calibrate the interval at
    ``level`` on its out-of-fold predictions, then fit the one served model on all of train.

    Raises ``ValueError`` when train is too small for the level (see housing.intervals).
    """
    oof, scores = out_of_fold(spec, train, n_splits=cv_folds, seed=cv_seed, categories=categories)
    cv = cv_metrics(scores)
    logger.info("honest CV RMSE %.0f ± %.0f", cv["cv_rmse"], cv["cv_rmse_std"])
    interval = intervals.calibrate(train[TARGET].to_numpy(float), oof, level)
    model = build_model(spec, categories=categories)
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    return Trained(model=model, interval=interval, cv=cv, oof=oof)


@dataclass(frozen=True)
class FinalReport:
    """Everything the stage reports about the final model: metrics.json and the plots."""

    metrics: dict[str, Any]
    predictions: pd.DataFrame
    bands: pd.DataFrame
    interval_bands: pd.DataFrame
    importance: pd.DataFrame


def score_on_validation(model: Any, validation: pd.DataFrame) -> dict[str, Any]:
    """The experiments' honest score: the final model on rows no choice saw.

    Every choice (imputer, features, family, hyperparameters, bag) was made by CV on train,
    and the honest CV's folds are train's too, so both carry some selection optimism (more
    trials lower the sweep's best CV by construction). These rows were held out of train by
    the split stage and are read here only.
    """
    y_true = validation[TARGET].to_numpy(float)
    y_pred = model.predict(validation.drop(columns=[TARGET]))
    report = regression_report(y_true, y_pred)
    return {
        "validation_rmse": round(float(report["rmse"]), 6),
        "validation_mae": round(float(report["mae"]), 6),
        "validation_r2": round(float(report["r2"]), 6),
        "n_validation": len(y_true),
    }


def report_on_test(
    trained: Trained, test: pd.DataFrame, *, n_resamples: int, seed: int
) -> FinalReport:
    """Test metrics (the honest CV score and the interval's coverage included) and plots."""
    y_test = test[TARGET].to_numpy(float)
    y_pred = trained.model.predict(test.drop(columns=[TARGET]))
    metrics = evaluate(y_test, y_pred, n_resamples=n_resamples, seed=seed)
    interval_metrics, interval_bands = interval_report(y_test, y_pred, trained.interval)
    return FinalReport(
        metrics={**metrics, **trained.cv, **interval_metrics},
        predictions=pd.DataFrame({"actual": y_test, "predicted": y_pred}),
        bands=residuals_by_band(y_test, y_pred),
        interval_bands=interval_bands,
        importance=feature_importance(trained.model),
    )


def interval_report(
    y_true: np.ndarray, y_pred: np.ndarray, interval: intervals.Interval
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Coverage and width of ``interval`` around ``y_pred`` on ``y_true``, overall and by band.

    The capped districts' recorded value is the census cap, not their price (which is at
    least that): their coverage says whether the interval reaches the cap.
    """
    low, high = interval.bounds(y_pred)
    width = high - low
    capped = y_true >= PRICE_CAP
    metrics: dict[str, Any] = {
        "interval_level": interval.level,
        "interval_coverage": intervals.coverage(y_true, low, high),
        "interval_mean_width": float(width.mean()),
        "interval_median_width": float(np.median(width)),
        "interval_relative_width": interval.relative_width,
        "interval_log_low": interval.log_low,
        "interval_log_high": interval.log_high,
        "interval_coverage_capped": (
            intervals.coverage(y_true[capped], low[capped], high[capped]) if capped.any() else None
        ),
        "interval_n_calibration": interval.n_calibration,
    }
    rows = [
        {
            "band": band,
            "coverage": intervals.coverage(y_true[mask], low[mask], high[mask]),
            "nominal": interval.level,
            "mean_width": float(width[mask].mean()),
            "below": float(np.mean(y_true[mask] < low[mask])),
            "above": float(np.mean(y_true[mask] > high[mask])),
            "n": int(mask.sum()),
        }
        for band, mask in price_bands(y_true)
    ]
    # Each band's coverage is a metric too: housing-monitor judges realised coverage against it.
    metrics |= {band_coverage_metric(row["band"]): row["coverage"] for row in rows}
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    return rounded, pd.DataFrame(rows)


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
    elif hasattr(reg, "estimators_") and all(hasattr(m, "booster_") for m in reg.estimators_):
        # A bag of boosters (VotingRegressor): the members' mean gain.
        values = np.mean(
            [m.booster_.feature_importance(importance_type="gain") for m in reg.estimators_],
            axis=0,
        )
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
            f"- family: **{spec.family}** (mean of {spec.bag} booster(s)), "
            f"imputer: `{spec.imputer}`",
            f"- features: `{spec.features.to_dict()}`",
            f"- sweep `{sweep.get('sweep_id')}` ({sweep.get('engine')}): "
            f"{sweep.get('n_trials')} trials, {sweep.get('n_pruned')} pruned, "
            f"best CV RMSE {sweep.get('best_value', float('nan')):,.0f}",
            f"- honest CV RMSE **{metrics['cv_rmse']:,.0f}** ± {metrics['cv_rmse_std']:,.0f} "
            f"({len(metrics['cv_rmse_folds'])} folds no choice was made on)",
            f"- test RMSE **{metrics['rmse']:,.0f}** "
            f"(95% CI {metrics['rmse_ci95_low']:,.0f} to {metrics['rmse_ci95_high']:,.0f}), "
            f"R² **{metrics['r2']:.3f}**, MAE {metrics['mae']:,.0f}",
            f"- {metrics['interval_level']:.0%} prediction interval: test coverage "
            f"**{metrics['interval_coverage']:.1%}**, mean width "
            f"{metrics['interval_mean_width']:,.0f}",
            "- trained on the stratified train split only; test split read once, here.",
        ]
    )


def _register(**kwargs: Any) -> Any:
    """Register with MLflow, logging only the bundle (model, metadata, serving export)."""
    from housing.registry import log_and_register

    with bundle_only(BUNDLE_DIR) as bundle:
        return log_and_register(bundle_dir=bundle, **kwargs)


def main() -> None:
    p = stage.params("register", RegisterParams)
    seed = p.seed
    best = read_yaml(BEST_PARAMS)
    contract = Contract.from_dict(read_json(CONTRACT))
    spec = ModelSpec(
        imputer=choices.imputer(),
        features=choices.features(),
        family=best["family"],
        params=best["params"],
        seed=seed,
        bag=int(best["bag"]),
    )
    train = pd.read_parquet(TRAIN)
    try:
        trained = fit_final(
            spec,
            train,
            categories=contract.categories,
            level=p.interval_level,
            cv_folds=p.cv_folds,
            cv_seed=p.cv_seed,
        )
    except ValueError as exc:
        raise stage.StageError(f"cannot calibrate the prediction interval: {exc}") from exc
    model, interval = trained.model, trained.interval

    validation = score_on_validation(model, pd.read_parquet(VALIDATION))
    write_json(VALIDATION_METRICS, validation)
    logger.info(
        "validation RMSE %.0f on %d held-out districts (the experiments' score)",
        validation["validation_rmse"],
        validation["n_validation"],
    )

    test = pd.read_parquet(TEST)  # the one read of the test split
    report = report_on_test(trained, test, n_resamples=p.bootstrap_resamples, seed=seed)
    metrics = report.metrics
    y_test = test[TARGET].to_numpy(float)
    logger.info(
        "%s interval: test coverage %.3f, mean width %.0f",
        f"{p.interval_level:.0%}",
        metrics["interval_coverage"],
        metrics["interval_mean_width"],
    )

    write_json(METRICS, metrics)
    write_csv(PRED_PLOT, report.predictions)
    write_csv(BAND_PLOT, report.bands)
    write_csv(INTERVAL_PLOT, report.interval_bands)
    write_csv(IMPORTANCE_PLOT, report.importance)

    sweep = read_json(SWEEP_SUMMARY)
    data_md5 = raw_data_md5()
    meta = {
        "name": p.model_name,
        "spec": {
            "imputer": spec.imputer,
            "features": spec.features.to_dict(),
            "family": spec.family,
            "params": dict(spec.params),
            "seed": seed,
            "bag": spec.bag,
        },
        "contract": contract.to_dict(),
        "metrics": metrics,
        "data_md5": data_md5,
        "sweep_id": sweep.get("sweep_id"),
        "sweep_engine": sweep.get("engine"),
    }
    try:
        serving_sha = write_serving(
            BUNDLE_DIR / SERVING_DIR,
            model,
            contract=contract.to_dict(),
            interval=interval,
            reference=build_reference(
                train,
                trained.oof,
                numeric=NUMERIC_FEATURES,
                categorical=(CATEGORICAL_FEATURE,),
            ),
        )
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
            metrics={
                k: v for k, v in {**metrics, **validation}.items() if isinstance(v, int | float)
            },
            tags={
                "git_commit": git_commit(),
                "data_md5": data_md5,
                "sweep_id": str(sweep.get("sweep_id")),
                "sweep_engine": str(sweep.get("engine")),
                "model_family": spec.family,
                SERVING_SHA_TAG: serving_sha,
            },
            plots=[PRED_PLOT, BAND_PLOT, INTERVAL_PLOT, IMPORTANCE_PLOT, METRICS],
            description=description(spec, metrics, sweep),
            input_example=test.drop(columns=[TARGET]).head(5),
            gates=GateConfig.from_mapping(
                p.gates.model_dump(), n_resamples=p.bootstrap_resamples, seed=seed
            ),
            evaluation=evaluation,
            score_champion=scorer,
            trusted_types=TRUSTED_TYPES,
            model_name=p.model_name,
            experiment=p.experiment,
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
        champion_dir = workspace_root() / CHAMPION_DIR
        record = export_champion(champion_dir, model_name=p.model_name)
    except RegistryError as exc:
        raise stage.StageError(f"exporting the champion failed: {exc}") from exc
    if record is not None:
        logger.info(
            "%s/ now holds the champion: v%s (promotion #%d)",
            champion_dir if in_experiment_copy() else CHAMPION_DIR,
            record.version,
            record.sequence,
        )


if __name__ == "__main__":
    stage.run(main)
