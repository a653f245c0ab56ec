"""The one model object: every family fits raw fields and predicts positive dollar prices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import TransformedTargetRegressor

from housing.contract import TARGET
from housing.model import (
    FAMILIES,
    IMPUTERS,
    FeatureConfig,
    ModelSpec,
    build_imputer,
    build_model,
    build_regressor,
)

SMALL = {
    "linear": {"alpha": 1.0},
    "random_forest": {"n_estimators": 15, "min_samples_leaf": 2},
    "hist_gradient_boosting": {"max_iter": 40},
    "lightgbm": {"n_estimators": 40, "num_leaves": 15},
}
FEATURES = FeatureConfig(n_clusters=4, rotations=(30.0,), neighbors=5, neighbor_folds=3)


@pytest.fixture(scope="module")
def data(small_train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return small_train.iloc[:800], small_train.iloc[800:1000]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_fits_raw_fields_and_predicts_positive_prices(family, data):
    train, test = data
    spec = ModelSpec("median", FEATURES, family, SMALL[family], seed=0)
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    pred = model.predict(test.drop(columns=[TARGET]))

    assert isinstance(model, TransformedTargetRegressor)
    assert pred.shape == (len(test),)
    assert np.isfinite(pred).all() and (pred > 0).all()
    # Better than predicting the mean: the features carry signal for every family.
    baseline = np.sqrt(np.mean((test[TARGET] - train[TARGET].mean()) ** 2))
    assert np.sqrt(np.mean((test[TARGET] - pred) ** 2)) < baseline
    steps = [name for name, _ in model.regressor_.steps]
    assert steps == ["encode", "impute", "geo", "neighbors", "regressor"]


def test_the_model_is_deterministic_by_seed(data):
    train, test = data
    spec = ModelSpec("median", FEATURES, "lightgbm", SMALL["lightgbm"], seed=3)
    preds = [
        build_model(spec)
        .fit(train.drop(columns=[TARGET]), train[TARGET])
        .predict(test.drop(columns=[TARGET]))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*preds)


def test_fixed_categories_are_used_for_the_encoder(data):
    train, _ = data
    cats = ("<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN")
    model = build_model(ModelSpec("median", FEATURES, "linear"), categories=cats)
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    assert tuple(model.regressor_.named_steps["encode"].categories_) == cats


@pytest.mark.parametrize("strategy", IMPUTERS)
def test_every_imputer_fills_missing_values(strategy):
    X = np.array([[1.0, 2.0], [np.nan, 3.0], [3.0, 4.0], [5.0, 5.0], [7.0, 6.0], [9.0, 7.0]])
    filled = build_imputer(strategy, seed=0).fit_transform(X)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(np.delete(filled, 1, axis=0), np.delete(X, 1, axis=0))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown imputer 'zero'; choose one of median, mean"):
        build_imputer("zero", seed=0)
    with pytest.raises(ValueError, match="unknown model family 'svm'; choose one of linear"):
        build_regressor("svm", {}, seed=0)


def test_feature_config_round_trips():
    assert FeatureConfig.from_dict(FEATURES.to_dict()) == FEATURES
    assert FeatureConfig.from_dict({"rotations": [15, 30]}).rotations == (15.0, 30.0)


def test_a_bag_predicts_the_mean_log_price_of_its_seeded_members(data):
    train, test = data
    X, y, X_test = train.drop(columns=[TARGET]), train[TARGET], test.drop(columns=[TARGET])
    params = {**SMALL["lightgbm"], "subsample": 0.7, "subsample_freq": 1}
    bag = build_model(ModelSpec("median", FEATURES, "lightgbm", params, seed=5, bag=3)).fit(X, y)
    singles = [
        build_model(ModelSpec("median", FEATURES, "lightgbm", params, seed=s)).fit(X, y)
        for s in (5, 6, 7)
    ]
    # The preprocessing is seeded by the spec's seed (5): only the first single shares it,
    # so compare the members' log prices on the bag's own feature matrix.
    matrix = bag.regressor_[:-1].transform(X_test)
    members = bag.regressor_.named_steps["regressor"].estimators_
    expected = np.exp(np.mean([m.predict(matrix) for m in members], axis=0))
    np.testing.assert_allclose(bag.predict(X_test), expected, rtol=1e-12)
    # Member 0 is the single model of the same seed, tree for tree.
    np.testing.assert_array_equal(
        members[0].predict(matrix), singles[0].regressor_[-1].predict(matrix)
    )
    assert not np.array_equal(members[0].predict(matrix), members[1].predict(matrix))


def test_only_positive_bags_of_lightgbm_are_built():
    with pytest.raises(ValueError, match="only lightgbm boosters are averaged"):
        build_regressor("random_forest", {}, seed=0, bag=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="bag must be a positive integer"):
            build_regressor("lightgbm", {}, seed=0, bag=bad)
