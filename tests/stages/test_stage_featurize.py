"""Unit tests of the featurize stage's core: groups and settings chosen by CV, 1-SE rule."""

from __future__ import annotations

import numpy as np
import pytest

from housing.model import FeatureConfig
from housing.stage import StageError
from stages.featurize import Scorer, ablation, choose_setting

CANDIDATES = {
    "rotations": {"rotations": (45.0,)},
    "neighbors": {"neighbors": 5, "neighbor_folds": 3},
}
BASE = FeatureConfig(ratios=False, n_clusters=2)


def diagonal_prices(train):
    """Price set by one diagonal boundary: a 45° rotated coordinate splits it in one cut."""
    diagonal = train["longitude"] + train["latitude"]
    train["median_house_value"] = np.where(diagonal > diagonal.median(), 400_000.0, 100_000.0)
    return train


def test_scorer_returns_one_rmse_per_fold(make_districts):
    scores = Scorer(make_districts(60, seed=0), imputer="median", folds=3, seed=0)(BASE)
    assert len(scores) == 3
    assert all(s > 0 for s in scores)


def test_ablation_keeps_a_group_that_clearly_helps(make_districts):
    score = Scorer(diagonal_prices(make_districts(300, seed=0)), imputer="median", folds=3, seed=0)
    config, steps = ablation(score, BASE, CANDIDATES)
    assert steps["step"].tolist() == ["ratios+clusters", "+rotations", "+neighbors"]
    base_rmse, rotated_rmse = steps["cv_rmse"].iloc[:2]
    assert rotated_rmse < base_rmse / 2
    assert steps["kept"].tolist()[:2] == [True, True]
    assert config.rotations == (45.0,)


def test_ablation_drops_groups_that_do_not_help(make_districts):
    """Price depends on income only: neither location group earns its place."""
    score = Scorer(make_districts(300, seed=0), imputer="median", folds=3, seed=0)
    config, steps = ablation(score, BASE, CANDIDATES)
    assert steps["kept"].tolist() == [True, False, False]
    assert config == BASE


class FakeScorer:
    """Per-fold scores by K, to test the rule apart from any model."""

    def __init__(self, by_k: dict[int, list[float]]) -> None:
        self.by_k = by_k

    def __call__(self, config: FeatureConfig) -> list[float]:
        return self.by_k[config.n_clusters]


def test_choose_setting_takes_the_fewest_clusters_within_one_se():
    by_k = {
        0: [120.0, 118.0, 122.0],  # clearly worse
        4: [101.0, 99.5, 102.0],  # +0.17 on average: a tie with the best
        16: [100.0, 100.0, 102.0],  # the best
        32: [100.5, 100.5, 102.5],  # +0.5 on every fold: worse, however little
    }
    k, table = choose_setting(FakeScorer(by_k), BASE, "n_clusters", [0, 4, 16, 32])
    assert k == 4
    assert table["n_clusters"].tolist() == [0, 4, 16, 32]
    assert table["within_one_se"].tolist() == [False, True, True, False]
    assert table["chosen"].tolist() == [False, True, False, False]


def test_choose_setting_takes_a_clear_winner_inside_the_range():
    by_k = {2: [110.0, 111.0, 112.0], 8: [100.0, 101.0, 102.0], 32: [105.0, 106.0, 107.0]}
    k, _ = choose_setting(FakeScorer(by_k), BASE, "n_clusters", [2, 8, 32])
    assert k == 8


def test_choose_setting_refuses_an_empty_range():
    with pytest.raises(StageError, match="no candidate values for n_clusters"):
        choose_setting(FakeScorer({}), BASE, "n_clusters", [])
