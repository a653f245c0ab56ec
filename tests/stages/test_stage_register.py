"""Unit tests of the register stage's core: test metrics, residual bands, importances, lineage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from housing.model import FAMILIES, FeatureConfig, ModelSpec, build_model
from stages.register import evaluate, feature_importance, raw_data_md5, residuals_by_band

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
