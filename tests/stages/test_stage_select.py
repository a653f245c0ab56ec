"""Unit tests of the select stage's core: an equal search per family, then the 1-SE rule."""

from __future__ import annotations

import numpy as np
import pytest

from housing.cv import Fold
from housing.stage import StageError
from stages.select import leaderboard, search_families

CONFIG = {
    "method": "random",
    "metric": {"name": "cv_rmse", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 10, "eta": 3},
}
SPACES = {
    "linear": {"alpha": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3}},
    "random_forest": {
        "n_estimators": {"distribution": "int_uniform", "min": 10, "max": 20},
        "max_features": {"distribution": "uniform", "min": 0.5, "max": 1.0},
    },
    "hist_gradient_boosting": {
        "max_iter": {"distribution": "int_uniform", "min": 10, "max": 30},
        "min_samples_leaf": {"value": 5},
    },
}


def linear_folds(n_folds: int = 3, n: int = 40) -> list[Fold]:
    """Folds where log price is exactly linear in two features."""
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(n_folds):
        X = rng.uniform(0, 10, size=(n, 2))
        y_log = 11.0 + 0.1 * X[:, 0] - 0.05 * X[:, 1]
        folds.append(Fold(X[:30], y_log[:30], X[30:], np.exp(y_log[30:])))
    return folds


def test_every_family_gets_the_same_search_and_an_exact_model_wins():
    searched = search_families(
        linear_folds(),
        ["linear", "random_forest", "hist_gradient_boosting"],
        config=CONFIG,
        spaces=SPACES,
        n_trials=4,
        seed=0,
        step=10,
    )
    assert list(searched) == ["linear", "random_forest", "hist_gradient_boosting"]
    for s in searched.values():
        assert s["trials"] == 4
        assert len(s["per_fold"]) == 3
    chosen, board = leaderboard(searched)
    assert chosen == "linear"
    assert board["family"].iloc[0] == "linear"
    assert board["cv_rmse"].iloc[0] < 1.0  # exact model of an exactly linear target
    assert board["cv_rmse"].is_monotonic_increasing
    assert board.set_index("family").loc["linear", "chosen"]


def _searched(per_fold: dict[str, list[float]]) -> dict[str, dict]:
    return {f: {"per_fold": s, "trials": 4, "pruned": 0, "params": {}} for f, s in per_fold.items()}


def test_the_simpler_family_wins_a_tie_within_one_standard_error():
    chosen, board = leaderboard(
        _searched(
            {
                "random_forest": [101.0, 99.0, 103.0],  # +0.33 on average: fold noise
                "lightgbm": [100.0, 100.0, 102.0],
            }
        )
    )
    assert chosen == "random_forest"
    assert board["family"].iloc[0] == "lightgbm"  # the board is still ordered by score
    assert board["within_one_se"].all()


def test_a_family_better_on_every_fold_wins():
    chosen, _ = leaderboard(
        _searched({"random_forest": [110.0, 108.0, 112.0], "lightgbm": [100.0, 99.0, 101.0]})
    )
    assert chosen == "lightgbm"


def test_search_refuses_an_unknown_family():
    with pytest.raises(StageError, match=r"unknown family 'xgboost'; choose from linear, "):
        search_families(
            linear_folds(1), ["xgboost"], config=CONFIG, spaces=SPACES, n_trials=1, seed=0, step=1
        )
