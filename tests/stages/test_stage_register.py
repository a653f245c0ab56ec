"""Unit tests of the register stage's core: honest CV, the prediction interval and its test
report, test metrics, residual bands, importances, lineage; bad params at the command level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from housing.intervals import Interval
from housing.metrics import CAPPED_BAND, band_coverage_metric, rmse
from housing.model import FAMILIES, FeatureConfig, ModelSpec, build_model
from stages.register import (
    cv_metrics,
    evaluate,
    feature_importance,
    fit_final,
    interval_report,
    out_of_fold,
    raw_data_md5,
    report_on_test,
    residuals_by_band,
    score_on_validation,
)

KEYS = {
    "rmse",
    "mae",
    "r2",
    "mape",
    "wmape",
    "within_10pct",
    "rmse_ci95_low",
    "rmse_ci95_high",
    "rmse_capped",
    "n_capped",
    "n_test",
}


def fit(spec: ModelSpec, train: pd.DataFrame):
    return build_model(spec).fit(
        train.drop(columns=["median_house_value"]), train.median_house_value
    )


def test_evaluate_reports_every_metric_with_known_values():
    y_true = np.array([100_000.0, 200_000.0, 300_000.0, 500_001.0])
    y_pred = np.array([110_000.0, 190_000.0, 300_000.0, 400_001.0])
    metrics = evaluate(y_true, y_pred, n_resamples=200, seed=0)

    assert set(metrics) == KEYS
    assert metrics["rmse"] == pytest.approx(np.sqrt((1e8 + 1e8 + 0 + 1e10) / 4), abs=1e-6)
    assert metrics["mae"] == pytest.approx(120_000 / 4)
    assert metrics["within_10pct"] == pytest.approx(0.75)  # errors of 10%, 5%, 0% and 20%
    assert metrics["mape"] == pytest.approx((0.1 + 0.05 + 0 + 100_000 / 500_001) / 4, abs=1e-6)
    assert metrics["rmse_capped"] == pytest.approx(100_000.0)
    assert metrics["n_capped"] == 1 and metrics["n_test"] == 4
    assert metrics["rmse_ci95_low"] <= metrics["rmse"] <= metrics["rmse_ci95_high"]
    assert all(isinstance(v, float) for k, v in metrics.items() if not k.startswith("n_"))


def test_evaluate_without_capped_districts():
    y = np.array([100_000.0, 200_000.0, 300_000.0])
    metrics = evaluate(y, y * 1.01, n_resamples=50, seed=0)
    assert metrics["rmse_capped"] is None and metrics["n_capped"] == 0
    assert metrics["within_10pct"] == 1.0


def test_evaluate_is_deterministic_by_seed():
    rng = np.random.default_rng(0)
    y = rng.uniform(50_000, 500_000, 100)
    pred = y + rng.normal(0, 30_000, 100)
    assert evaluate(y, pred, n_resamples=100, seed=1) == evaluate(y, pred, n_resamples=100, seed=1)


def test_residuals_by_band():
    y_true = np.array([50_000.0, 150_000.0, 160_000.0, 500_001.0])
    y_pred = np.array([60_000.0, 140_000.0, 180_000.0, 400_001.0])
    bands = residuals_by_band(y_true, y_pred)
    assert bands["band"].tolist() == ["0k-100k", "100k-200k", "500k-inf"]
    assert bands["n"].tolist() == [1, 2, 1]
    assert bands["rmse"].tolist() == pytest.approx([10_000, np.sqrt((1e8 + 4e8) / 2), 100_000])
    assert bands["mae"].tolist() == pytest.approx([10_000, 15_000, 100_000])
    assert bands["mean_residual"].tolist() == pytest.approx([10_000, 5_000, -100_000])


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "hist_gradient_boosting"])
def test_feature_importance_shares_sum_to_one(family, make_districts):
    train = make_districts(200, seed=0)
    params = {"n_estimators": 20} if family in ("random_forest", "lightgbm") else {}
    spec = ModelSpec("median", FeatureConfig(n_clusters=3, neighbors=4), family, params, seed=0)
    model = fit(spec, train)

    table = feature_importance(model)
    names = list(model.regressor_[:-1].get_feature_names_out())
    assert sorted(table["feature"]) == sorted(names)
    assert table["importance"].sum() == pytest.approx(1.0)
    assert (table["importance"] >= 0).all()
    assert table["importance"].is_monotonic_decreasing
    if family != "linear":  # income drives the synthetic price
        assert table["feature"].iloc[0] == "median_income"


def test_feature_importance_of_a_model_without_importances_is_nan(make_districts):
    """HistGradientBoosting exposes no importances: every feature is listed, with NaN."""
    train = make_districts(60, seed=1)
    spec = ModelSpec("median", FeatureConfig(n_clusters=2), "hist_gradient_boosting", {}, seed=0)
    model = fit(spec, train)
    table = feature_importance(model)
    assert len(table) == len(model.regressor_[:-1].get_feature_names_out())
    assert table["importance"].isna().all()


def test_raw_data_md5_reads_the_download_out_of_a_lock(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "download": {
                        "outs": [{"path": "data/raw/housing.csv", "md5": "abc123", "size": 1}]
                    }
                },
            }
        )
    )
    assert raw_data_md5(lock) == "abc123"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {}}))
    assert raw_data_md5(lock) == "unknown"


def test_raw_data_md5_of_the_committed_lock_matches_the_mirror(repo_root, mirror_csv):
    import hashlib

    assert raw_data_md5(repo_root / "dvc.lock") == hashlib.md5(mirror_csv.read_bytes()).hexdigest()


def test_feature_importance_is_a_frame_of_two_columns(make_districts):
    train = make_districts(60, seed=1)
    spec = ModelSpec("median", FeatureConfig(n_clusters=2), "linear", {}, seed=0)
    model = fit(spec, train)
    table = feature_importance(model)
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["feature", "importance"]


# --- honest CV, the interval, its report --------------------------------------------------

SMALL_LGBM = {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 5}
INTERVAL_KEYS = {
    "interval_level",
    "interval_coverage",
    "interval_mean_width",
    "interval_median_width",
    "interval_relative_width",
    "interval_log_low",
    "interval_log_high",
    "interval_coverage_capped",
    "interval_n_calibration",
}
CV_KEYS = {"cv_rmse", "cv_rmse_std", "cv_rmse_folds"}


def _spec(seed: int = 0) -> ModelSpec:
    return ModelSpec(
        "median", FeatureConfig(n_clusters=3, neighbors=4), "lightgbm", SMALL_LGBM, seed
    )


def test_out_of_fold_refits_the_whole_model_on_each_folds_other_rows(make_districts):
    from housing.cv import kfold

    train = make_districts(300, seed=2, missing=5)
    y = train["median_house_value"].to_numpy(float)
    oof, scores = out_of_fold(_spec(), train, n_splits=4, seed=2027)
    assert oof.shape == (300,) and np.isfinite(oof).all() and len(scores) == 4
    folds = list(kfold(4, 2027).split(train))
    for (fit_idx, val_idx), score in zip(folds, scores, strict=True):
        assert score == pytest.approx(rmse(y[val_idx], oof[val_idx]))
        # The fold's value is the model fitted on the other rows only, preprocessing included.
        alone = fit(_spec(), train.iloc[fit_idx]).predict(
            train.iloc[val_idx].drop(columns=["median_house_value"])
        )
        np.testing.assert_allclose(oof[val_idx], alone, rtol=1e-12)
    # Held-out rows are priced worse than the rows a model was fitted on.
    in_sample = fit(_spec(), train).predict(train.drop(columns=["median_house_value"]))
    assert rmse(y, oof) > rmse(y, in_sample)
    again, _ = out_of_fold(_spec(), train, n_splits=4, seed=2027)
    np.testing.assert_array_equal(again, oof)
    other, _ = out_of_fold(_spec(), train, n_splits=4, seed=42)
    assert not np.allclose(other, oof)  # other folds, other out-of-fold prices


def test_cv_metrics_are_mean_and_population_std_of_the_folds():
    cv = cv_metrics([40_000.0, 42_000.0, 44_000.0])
    assert cv["cv_rmse"] == 42_000.0
    assert cv["cv_rmse_std"] == pytest.approx(np.std([40_000, 42_000, 44_000]))
    assert cv["cv_rmse_folds"] == [40_000.0, 42_000.0, 44_000.0]


def test_interval_report_overall_and_by_band_with_the_capped_districts_apart():
    interval = Interval(level=0.9, log_low=np.log(0.8), log_high=np.log(1.25), n_calibration=99)
    y_true = np.array([50_000, 95_000, 150_000, 250_000, 450_000, 500_000, 500_001, 500_001.0])
    y_pred = np.array([60_000, 70_000, 150_000, 250_000, 400_000, 450_000, 450_000, 300_000.0])
    metrics, bands = interval_report(y_true, y_pred, interval)
    by_band = {
        "interval_coverage_0k_100k": 0.5,
        "interval_coverage_100k_200k": 1,
        "interval_coverage_200k_300k": 1,
        "interval_coverage_400k_500k": 1,
        "interval_coverage_500k_cap": 1,
    }
    assert set(metrics) == INTERVAL_KEYS | set(by_band)
    assert {k: metrics[k] for k in by_band} == pytest.approx(by_band)
    # Inside: 50k (48k..75k), 150k, 250k, 450k (320k..500k), 500,000 and the first capped
    # (360k..562.5k); outside: 95k > 87.5k and the second capped (> 375k).
    assert metrics["interval_coverage"] == pytest.approx(6 / 8)
    assert metrics["interval_coverage_capped"] == pytest.approx(0.5)
    assert metrics["interval_mean_width"] == pytest.approx(float(np.mean(y_pred * 0.45)))
    assert metrics["interval_relative_width"] == pytest.approx(0.45)
    assert metrics["interval_level"] == 0.9 and metrics["interval_n_calibration"] == 99
    assert bands["band"].tolist() == [
        "0k-100k",
        "100k-200k",
        "200k-300k",
        "400k-500k",
        "500k-cap",
        CAPPED_BAND,
    ]
    assert bands["n"].tolist() == [2, 1, 1, 1, 1, 2]
    assert bands["coverage"].tolist() == pytest.approx([0.5, 1, 1, 1, 1, 0.5])
    assert bands["above"].tolist() == pytest.approx([0.5, 0, 0, 0, 0, 0.5])
    assert (bands["below"] == 0).all() and (bands["nominal"] == 0.9).all()
    assert bands["mean_width"].iloc[0] == pytest.approx(0.45 * 65_000)


def test_the_stage_core_reports_honest_cv_and_interval_metrics(make_districts):
    """What main() writes to metrics.json and intervals_by_band.csv, on a small frame."""
    train, test = make_districts(400, seed=3), make_districts(200, seed=4)
    trained = fit_final(_spec(), train, categories=None, level=0.8, cv_folds=3, cv_seed=2027)
    assert trained.interval.level == 0.8 and trained.interval.n_calibration == 400
    assert trained.interval.log_low < 0 < trained.interval.log_high
    report = report_on_test(trained, test, n_resamples=50, seed=0)
    bands = {band_coverage_metric(band) for band in report.interval_bands["band"]}
    assert set(report.metrics) == KEYS | CV_KEYS | INTERVAL_KEYS | bands
    assert len(report.metrics["cv_rmse_folds"]) == 3
    assert report.metrics["cv_rmse"] == pytest.approx(np.mean(report.metrics["cv_rmse_folds"]))
    # Calibrated on held-out residuals, the 80 % interval covers roughly 80 % of fresh rows.
    assert 0.7 <= report.metrics["interval_coverage"] <= 0.92
    assert report.interval_bands["n"].sum() == len(test)
    assert list(report.interval_bands.columns) == [
        "band",
        "coverage",
        "nominal",
        "mean_width",
        "below",
        "above",
        "n",
    ]
    import json

    json.dumps(report.metrics, allow_nan=False)  # metrics.json is strict JSON


def test_the_validation_score_is_the_final_models_rmse_on_the_held_out_rows(make_districts):
    train, validation = make_districts(400, seed=3), make_districts(150, seed=5)
    trained = fit_final(_spec(), train, categories=None, level=0.8, cv_folds=3, cv_seed=2027)
    score = score_on_validation(trained.model, validation)
    y = validation["median_house_value"].to_numpy(float)
    predicted = trained.model.predict(validation.drop(columns=["median_house_value"]))
    assert score["validation_rmse"] == pytest.approx(rmse(y, predicted), abs=1e-6)
    assert score["n_validation"] == 150 and 0 < score["validation_r2"] <= 1
    assert set(score) == {"validation_rmse", "validation_mae", "validation_r2", "n_validation"}


def test_a_train_split_too_small_for_the_level_is_a_clear_error(make_districts):
    with pytest.raises(ValueError, match=r"too few for a 0\.99 interval: need at least 199"):
        fit_final(_spec(), make_districts(60), categories=None, level=0.99, cv_folds=3, cv_seed=1)


def test_a_bad_interval_level_exits_1_with_one_line_before_any_work(tmp_path, repo_root):
    """The real entry point in an empty directory: the params check runs before any read
    (one value here, ~10 s of imports; every key's checks: tests/housing/params)."""
    import os
    import subprocess
    import sys

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["register"]["interval_level"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.register"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].endswith(
        "params.yaml register.interval_level: must be a number > 0 and < 1, got 1.5"
    )
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
