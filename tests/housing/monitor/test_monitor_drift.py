"""Drift against the training reference (housing.monitor.drift): PSI, the batch comparison
housing-monitor makes, and the sliding window behind the API's gauges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES
from housing.monitor.drift import DriftWindow, binnings, compare, prediction_binning, psi
from housing.monitor.reference import build_reference

THRESHOLD, MIN_ROWS = 0.1, 500


def _columns(frame: pd.DataFrame) -> dict:
    cols = {name: frame[name].to_numpy(float) for name in NUMERIC_FEATURES}
    cols[CATEGORICAL_FEATURE] = frame[CATEGORICAL_FEATURE].astype(str).tolist()
    return cols


@pytest.fixture(scope="module")
def halves(housing_df):
    """Two disjoint random halves of the data set: the same population."""
    shuffled = housing_df.sample(frac=1.0, random_state=11).reset_index(drop=True)
    return shuffled.iloc[:10_000], shuffled.iloc[10_000:]


@pytest.fixture(scope="module")
def reference(halves):
    train, _ = halves
    prices = train["median_house_value"].to_numpy(float)  # a stand-in for OOF prices
    return build_reference(
        train, prices, numeric=NUMERIC_FEATURES, categorical=(CATEGORICAL_FEATURE,)
    )


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    even = np.full(4, 0.25)
    assert psi(even, even) == 0
    small = psi(even, [0.3, 0.25, 0.25, 0.2])
    large = psi(even, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < large
    assert np.isfinite(psi(even, [1.0, 0, 0, 0]))  # an empty bin is floored, not infinite


def test_the_same_population_flags_nothing(reference, halves):
    _, live = halves
    report = compare(
        reference,
        _columns(live),
        live["median_house_value"],
        threshold=THRESHOLD,
        min_rows=MIN_ROWS,
    )
    assert report.enough and report.flagged == [] and not report.prediction_flagged
    assert max(d.psi for d in report.features) < 0.02


def test_a_shifted_income_flags_income_alone(reference, halves):
    live = halves[1].copy()
    live["median_income"] *= 1.5
    report = compare(reference, _columns(live), None, threshold=THRESHOLD, min_rows=MIN_ROWS)
    assert report.flagged == ["median_income"]
    income = next(d for d in report.features if d.name == "median_income")
    assert income.psi > 0.5
    assert report.to_dict()["features"]["median_income"]["flagged"] is True


def test_a_change_in_the_missing_rate_is_drift(reference, halves):
    live = halves[1].copy()
    live.loc[live.index[: len(live) // 5], "total_bedrooms"] = np.nan  # 20 % missing, not 1 %
    report = compare(reference, _columns(live), None, threshold=THRESHOLD, min_rows=MIN_ROWS)
    assert report.flagged == ["total_bedrooms"]


def test_one_category_alone_is_drift_and_an_unknown_one_has_its_bin(reference, halves):
    live = halves[1]
    inland = live[live[CATEGORICAL_FEATURE] == "INLAND"]
    report = compare(reference, _columns(inland), None, threshold=THRESHOLD, min_rows=MIN_ROWS)
    assert "ocean_proximity" in report.flagged
    (ocean,) = [b for b in binnings(reference) if b.name == CATEGORICAL_FEATURE]
    assert ocean.codes(["MARS"])[0] == ocean.size - 1  # "other"


def test_too_few_rows_flag_nothing(reference, halves):
    live = halves[1].iloc[:100].copy()
    live["median_income"] *= 1.5
    report = compare(reference, _columns(live), None, threshold=THRESHOLD, min_rows=MIN_ROWS)
    assert not report.enough and report.flagged == []
    assert max(d.psi for d in report.features) > THRESHOLD  # reported, not judged


def test_the_window_equals_a_batch_comparison_of_its_last_rows(reference, halves):
    """Added in uneven batches past its capacity, the window holds exactly the newest rows."""
    live = halves[1].iloc[:3_000]
    prices = live["median_house_value"].to_numpy(float) * 1.1
    window = DriftWindow(reference, size=1_000)
    rng = np.random.default_rng(5)
    start = 0
    while start < len(live):
        n = int(rng.integers(1, 400))
        part = live.iloc[start : start + n]
        window.add(_columns(part), prices[start : start + n])
        start += n
    assert window.filled == 1_000
    last = live.iloc[-1_000:]
    expected = compare(reference, _columns(last), prices[-1_000:], threshold=0.1, min_rows=1)
    got = window.psi()
    for drift in expected.features:
        assert got[drift.name] == pytest.approx(drift.psi, abs=1e-12)
    assert got["prediction"] == pytest.approx(expected.prediction.psi, abs=1e-12)


def test_a_batch_larger_than_the_window_keeps_its_newest_rows(reference, halves):
    live = halves[1].iloc[:700]
    window = DriftWindow(reference, size=300)
    prices = live["median_house_value"].to_numpy(float)
    window.add(_columns(live), prices)
    expected = compare(
        reference, _columns(live.iloc[-300:]), prices[-300:], threshold=1, min_rows=1
    )
    assert window.psi()["median_income"] == pytest.approx(
        next(d.psi for d in expected.features if d.name == "median_income"), abs=1e-12
    )
    assert prediction_binning(reference).size == len(reference["prediction"]["shares"]) + 1
