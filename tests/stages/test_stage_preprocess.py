"""Unit tests of the preprocess stage's core: imputer comparison, choice, fitting, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.contract import ContractError, derive_contract
from stages.preprocess import (
    apply_imputer,
    choose_imputer,
    compare_imputers,
    masked_imputation_rmse,
    validate_splits,
)


def test_compare_imputers_scores_every_strategy(make_districts):
    train = make_districts(40, seed=1, missing=4)
    scores = compare_imputers(train, ["median", "knn"], folds=2, seed=0)
    assert scores["strategy"].tolist() == ["median", "knn"]
    assert list(scores.columns) == ["strategy", "cv_rmse", "cv_rmse_std", "imputation_rmse"]
    assert np.isfinite(scores[["cv_rmse", "cv_rmse_std", "imputation_rmse"]].to_numpy()).all()
    assert (scores["cv_rmse"] > 0).all()


def test_masked_imputation_rmse_rewards_an_informed_imputer(make_districts):
    """Bedrooms track rooms closely, so KNN on the other columns beats a constant median."""
    train = make_districts(50, seed=2)
    median = masked_imputation_rmse(train, "median", folds=2, seed=0)
    iterative = masked_imputation_rmse(train, "iterative", folds=2, seed=0)
    assert iterative < median / 2


def test_choose_imputer_one_standard_error_rule():
    """Within one standard error of the best CV RMSE, the most accurate imputer wins."""
    scores = pd.DataFrame(
        {
            "strategy": ["median", "mean", "knn", "iterative"],
            "cv_rmse": [40.0, 40.9, 41.5, 45.0],
            "cv_rmse_std": [2.0, 2.0, 2.0, 2.0],
            "imputation_rmse": [9.0, 3.0, 2.0, 1.0],
        }
    )
    # tolerance = 40 + 2 / sqrt(4) = 41: median and mean tie; mean imputes better.
    assert choose_imputer(scores, folds=4) == "mean"
    # tolerance = 40 + 2 / sqrt(1) = 42: knn joins the tie and imputes best of the three.
    assert choose_imputer(scores, folds=1) == "knn"
    # A clear winner on the model score keeps its place whatever its imputation error.
    clear = scores.assign(cv_rmse_std=0.0)
    assert choose_imputer(clear, folds=4) == "median"


def test_apply_imputer_fits_on_train_only(make_districts):
    train = make_districts(9, seed=3, missing=2)
    test = make_districts(5, seed=4, missing=1)
    fill = train["total_bedrooms"].median()

    filled_train, filled_test = apply_imputer(train, test, "median", seed=0)
    extreme = test.copy()
    extreme.loc[1:, "total_bedrooms"] = 1e6  # a wild test split must not move train's fill
    again_train, again_test = apply_imputer(train, extreme, "median", seed=0)

    assert filled_train.loc[:1, "total_bedrooms"].tolist() == [fill, fill]
    assert filled_test.loc[0, "total_bedrooms"] == fill
    assert again_test.loc[0, "total_bedrooms"] == fill
    pd.testing.assert_frame_equal(filled_train, again_train)
    assert filled_train["total_bedrooms"].notna().all()
    # Known values and the inputs themselves are left untouched.
    pd.testing.assert_series_equal(filled_train["total_bedrooms"][2:], train["total_bedrooms"][2:])
    assert train["total_bedrooms"].isna().sum() == 2


@pytest.fixture
def californian(make_districts, housing_df):
    """``make_districts`` frames placed at real districts' coordinates (the synthetic box
    reaches into Nevada, which the contract's California region refuses)."""
    places = housing_df[["longitude", "latitude"]].drop_duplicates()

    def make(n: int, *, seed: int = 0, missing: int = 0) -> pd.DataFrame:
        frame = make_districts(n, seed=seed, missing=missing)
        at = places.sample(n, random_state=seed).to_numpy()
        frame[["longitude", "latitude"]] = at
        return frame

    return make


def test_validate_splits_reports_every_violation_of_both_splits(californian):
    train = californian(20, seed=5)
    contract = derive_contract(train, margin=0.1, region_margin_km=2.0)
    bad_train = train.copy()
    bad_train.loc[0, "median_income"] = 1e4
    bad_train.loc[1, "households"] = 0.5  # a count below 1: no district
    bad_train.loc[2, ["total_rooms", "total_bedrooms"]] = (10.0, 11.0)
    bad_test = californian(5, seed=6).drop(columns=["households"])
    bad_test.loc[1, "ocean_proximity"] = "ON THE MOON"
    bad_test.loc[3, ["latitude", "longitude"]] = (39.53, -119.81)  # Reno, Nevada

    with pytest.raises(ContractError) as info:
        validate_splits(bad_train, bad_test, contract)
    violations = info.value.violations
    assert violations == [
        f"train: households: 1 row(s) outside [1, {contract.features['households'].max:g}] "
        "(e.g. row 1: 0.5)",
        f"train: median_income: 1 row(s) outside (0, {contract.features['median_income'].max:g}]"
        " (e.g. row 0: 10000)",
        "train: total_bedrooms > total_rooms: 1 row(s) (e.g. row 2: 11 > 10); "
        "bedrooms are counted among the rooms",
        "test: missing column(s): households",
        "test: latitude/longitude: 1 row(s) outside California (its outline widened by 2 km) "
        "(e.g. row 3: 39.53, -119.81)",
        "test: ocean_proximity: 1 row(s) with unknown category ('ON THE MOON'); "
        f"allowed: {', '.join(contract.categories)}",
    ]
    assert str(info.value).startswith("split data breaks the data contract (6 violation(s))")


def test_validate_splits_accepts_clean_splits(californian):
    train = californian(20, seed=5)
    validate_splits(train, train.iloc[:5], derive_contract(train, margin=0.1))


def test_the_region_margin_param_reaches_the_contract(californian):
    train = californian(20, seed=5)
    contract = derive_contract(train, margin=0.1, region_margin_km=0.5)
    assert contract.region is not None and contract.region.margin_km == 0.5
    assert contract.to_dict()["derivation"]["region_margin_km"] == 0.5
