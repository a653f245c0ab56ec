"""Unit tests of the split stage's core on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.stage import StageError
from stages.split import income_category, split

BINS = [0.0, 1.5, 3.0, 4.5, 6.0, np.inf]


def strata_frame(per_stratum: int = 10) -> pd.DataFrame:
    """Rows with a ``row`` id and exactly ``per_stratum`` incomes in each of the five strata."""
    incomes = np.repeat([1.0, 2.0, 4.0, 5.0, 8.0], per_stratum) + np.tile(
        np.linspace(0, 0.4, per_stratum), 5
    )
    return pd.DataFrame({"row": np.arange(len(incomes)), "median_income": incomes})


def test_income_category_buckets_by_edges():
    cats = income_category(pd.Series([0.5, 1.5, 1.6, 3.0, 4.6, 6.0, 15.0]), BINS)
    assert list(cats) == [1, 1, 2, 2, 4, 4, 5]


def test_split_keeps_each_stratum_share_exactly():
    df = strata_frame(10)
    train, test = split(df, test_size=0.2, seed=42, income_bins=BINS)
    assert len(train) == 40 and len(test) == 10
    for part, per_stratum in ((train, 8), (test, 2)):
        counts = income_category(part["median_income"], BINS).value_counts()
        assert counts.sort_index().tolist() == [per_stratum] * 5


def test_split_partitions_rows_in_source_order():
    df = strata_frame(10)
    train, test = split(df, test_size=0.2, seed=42, income_bins=BINS)
    assert sorted([*train["row"], *test["row"]]) == list(range(50))
    assert train["row"].is_monotonic_increasing and test["row"].is_monotonic_increasing
    assert list(train.index) == list(range(len(train)))


def test_split_is_deterministic_by_seed():
    df = strata_frame(10)
    a = split(df, test_size=0.2, seed=1, income_bins=BINS)
    b = split(df, test_size=0.2, seed=1, income_bins=BINS)
    c = split(df, test_size=0.2, seed=2, income_bins=BINS)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert set(a[1]["row"]) != set(c[1]["row"])


def test_split_refuses_incomes_outside_the_bins():
    df = strata_frame(10)
    df.loc[[3, 7], "median_income"] = -1.0
    with pytest.raises(StageError, match=r"2 row\(s\) have median_income outside split"):
        split(df, test_size=0.2, seed=42, income_bins=BINS)
