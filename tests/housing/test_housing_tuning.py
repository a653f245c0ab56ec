"""Unit tests of the sweep stage's core: the declaration and the per-fold objective."""

from __future__ import annotations

import numpy as np
import pytest

from housing.cv import Fold
from housing.metrics import rmse
from housing.model import build_regressor
from housing.sweep import SweepConfigError
from housing.tuning import make_objective, sweep_declaration

SECTION = {
    "config": {"method": "bayes", "metric": {"name": "cv_rmse", "goal": "minimize"}},
    "spaces": {"linear": {"alpha": {"distribution": "uniform", "min": 0.1, "max": 1.0}}},
}


def test_sweep_declaration_merges_config_and_family_space():
    declared = sweep_declaration(SECTION, "linear")
    assert declared == {**SECTION["config"], "parameters": SECTION["spaces"]["linear"]}


def test_sweep_declaration_refuses_a_family_without_a_space():
    with pytest.raises(SweepConfigError, match="no search space for the chosen family 'lightgbm'"):
        sweep_declaration(SECTION, "lightgbm")


class Recorder:
    """A reporter that keeps every (step, value) it is given."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))


def test_objective_reports_running_mean_once_per_fold():
    rng = np.random.default_rng(1)
    folds = []
    for _ in range(4):
        X = rng.uniform(0, 1, size=(25, 3))
        y_log = 11 + X[:, 0] + rng.normal(0, 0.1, 25)
        folds.append(Fold(X[:20], y_log[:20], X[20:], np.exp(y_log[20:])))
    recorder = Recorder()
    value = make_objective(folds, "linear", seed=0)({"alpha": 1.0}, recorder)

    assert [step for step, _ in recorder.reports] == [0, 1, 2, 3]
    per_fold = []
    for fold in folds:
        reg = build_regressor("linear", {"alpha": 1.0}, seed=0).fit(fold.X_fit, fold.y_fit_log)
        per_fold.append(rmse(fold.y_val, np.exp(reg.predict(fold.X_val))))
    expected_running = [np.mean(per_fold[: i + 1]) for i in range(4)]
    np.testing.assert_allclose([v for _, v in recorder.reports], expected_running)
    assert value == pytest.approx(np.mean(per_fold))
