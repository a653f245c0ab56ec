"""Unit tests of the select stage's core: the family leaderboard."""

from __future__ import annotations

import numpy as np
import pytest

from housing.cv import Fold
from housing.stage import StageError
from stages.select import leaderboard


def linear_folds(n_folds: int = 3, n: int = 30) -> list[Fold]:
    """Folds where log price is exactly linear in two features."""
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(n_folds):
        X = rng.uniform(0, 10, size=(n, 2))
        y_log = 11.0 + 0.1 * X[:, 0] - 0.05 * X[:, 1]
        folds.append(Fold(X[:20], y_log[:20], X[20:], np.exp(y_log[20:])))
    return folds


def test_leaderboard_is_ordered_best_first():
    families = {
        "random_forest": {"n_estimators": 3, "max_depth": 1},
        "linear": {"alpha": 1e-6},
        "hist_gradient_boosting": {"max_iter": 5, "min_samples_leaf": 5},
    }
    board = leaderboard(linear_folds(), families, seed=0)
    assert list(board.columns) == ["family", "cv_rmse", "cv_rmse_std"]
    assert board["family"].iloc[0] == "linear"
    assert board["cv_rmse"].iloc[0] < 1.0  # exact model of an exactly linear target
    assert board["cv_rmse"].is_monotonic_increasing
    assert sorted(board["family"]) == sorted(families)
    assert list(board.index) == [0, 1, 2]


def test_leaderboard_refuses_an_unknown_family():
    with pytest.raises(StageError, match=r"unknown family 'xgboost'; choose from linear, "):
        leaderboard(linear_folds(1), {"linear": {}, "xgboost": {}}, seed=0)
