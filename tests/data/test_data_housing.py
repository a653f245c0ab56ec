"""Expectations on the real data set, its stratified split, and the contract derived from it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from housing.contract import (
    CROSS_FIELD_RULES,
    NUMERIC_FEATURES,
    RAW_FEATURES,
    TARGET,
    derive_contract,
    numeric_matrix,
    validate_frame,
)
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
    contract = derive_contract(
        train,
        margin=params["preprocess"]["contract_margin"],
        region_margin_km=params["preprocess"]["region_margin_km"],
    )
    assert validate_frame(train, contract, with_target=True) == []
    assert validate_frame(test, contract, with_target=True) == []
    assert set(contract.categories) == set(train["ocean_proximity"])
    assert contract.target_max == PRICE_CAP


@pytest.fixture(scope="module")
def contract(splits, params):
    """The contract exactly as the preprocess stage derives it: from train, with its params."""
    p = params["preprocess"]
    return derive_contract(
        splits[0], margin=p["contract_margin"], region_margin_km=p["region_margin_km"]
    )


def test_every_real_district_passes_every_check(housing_df, contract):
    """All 20,640 districts (train and test) pass every bound, rule and the region."""
    numeric = housing_df[list(NUMERIC_FEATURES)].to_numpy(float)
    cells, rules, region = contract.check_masks(numeric)
    assert rules.shape[1] == len(CROSS_FIELD_RULES) >= 1
    assert not cells.any() and not rules.any() and not region.any()
    assert contract.violations_array(numeric).total == 0
    assert validate_frame(housing_df, contract, with_target=True) == []
    assert contract.violations_array(numeric_matrix([contract.example])).total == 0


def test_rejected_candidate_rules_are_broken_by_real_districts(housing_df):
    """Why households <= population and households <= total_rooms are not rules: real
    districts (census block groups of group quarters, or data errors) break them."""
    d = housing_df
    assert (d["households"] > d["population"]).sum() == 3
    assert (d["households"] > d["total_rooms"]).sum() == 2
    # The adopted rule has no exception in the whole data set.
    complete = d.dropna(subset=["total_bedrooms"])
    assert (complete["total_bedrooms"] > complete["total_rooms"]).sum() == 0


@pytest.mark.parametrize(
    ("place", "lat", "lon"),
    [
        ("Reno NV", 39.53, -119.81),
        ("Las Vegas NV", 36.17, -115.14),
        ("Carson City NV", 39.16, -119.77),
        ("Mexicali MX", 32.62, -115.45),
        ("Tijuana MX", 32.50, -117.03),
        ("Pacific off Big Sur", 36.0, -124.0),
        ("Pacific off Point Conception", 34.0, -121.0),
        ("Phoenix AZ", 33.45, -112.07),
    ],
)
def test_places_outside_california_are_rejected(housing_df, contract, place, lat, lon):
    """A real district moved to ``place`` breaks the contract on its coordinates only."""
    row = housing_df.iloc[[0]].copy()
    row[["latitude", "longitude"]] = (lat, lon)
    [violation] = contract.violations_array(row[list(NUMERIC_FEATURES)].to_numpy(float))
    assert set(violation.fields) <= {"latitude", "longitude"}, place
    [problem] = validate_frame(row, contract, with_target=True)
    assert problem.startswith(("latitude", "longitude")), problem


def test_the_nearest_real_district_to_each_rejected_border_place_passes(housing_df, contract):
    """The margin is small: districts a few km from Tijuana, Mexicali and Lake Tahoe pass."""
    d = housing_df
    for lat, lon in [(32.50, -117.03), (32.62, -115.45), (39.16, -119.77)]:
        dist = np.hypot(d["latitude"] - lat, (d["longitude"] - lon) * np.cos(np.radians(lat)))
        nearest = d.iloc[[int(dist.argmin())]]
        assert dist.min() < 0.4  # a real district within ~40 km
        assert contract.violations_array(nearest[list(NUMERIC_FEATURES)].to_numpy(float)).total == 0
