"""housing.intervals: split-conformal offsets in log space, their guarantee and their errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from housing.intervals import (
    Interval,
    calibrate,
    check_level,
    conformal_offsets,
    coverage,
    log_residuals,
    min_calibration_size,
)


def test_the_corrected_order_statistics_on_a_known_sample():
    # n = 19 at 90 %: k_lo = floor(20 * 0.05) = 1, k_hi = ceil(20 * 0.95) = 19: min and max.
    r = np.arange(19, dtype=float)
    assert conformal_offsets(r, 0.9) == (0.0, 18.0)
    # n = 99 at 80 %: k_lo = floor(100 * 0.1) = 10, k_hi = ceil(100 * 0.9) = 90.
    r = np.random.default_rng(0).permutation(np.arange(1, 100, dtype=float))
    assert conformal_offsets(r, 0.8) == (10.0, 90.0)
    # n = 1000 at 90 %: k_lo = 50, k_hi = ceil(1001 * 0.95) = 951 (not 950: the correction).
    r = np.arange(1, 1001, dtype=float)
    assert conformal_offsets(r, 0.9) == (50.0, 951.0)


def test_the_correction_is_wider_than_the_plain_empirical_quantiles():
    r = np.random.default_rng(1).normal(size=200)
    lo, hi = conformal_offsets(r, 0.9)
    assert lo <= np.quantile(r, 0.05) and hi >= np.quantile(r, 0.95)
    assert hi == np.sort(r)[math.ceil(201 * 0.95) - 1]


def test_too_few_residuals_for_the_level_is_a_clear_error():
    assert min_calibration_size(0.9) == 19 and min_calibration_size(0.5) == 3
    conformal_offsets(np.zeros(19), 0.9)
    with pytest.raises(
        ValueError, match=r"18 residuals are too few for a 0\.9 interval: need at least 19"
    ):
        conformal_offsets(np.zeros(18), 0.9)
    with pytest.raises(ValueError, match="too few"):
        conformal_offsets([], 0.5)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5, 90, float("nan"), float("inf")])
def test_a_level_outside_the_open_unit_interval_is_refused(level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        check_level(level)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        conformal_offsets(np.zeros(100), level)


@pytest.mark.parametrize("level", ["0.9", None, True, [0.9]])
def test_a_level_that_is_not_a_number_is_refused(level):
    with pytest.raises(ValueError, match="must be a number in \\(0, 1\\)"):
        check_level(level)


def test_residuals_need_positive_finite_values_of_one_length():
    np.testing.assert_allclose(log_residuals([200.0, 100.0], [100.0, 100.0]), [math.log(2), 0])
    with pytest.raises(ValueError, match="positive, finite predictions"):
        log_residuals([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="positive, finite targets"):
        log_residuals([np.nan, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="2 targets but 3 predictions"):
        log_residuals([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        conformal_offsets([0.0] * 30 + [np.inf], 0.5)


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_coverage_on_exchangeable_synthetic_data_is_at_least_nominal_and_tight(level):
    """Over many draws, calibration on n and a test on fresh rows of the same distribution:
    mean coverage >= level and <= level + 2 / (n + 1) (the split-conformal bounds), up to
    Monte Carlo error. Skewed, heavy-tailed log residuals: a symmetric rule would waste width."""
    rng = np.random.default_rng(42)
    n, n_test, reps = 200, 500, 400
    covered = np.empty(reps)
    for i in range(reps):
        price = rng.uniform(50_000, 500_000, n + n_test)
        noise = rng.gamma(2.0, 0.1, n + n_test) - 0.2 + 0.05 * rng.standard_t(3, n + n_test)
        y = price * np.exp(noise)
        interval = calibrate(y[:n], price[:n], level)
        low, high = interval.bounds(price[n:])
        covered[i] = coverage(y[n:], low, high)
    mc = 4 * covered.std() / math.sqrt(reps)
    assert level - mc <= covered.mean() <= level + 2 / (n + 1) + mc


def test_the_interval_grows_with_the_price_and_contains_it():
    interval = Interval(level=0.9, log_low=-0.25, log_high=0.2, n_calibration=100)
    price = np.array([100_000.0, 200_000.0, 400_000.0])
    low, high = interval.bounds(price)
    np.testing.assert_allclose(low, price * math.exp(-0.25))
    np.testing.assert_allclose(high, price * math.exp(0.2))
    np.testing.assert_allclose((high - low) / price, interval.relative_width)
    assert np.all(np.diff(high - low) > 0) and np.all((low <= price) & (price <= high))


def test_calibrate_widens_offsets_that_exclude_the_point_prediction():
    # Every residual positive (the model always underprices): the lower offset would be > 0.
    y_pred = np.full(100, 100_000.0)
    y = y_pred * np.exp(np.linspace(0.05, 0.5, 100))
    interval = calibrate(y, y_pred, 0.9)
    assert interval.log_low == 0.0 and interval.log_high > 0.45
    assert interval.n_calibration == 100 and interval.level == 0.9


def test_the_interval_refuses_inconsistent_values():
    with pytest.raises(ValueError, match="log_low <= 0 <= log_high"):
        Interval(level=0.9, log_low=0.1, log_high=0.2, n_calibration=10)
    with pytest.raises(ValueError, match="finite"):
        Interval(level=0.9, log_low=-np.inf, log_high=0.2, n_calibration=10)
    with pytest.raises(ValueError, match="positive count"):
        Interval(level=0.9, log_low=-0.1, log_high=0.2, n_calibration=0)
    with pytest.raises(ValueError, match="strictly between"):
        Interval(level=1.0, log_low=-0.1, log_high=0.2, n_calibration=10)


def test_the_dict_form_round_trips_through_json_exactly():
    interval = calibrate(
        np.exp(np.random.default_rng(3).normal(12, 0.3, 500)), np.full(500, math.exp(12)), 0.9
    )
    again = Interval.from_dict(json.loads(json.dumps(interval.to_dict())))
    assert again == interval
    with pytest.raises(TypeError, match="JSON object"):
        Interval.from_dict([1, 2])
    with pytest.raises(TypeError, match="log_low must be a number"):
        Interval.from_dict({**interval.to_dict(), "log_low": "-0.1"})
    with pytest.raises(TypeError, match="n_calibration must be an integer"):
        Interval.from_dict({**interval.to_dict(), "n_calibration": 5.0})


def test_coverage_counts_closed_intervals():
    assert coverage([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 0.0, 5.0], [1.0, 3.0, 3.0, 6.0]) == 0.5
    with pytest.raises(ValueError, match="no rows"):
        coverage([], [], [])


def test_the_module_imports_numpy_only():
    """The API's numpy serving path imports it (tests/serve/test_serve_import_guard.py)."""
    code = (
        "import sys, housing.intervals; "
        "print([m for m in ('sklearn', 'pandas', 'scipy', 'lightgbm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
