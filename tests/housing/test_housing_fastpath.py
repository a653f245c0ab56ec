"""The numpy fast path returns exactly the full pipeline's numbers, for every family and imputer."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from housing.contract import NUMERIC_FEATURES, TARGET
from housing.fastpath import FastPredictor
from housing.model import FAMILIES, IMPUTERS, FeatureConfig, ModelSpec, build_model

SMALL = {
    "linear": {"alpha": 1.0},
    "random_forest": {"n_estimators": 5, "max_depth": 6},
    "hist_gradient_boosting": {"max_iter": 20},
    "lightgbm": {"n_estimators": 20, "num_leaves": 15},
}
ALL_GROUPS = FeatureConfig(n_clusters=4, rotations=(15.0, 45.0), neighbors=5, neighbor_folds=3)


@pytest.fixture(scope="module")
def split(small_train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """400 training rows and 200 query rows, a quarter of the queries without bedrooms."""
    train = small_train.iloc[:400]
    query = small_train.iloc[400:600].drop(columns=[TARGET]).reset_index(drop=True)
    query.loc[::4, "total_bedrooms"] = np.nan
    return train, query


def arrays(fast: FastPredictor, query: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    numeric = query[list(NUMERIC_FEATURES)].to_numpy(float)
    return numeric, [fast.category_index(c) for c in query["ocean_proximity"]]


def assert_same_prices(actual, expected):
    """Equal up to float summation order: LightGBM batches are summed in blocks of trees."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("family", "imputer"), itertools.product(FAMILIES, IMPUTERS))
def test_fast_path_equals_the_pipeline(family, imputer, split):
    train, query = split
    model = build_model(ModelSpec(imputer, ALL_GROUPS, family, SMALL[family], seed=0))
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    fast = FastPredictor(model)

    expected = model.predict(query)
    assert_same_prices(fast.predict(*arrays(fast, query)), expected)
    # Row by row too: the single-row path the API serves is bit-identical.
    for i in (0, 1, 4):
        one = query.iloc[[i]]
        np.testing.assert_array_equal(fast.predict(*arrays(fast, one)), expected[[i]])


def test_fast_path_without_optional_groups(split):
    train, query = split
    spec = ModelSpec("median", FeatureConfig(ratios=False, n_clusters=0), "lightgbm", seed=0)
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    fast = FastPredictor(model)
    assert_same_prices(fast.predict(*arrays(fast, query)), model.predict(query))


def test_predict_records_normalises_categories_and_missing_bedrooms(model_bundle_dir, split):
    from housing.artifact import load_bundle

    model = load_bundle(model_bundle_dir).model
    fast = FastPredictor(model)
    _, query = split
    rows = query.head(6)
    records = rows.to_dict("records")
    for rec in records:
        if pd.isna(rec["total_bedrooms"]):
            rec["total_bedrooms"] = None
        rec["ocean_proximity"] = f"  {rec['ocean_proximity'].lower()} "
    assert records[0]["total_bedrooms"] is None
    assert_same_prices(fast.predict_records(records), model.predict(rows))


def test_unknown_category_is_a_key_error(model_bundle_dir):
    from housing.artifact import load_bundle

    fast = FastPredictor(load_bundle(model_bundle_dir).model)
    assert fast.category_index(" near  bay") == fast.category_index("NEAR BAY")
    with pytest.raises(KeyError):
        fast.category_index("ON THE MOON")


def test_batches_are_scored_in_blocks_of_trees(split):
    """A forest larger than one block is summed block by block and still agrees."""
    from housing import fastpath

    train, query = split
    spec = ModelSpec("median", ALL_GROUPS, "lightgbm", {"n_estimators": 250}, seed=0)
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    assert model.regressor_.named_steps["regressor"].booster_.num_trees() > fastpath.TREE_BLOCK
    fast = FastPredictor(model)
    batch = query.head(max(fastpath.BLOCK_MIN_ROWS, 20))
    assert_same_prices(fast.predict(*arrays(fast, batch)), model.predict(batch))
