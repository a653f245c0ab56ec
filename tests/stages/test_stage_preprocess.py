"""Unit tests of the preprocess stage's core: imputer comparison, choice, contract checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.contract import ContractError, check_frame, derive_contract
from stages.preprocess import choose_imputer, compare_imputers, masked_imputation_rmse


def test_compare_imputers_scores_every_strategy(make_districts):
    train = make_districts(40, seed=1, missing=4)
    scores, per_fold = compare_imputers(train, ["median", "knn"], folds=2, seed=0)
    assert scores["strategy"].tolist() == ["median", "knn"]
    assert list(per_fold) == ["median", "knn"]
    for strategy, folds in per_fold.items():
        assert len(folds) == 2
        mean = scores.set_index("strategy").loc[strategy, "cv_rmse"]
        assert np.mean(folds) == pytest.approx(mean)
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
    """Within one paired standard error of the best CV RMSE, the most accurate imputer wins."""
    scores = pd.DataFrame(
        {
            "strategy": ["median", "mean", "knn"],
            "cv_rmse": [40.0, 40.5, 45.0],
            "cv_rmse_std": [2.0, 2.0, 2.0],
            "imputation_rmse": [9.0, 3.0, 1.0],
        }
    )
    per_fold = {
        "median": [38.0, 42.0, 40.0],
        "mean": [39.5, 41.0, 41.0],  # +0.5 on average, SE of the difference ~0.76: a tie
        "knn": [43.0, 47.0, 45.0],  # +5 on every fold: clearly worse
    }
    assert choose_imputer(scores, per_fold) == "mean"
    # A clear winner on the model score keeps its place whatever its imputation error.
    clear = {**per_fold, "mean": [40.0, 44.0, 42.0]}
    assert choose_imputer(scores, clear) == "median"


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


def test_the_train_split_is_checked_against_its_contract_with_every_violation(californian):
    train = californian(20, seed=5)
    contract = derive_contract(train, margin=0.1, region_margin_km=2.0)
    bad_train = train.copy()
    bad_train.loc[0, "median_income"] = 1e4
    bad_train.loc[1, "households"] = 0.5  # a count below 1: no district
    bad_train.loc[2, ["total_rooms", "total_bedrooms"]] = (10.0, 11.0)
    bad_train.loc[3, "ocean_proximity"] = "ON THE MOON"
    bad_train.loc[4, ["latitude", "longitude"]] = (39.53, -119.81)  # Reno, Nevada

    with pytest.raises(ContractError) as info:
        check_frame(bad_train, contract, with_target=True, what="train split")
    violations = info.value.violations
    assert violations == [
        f"households: 1 row(s) outside [1, {contract.features['households'].max:g}] "
        "(e.g. row 1: 0.5)",
        f"median_income: 1 row(s) outside (0, {contract.features['median_income'].max:g}]"
        " (e.g. row 0: 10000)",
        "total_bedrooms > total_rooms: 1 row(s) (e.g. row 2: 11 > 10); "
        "bedrooms are counted among the rooms",
        "latitude/longitude: 1 row(s) outside California (its outline widened by 2 km) "
        "(e.g. row 4: 39.53, -119.81)",
        "ocean_proximity: 1 row(s) with unknown category ('ON THE MOON'); "
        f"allowed: {', '.join(contract.categories)}",
    ]
    assert str(info.value).startswith("train split breaks the data contract (5 violation(s))")


def test_the_train_split_passes_the_contract_derived_from_it(californian):
    train = californian(20, seed=5)
    check_frame(train, derive_contract(train, margin=0.1), with_target=True, what="train split")


def test_the_region_margin_param_reaches_the_contract(californian):
    train = californian(20, seed=5)
    contract = derive_contract(train, margin=0.1, region_margin_km=0.5)
    assert contract.region is not None and contract.region.margin_km == 0.5
    assert contract.to_dict()["derivation"]["region_margin_km"] == 0.5
