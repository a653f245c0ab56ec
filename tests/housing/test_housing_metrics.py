"""Regression metrics on known values."""

from __future__ import annotations

import numpy as np
import pytest

from housing.metrics import bootstrap_rmse_ci, regression_report, rmse


def test_rmse_known_value():
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 7.0]) == pytest.approx(np.sqrt(16 / 3))
    assert rmse([5.0], [5.0]) == 0.0


def test_regression_report_known_values():
    y = np.array([100.0, 200.0, 300.0, 400.0])
    pred = np.array([110.0, 180.0, 300.0, 440.0])
    report = regression_report(y, pred)
    assert report == {
        "rmse": pytest.approx(np.sqrt((100 + 400 + 0 + 1600) / 4)),
        "mae": pytest.approx(70 / 4),
        "r2": pytest.approx(1 - 2100 / 50_000),
        "mape": pytest.approx((0.1 + 0.1 + 0 + 0.1) / 4),
        "wmape": pytest.approx(70 / 1000),
        "within_10pct": pytest.approx(1.0),
    }


def test_r2_of_perfect_and_of_mean_predictions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert regression_report(y, y)["r2"] == 1.0
    assert regression_report(y, np.full(4, y.mean()))["r2"] == pytest.approx(0.0)
    assert regression_report(y, y * 1.2)["within_10pct"] == 0.0


def test_bootstrap_ci_brackets_rmse_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.uniform(1e5, 5e5, 500)
    pred = y + rng.normal(0, 4e4, 500)
    lo, hi = bootstrap_rmse_ci(y, pred, n_resamples=300, seed=1)
    assert lo < rmse(y, pred) < hi
    assert (lo, hi) == bootstrap_rmse_ci(y, pred, n_resamples=300, seed=1)
    assert (lo, hi) != bootstrap_rmse_ci(y, pred, n_resamples=300, seed=2)
    narrow = bootstrap_rmse_ci(y, pred, n_resamples=300, confidence=0.5, seed=1)
    assert lo < narrow[0] < narrow[1] < hi


def test_bootstrap_ci_of_constant_errors_is_a_point():
    y = np.arange(1.0, 11.0)
    lo, hi = bootstrap_rmse_ci(y, y + 3.0, n_resamples=50)
    assert lo == pytest.approx(3.0) and hi == pytest.approx(3.0)
