"""The search objectives: staged fits equal one-shot fits, rounds are the pruning resource."""

from __future__ import annotations

import numpy as np
import pytest

from housing.cv import Fold
from housing.metrics import rmse
from housing.model import build_regressor
from housing.sweep import SweepConfigError, TrialPruned, TrialRecord, parse_sweep_config
from housing.tuning import (
    at_bounds,
    bag_scores,
    choose_bag,
    fold_rmse,
    make_objective,
    params_key,
    rounds_fitted,
    staged_predictions,
    sweep_declaration,
)

CONFIG = {"method": "bayes", "metric": {"name": "cv_rmse", "goal": "minimize"}}
SPACES = {"linear": {"alpha": {"distribution": "uniform", "min": 0.1, "max": 1.0}}}

FAMILY_PARAMS = {
    "linear": {"alpha": 1.0},
    "random_forest": {"n_estimators": 25, "max_features": 0.5, "min_samples_leaf": 2},
    "hist_gradient_boosting": {"max_iter": 25, "learning_rate": 0.1, "max_leaf_nodes": 15},
    "lightgbm": {
        "n_estimators": 25,
        "learning_rate": 0.1,
        "num_leaves": 15,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.7,
        "min_child_samples": 5,
    },
}


def make_folds(n_folds: int = 3, n: int = 120) -> list[Fold]:
    rng = np.random.default_rng(1)
    folds = []
    for _ in range(n_folds):
        X = rng.uniform(0, 1, size=(n, 4))
        y_log = 11 + X[:, 0] + np.sin(6 * X[:, 1]) + rng.normal(0, 0.1, n)
        cut = n * 4 // 5
        folds.append(Fold(X[:cut], y_log[:cut], X[cut:], np.exp(y_log[cut:])))
    return folds


class Recorder:
    """A reporter that keeps every (step, value) it is given."""

    def __init__(self, prune_after: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_after = prune_after

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))
        if self.prune_after is not None and len(self.reports) >= self.prune_after:
            raise TrialPruned("stop")


def test_sweep_declaration_merges_config_and_family_space():
    declared = sweep_declaration(CONFIG, SPACES, "linear")
    assert declared == {**CONFIG, "parameters": SPACES["linear"]}


def test_sweep_declaration_refuses_a_family_without_a_space():
    with pytest.raises(SweepConfigError, match="no search space for the family 'lightgbm'"):
        sweep_declaration(CONFIG, SPACES, "lightgbm")


@pytest.mark.parametrize("family", sorted(FAMILY_PARAMS))
def test_staged_fit_ends_where_a_one_shot_fit_does(family):
    fold = make_folds(1)[0]
    params = FAMILY_PARAMS[family]
    stages = list(staged_predictions(family, params, fold, seed=3, step=10))
    one_shot = build_regressor(family, params, seed=3).fit(fold.X_fit, fold.y_fit_log)
    np.testing.assert_allclose(stages[-1][1], one_shot.predict(fold.X_val), rtol=0, atol=1e-12)
    expected_steps = [1] if family == "linear" else [10, 20, 25]
    assert [rounds for rounds, _ in stages] == expected_steps


def test_objective_reports_the_fold_mean_after_every_step_of_rounds():
    folds = make_folds()
    params = FAMILY_PARAMS["lightgbm"]
    recorder = Recorder()
    value = make_objective(folds, "lightgbm", seed=0, step=10)(dict(params), recorder)

    assert [step for step, _ in recorder.reports] == [10, 20, 25]
    for rounds, reported in recorder.reports:
        partial = {**params, "n_estimators": rounds}
        assert reported == pytest.approx(np.mean(fold_rmse(folds, "lightgbm", partial, seed=0)))
    assert value == recorder.reports[-1][1]


def test_objective_keeps_the_per_fold_scores_of_completed_trials():
    folds = make_folds()
    kept: dict[str, list[float]] = {}
    objective = make_objective(folds, "linear", seed=0, step=10, per_fold=kept)
    value = objective({"alpha": 1.0}, Recorder())
    assert kept == {params_key({"alpha": 1.0}): fold_rmse(folds, "linear", {"alpha": 1.0}, seed=0)}
    assert value == pytest.approx(np.mean(kept[params_key({"alpha": 1.0})]))


def test_a_pruned_trial_stops_training():
    folds = make_folds()
    recorder = Recorder(prune_after=1)
    with pytest.raises(TrialPruned):
        make_objective(folds, "lightgbm", seed=0, step=10)(FAMILY_PARAMS["lightgbm"], recorder)
    assert [step for step, _ in recorder.reports] == [10]


def test_fold_rmse_is_per_fold():
    folds = make_folds()
    scores = fold_rmse(folds, "linear", {"alpha": 1.0}, seed=0)
    reg = build_regressor("linear", {"alpha": 1.0}, seed=0).fit(folds[1].X_fit, folds[1].y_fit_log)
    assert scores[1] == pytest.approx(rmse(folds[1].y_val, np.exp(reg.predict(folds[1].X_val))))


def test_at_bounds_flags_values_near_a_wall_on_the_distribution_scale():
    spec = parse_sweep_config(
        {
            **CONFIG,
            "parameters": {
                "n": {"distribution": "int_uniform", "min": 100, "max": 1100},
                "lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 1.0},
                "c": {"values": ["a", "b"]},
            },
        }
    )
    assert at_bounds(spec, {"n": 1085, "lr": 0.5, "c": "a"}) == {"n": "max"}
    # 0.00112 is 12 % of the way up on a linear scale but 1.6 % on the log scale.
    assert at_bounds(spec, {"n": 600, "lr": 0.00112}) == {"lr": "min"}
    assert at_bounds(spec, {"n": 600, "lr": 0.03}) == {}


def test_rounds_fitted_counts_what_pruning_saved():
    trials = [
        TrialRecord(0, {"n_estimators": 300}, 1.0, "complete", [3.0, 2.0, 1.0]),
        TrialRecord(1, {"n_estimators": 500}, None, "pruned", [4.0]),
    ]
    cost = rounds_fitted(trials, "lightgbm", step=100, n_folds=5)
    assert cost == {
        "rounds_fitted": (300 + 100) * 5,
        "rounds_without_pruning": (300 + 500) * 5,
        "rounds_saved_share": 0.5,
    }
    assert rounds_fitted(trials, "linear", step=100, n_folds=5) == {}


@pytest.mark.parametrize("family", sorted(FAMILY_PARAMS))
def test_objective_is_the_same_whatever_the_number_of_fold_workers(family, monkeypatch):
    """Folds train side by side in threads; each fold's arithmetic is its own, so one worker
    and three give the same reports to the bit."""
    folds = make_folds()
    runs = []
    for workers in ("1", "3"):
        monkeypatch.setenv("HOUSING_CV_WORKERS", workers)
        recorder = Recorder()
        make_objective(folds, family, seed=0, step=10)(dict(FAMILY_PARAMS[family]), recorder)
        runs.append(recorder.reports)
    assert runs[0] == runs[1]


def test_bag_scores_are_the_scores_of_the_bagged_regressor():
    folds = make_folds(n=300)
    params = FAMILY_PARAMS["lightgbm"]
    scores = bag_scores(folds, "lightgbm", params, seed=4, sizes=[1, 3])
    assert scores[1] == fold_rmse(folds, "lightgbm", params, seed=4)
    bagged = []
    for f in folds:
        reg = build_regressor("lightgbm", params, seed=4, bag=3).fit(f.X_fit, f.y_fit_log)
        bagged.append(rmse(f.y_val, np.exp(reg.predict(f.X_val))))
    np.testing.assert_allclose(scores[3], bagged, rtol=1e-12)


def test_choose_bag_fits_only_bags_within_the_rounds_budget(monkeypatch):
    import housing.tuning as tuning

    fitted: list[list[int]] = []

    def fake_scores(folds, family, params, *, seed, sizes):
        fitted.append(list(sizes))
        # Every extra booster lowers every fold's RMSE by 100 (paired SE 0): more is better.
        return {n: [1000.0 - 100 * n + k for k in range(3)] for n in sizes}

    monkeypatch.setattr(tuning, "bag_scores", fake_scores)
    params = {"n_estimators": 300}
    choice = choose_bag([], "lightgbm", params, seed=0, sizes=[1, 2, 3, 5], max_rounds=800)
    assert fitted == [[1, 2]] and choice.chosen == 2
    report = choice.report["candidates"]
    assert report["3"] == {"total_rounds": 900, "within_budget": False}
    assert report["2"]["minus_one"] == -100 and report["2"]["within_one_se"]
    assert not report["1"]["within_one_se"]


def test_choose_bag_keeps_one_booster_unless_more_beat_it_by_one_se(monkeypatch):
    import housing.tuning as tuning

    noise = {1: [1000.0, 1010.0, 990.0], 2: [990.0, 1015.0, 992.0], 3: [1010.0, 995.0, 980.0]}
    monkeypatch.setattr(tuning, "bag_scores", lambda *a, sizes, **k: {n: noise[n] for n in sizes})
    choice = choose_bag([], "lightgbm", {"n_estimators": 100}, seed=0, sizes=[3, 1, 2],
                        max_rounds=800)  # fmt: skip
    assert choice.chosen == 1
    assert choose_bag([], "linear", {}, seed=0, sizes=[1, 2], max_rounds=800).chosen == 1
    with pytest.raises(ValueError, match="must start at 1"):
        choose_bag([], "lightgbm", {"n_estimators": 100}, seed=0, sizes=[2, 3], max_rounds=800)


def test_lightgbm_rounds_on_fold_threads_keep_verbose_off(monkeypatch, capfd):
    """LightGBM's log level is per thread: each lockstep step runs on new threads, which
    printed "[LightGBM] [Warning] No further splits with positive gain" (C printf, fd 1)
    although the booster was built with verbose=-1."""
    monkeypatch.setenv("HOUSING_CV_WORKERS", "3")
    # 64 leaves of at least 40 rows cannot be grown from 96 rows: every tree stops early.
    params = {**FAMILY_PARAMS["lightgbm"], "num_leaves": 64, "min_child_samples": 40}
    make_objective(make_folds(), "lightgbm", seed=0, step=5)(params, Recorder())
    out, err = capfd.readouterr()
    assert "[LightGBM]" not in out + err
