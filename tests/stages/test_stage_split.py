"""Unit tests of the split stage's core on tiny frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing.stage import StageError
from stages.split import hold_out, income_category, split

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


def test_the_validation_slice_is_held_out_of_train_stratified_and_disjoint():
    df = strata_frame(20)
    train, test = split(df, test_size=0.2, seed=42, income_bins=BINS)
    fit, validation = hold_out(train, size=0.25, seed=42, income_bins=BINS)
    assert len(fit) == 60 and len(validation) == 20  # a quarter of train's 80 rows
    assert set(fit["row"]).isdisjoint(validation["row"])
    assert set(validation["row"]).isdisjoint(test["row"])  # never a test row
    assert sorted([*fit["row"], *validation["row"]]) == sorted(train["row"])
    counts = income_category(validation["median_income"], BINS).value_counts()
    assert counts.sort_index().tolist() == [4] * 5


def test_only_register_depends_on_the_validation_slice_or_the_test_split():
    """As dvc.yaml declares them (what DVC runs each stage with);
    `test_preprocess_never_reads_the_test_split` runs preprocess with neither file there."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    held_out = {"data/split/validation.parquet", "data/split/test.parquet"}
    readers = {name for name, stage in stages.items() if held_out & set(stage.get("deps", []))}
    assert readers == {"register"}
    assert held_out <= set(stages["split"]["outs"])
