"""Expectations on the real data set, its stratified split, and the contract derived from it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from housing.contract import RAW_FEATURES, TARGET, derive_contract, validate_frame
from housing.metrics import PRICE_CAP
from stages.split import income_category, split


@pytest.fixture(scope="module")
def params(repo_root) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


@pytest.fixture(scope="module")
def bins(params) -> list[float]:
    return [
        np.inf if str(b) in ("inf", ".inf") else float(b) for b in params["split"]["income_bins"]
    ]


@pytest.fixture(scope="module")
def splits(housing_df, params, bins) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pipeline's split of the real data, by the split stage's own core and params."""
    p = params["split"]
    return split(housing_df, test_size=p["test_size"], seed=p["seed"], income_bins=bins)


def test_mirror_is_the_pinned_data_set(mirror_csv, params):
    assert hashlib.sha256(mirror_csv.read_bytes()).hexdigest() == params["download"]["sha256"]


def test_shape_and_columns(housing_df):
    assert housing_df.shape == (20_640, 10)
    assert set(housing_df.columns) == {*RAW_FEATURES, TARGET}
    assert not housing_df.duplicated().any()


def test_only_total_bedrooms_has_missing_values(housing_df):
    missing = housing_df.isna().sum()
    assert missing["total_bedrooms"] == 207
    assert missing.drop("total_bedrooms").sum() == 0


def test_categories(housing_df):
    counts = housing_df["ocean_proximity"].value_counts().to_dict()
    assert counts == {
        "<1H OCEAN": 9136,
        "INLAND": 6551,
        "NEAR OCEAN": 2658,
        "NEAR BAY": 2290,
        "ISLAND": 5,
    }


def test_target_is_censored_at_the_cap(housing_df):
    target = housing_df[TARGET]
    assert target.max() == PRICE_CAP == 500_001
    assert (target == PRICE_CAP).sum() == 965
    assert target.min() == 14_999


def test_value_ranges(housing_df):
    assert housing_df["median_income"].between(0.4999, 15.0001).all()
    assert housing_df["median_income"].min() == 0.4999
    assert housing_df["median_income"].max() == 15.0001  # also censored
    assert housing_df["housing_median_age"].between(1, 52).all()
    assert housing_df["longitude"].between(-124.35, -114.31).all()
    assert housing_df["latitude"].between(32.54, 41.95).all()
    counts = ["total_rooms", "total_bedrooms", "population", "households"]
    assert (housing_df[counts].dropna() >= 1).all().all()
    # Bedrooms are a subset of rooms in every complete district.
    complete = housing_df.dropna()
    assert (complete["total_bedrooms"] <= complete["total_rooms"]).all()


def test_split_sizes_and_disjointness(splits, housing_df):
    train, test = splits
    assert (len(train), len(test)) == (16_512, 4_128)
    both = pd.concat([train, test])
    assert not both.duplicated().any()
    assert len(both.merge(housing_df, how="inner")) == len(housing_df)


def test_split_income_strata_match_the_full_data(splits, housing_df, bins):
    """Every income stratum's share in each split is within 0.5 percentage points of the data's."""
    full = income_category(housing_df["median_income"], bins).value_counts(normalize=True)
    for part in splits:
        share = income_category(part["median_income"], bins).value_counts(normalize=True)
        diff = (share - full).abs() * 100
        assert diff.max() < 0.5, diff.to_dict()


def test_contract_from_train_accepts_both_real_splits(splits, params):
    train, test = splits
    contract = derive_contract(train, margin=params["preprocess"]["contract_margin"])
    assert validate_frame(train, contract, with_target=True) == []
    assert validate_frame(test, contract, with_target=True) == []
    assert set(contract.categories) == set(train["ocean_proximity"])
    assert contract.target_max == PRICE_CAP
