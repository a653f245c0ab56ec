"""The training data's reference summaries (housing.monitor.reference): shares per quantile
bin, category shares, missing rates, the out-of-fold predictions; never a raw row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES
from housing.monitor.reference import build_reference, numeric_summary


def test_quantile_bins_hold_their_share_and_edges_increase():
    values = np.arange(1_000, dtype=float)
    summary = numeric_summary(values, 10)
    assert len(summary["edges"]) == 9 and summary["edges"] == sorted(summary["edges"])
    assert summary["shares"] == [0.1] * 10
    assert summary["missing_rate"] == 0.0 and (summary["min"], summary["max"]) == (0.0, 999.0)


def test_ties_merge_bins_and_the_missing_rate_counts_nans():
    values = np.array([1.0] * 70 + [2.0] * 20 + [np.nan] * 10)
    summary = numeric_summary(values, 10)
    assert summary["missing_rate"] == 0.1
    assert len(summary["shares"]) == len(summary["edges"]) + 1
    assert sum(summary["shares"]) == pytest.approx(1.0)


def test_the_reference_of_real_districts_has_no_raw_row(small_train):
    frame = small_train.drop(columns=["median_house_value"])
    predictions = np.exp(np.random.default_rng(0).normal(12, 0.5, len(frame)))
    reference = build_reference(
        frame, predictions, numeric=NUMERIC_FEATURES, categorical=(CATEGORICAL_FEATURE,)
    )
    assert set(reference["numeric"]) == set(NUMERIC_FEATURES)
    bedrooms = reference["numeric"]["total_bedrooms"]
    assert bedrooms["missing_rate"] == pytest.approx(frame.total_bedrooms.isna().mean(), abs=1e-6)
    shares = reference["categorical"][CATEGORICAL_FEATURE]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) <= {"<1H OCEAN", "INLAND", "NEAR BAY", "NEAR OCEAN", "ISLAND"}
    for summary in (*reference["numeric"].values(), reference["prediction"]):
        assert sum(summary["shares"]) == pytest.approx(1.0, abs=1e-5)
    # Summaries only: a few kilobytes whatever the rows, and no row's exact values inside.
    text = json.dumps(reference)
    assert len(text) < 8_000 and reference["rows"] == len(frame)
    assert json.dumps(frame.iloc[0].to_dict()) not in text


def test_too_few_bins_is_refused():
    with pytest.raises(ValueError, match="bins must be at least 2"):
        build_reference(
            pd.DataFrame({"a": [1.0]}), np.ones(1), numeric=["a"], categorical=[], bins=1
        )
