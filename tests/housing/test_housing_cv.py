"""Cross-validation refits the preprocessing inside every fold: no validation row leaks in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from housing.contract import TARGET
from housing.cv import (
    Fold,
    cv_rmse,
    cv_workers,
    fold_scores,
    kfold,
    lockstep,
    make_folds,
    map_folds,
    one_se_choice,
    paired_se,
    within_one_se,
)
from housing.features import BEDROOMS, NeighborPrice, RawEncoder, _geo_coords
from housing.metrics import rmse
from housing.model import build_imputer

K = 3


@pytest.fixture(scope="module")
def train(housing_df: pd.DataFrame) -> pd.DataFrame:
    """120 real districts, 12 without total_bedrooms, coordinates jittered so no distances tie.

    (Real coordinates sit on a 0.01° grid, so equal distances happen and KD-tree tie order
    would make a brute-force recomputation disagree for reasons unrelated to leakage.)
    """
    missing = housing_df[housing_df["total_bedrooms"].isna()].head(12)
    rows = pd.concat([housing_df.dropna().head(108), missing]).reset_index(drop=True)
    jitter = np.random.default_rng(0).uniform(-0.004, 0.004, size=(len(rows), 2))
    rows[["longitude", "latitude"]] += jitter
    return rows.sample(frac=1, random_state=0).reset_index(drop=True)


def preprocessor() -> Pipeline:
    return Pipeline(
        [
            ("encode", RawEncoder()),
            ("impute", build_imputer("median", seed=0)),
            ("neighbors", NeighborPrice(n_neighbors=K, n_folds=3, random_state=0)),
        ]
    )


def test_folds_partition_the_rows(train):
    folds = make_folds(train, preprocessor(), n_splits=4, seed=0)
    assert len(folds) == 4
    assert sum(len(f.y_val) for f in folds) == len(train)
    splits = list(kfold(4, 0).split(train))
    y = train[TARGET].to_numpy(float)
    for fold, (fit_idx, val_idx) in zip(folds, splits, strict=True):
        np.testing.assert_array_equal(fold.y_val, y[val_idx])
        np.testing.assert_allclose(fold.y_fit_log, np.log(y[fit_idx]))
        assert fold.X_fit.shape[0] == len(fit_idx) and fold.X_val.shape[0] == len(val_idx)


def test_fold_preprocessing_sees_only_the_fold_training_rows(train):
    """Imputed values and neighbour prices of validation rows come from fit rows alone."""
    folds = make_folds(train, preprocessor(), n_splits=4, seed=0)
    X = train.drop(columns=[TARGET])
    y_log = np.log(train[TARGET].to_numpy(float))
    for fold, (fit_idx, val_idx) in zip(folds, kfold(4, 0).split(X), strict=True):
        fit_rows, val_rows = X.iloc[fit_idx], X.iloc[val_idx]
        # The imputer's fill value is the fit rows' median, not the whole split's.
        missing = val_rows["total_bedrooms"].isna().to_numpy()
        assert missing.any()
        fill = fit_rows["total_bedrooms"].median()
        np.testing.assert_array_equal(fold.X_val[missing, BEDROOMS], fill)

        # Neighbour prices: mean log price of the K nearest *fit* rows, recomputed by brute force.
        enc = RawEncoder().fit(fit_rows)
        fit_c = _geo_coords(enc.transform(fit_rows))
        val_c = _geo_coords(enc.transform(val_rows))
        dist = ((val_c[:, None, :] - fit_c[None, :, :]) ** 2).sum(axis=2)
        expected = y_log[fit_idx][np.argsort(dist, axis=1, kind="stable")[:, :K]].mean(axis=1)
        np.testing.assert_allclose(fold.X_val[:, -1], expected)

        # With validation rows in the neighbour pool the feature would differ (the test can fail).
        all_c = _geo_coords(RawEncoder().fit(X).transform(X))
        leaky = ((val_c[:, None, :] - all_c[None, :, :]) ** 2).sum(axis=2)
        leaked = y_log[np.argsort(leaky, axis=1, kind="stable")[:, :K]].mean(axis=1)
        assert not np.allclose(fold.X_val[:, -1], leaked)


def test_fold_scores_and_cv_rmse():
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(3):
        X = rng.uniform(0, 1, size=(30, 2))
        y_log = 11 + X[:, 0] + rng.normal(0, 0.05, 30)
        folds.append(Fold(X[:20], y_log[:20], X[20:], np.exp(y_log[20:])))
    scores = list(fold_scores(folds, LinearRegression))
    expected = [
        rmse(f.y_val, np.exp(LinearRegression().fit(f.X_fit, f.y_fit_log).predict(f.X_val)))
        for f in folds
    ]
    assert scores == pytest.approx(expected)
    assert cv_rmse(folds, LinearRegression) == pytest.approx((np.mean(scores), np.std(scores)))


def test_within_one_se_keeps_what_fold_noise_cannot_separate():
    best = [100.0, 110.0, 90.0, 105.0, 95.0]
    noisy_tie = [101.0, 108.0, 93.0, 104.0, 96.0]  # +0.4 on average, SE ~0.9
    clearly_worse = [120.0, 130.0, 110.0, 125.0, 115.0]  # +20 on every fold
    per_fold = {"simple": noisy_tie, "worse": clearly_worse, "complex": best}
    assert within_one_se(per_fold) == ["simple", "complex"]
    assert one_se_choice(per_fold) == "simple"


def test_one_se_choice_takes_the_best_when_it_wins_on_every_fold():
    per_fold = {"simple": [101.0, 102.0, 103.0], "complex": [100.0, 100.5, 101.0]}
    assert one_se_choice(per_fold) == "complex"


def test_paired_se_is_of_the_difference_not_of_each_score():
    a = np.array([100.0, 200.0, 300.0])
    # Large spread across folds, constant difference: the paired SE is zero.
    assert paired_se(a + 5, a) == 0.0
    with pytest.raises(ValueError, match="at least two folds"):
        paired_se(np.array([1.0]), np.array([2.0]))


def test_within_one_se_refuses_candidates_on_different_folds():
    with pytest.raises(ValueError, match="different numbers of folds"):
        within_one_se({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]})


def test_fold_preprocessing_is_the_same_whatever_the_number_of_workers(train, monkeypatch):
    built = []
    for workers in ("1", "2"):
        monkeypatch.setenv("HOUSING_CV_WORKERS", workers)
        built.append(make_folds(train, preprocessor(), n_splits=3, seed=0))
    for one, two in zip(*built, strict=True):
        np.testing.assert_array_equal(one.X_fit, two.X_fit)
        np.testing.assert_array_equal(one.X_val, two.X_val)


def test_map_folds_keeps_the_order_and_lockstep_refuses_ragged_iterators(monkeypatch):
    monkeypatch.setenv("HOUSING_CV_WORKERS", "3")
    assert map_folds(lambda x: x * x, range(7)) == [x * x for x in range(7)]
    steps = list(lockstep([iter("abc"), iter("xyz")]))
    assert steps == [("a", "x"), ("b", "y"), ("c", "z")]
    with pytest.raises(ValueError, match="different lengths"):
        list(lockstep([iter("ab"), iter("xyz")]))


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_cv_workers_refuses_a_bad_setting(raw, monkeypatch):
    monkeypatch.setenv("HOUSING_CV_WORKERS", raw)
    with pytest.raises(ValueError, match="HOUSING_CV_WORKERS"):
        cv_workers()
