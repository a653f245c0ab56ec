"""The embedded Optuna engine on a cheap analytic objective (W&B disabled)."""

from __future__ import annotations

import logging
import math

import pytest

from housing.sweep import (
    SweepResult,
    SweepRunError,
    parse_sweep_config,
    run_sweep,
)

N_STEPS = 5
HYPERBAND = {"type": "hyperband", "min_iter": 1, "eta": 3}


def _spec(goal: str = "minimize", method: str = "bayes", **top):
    params = top.pop(
        "parameters",
        {
            "x": {"min": -5.0, "max": 5.0},
            "lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 1.0},
            "boosting": {"values": ["gbdt", "dart"]},
            "n_estimators": {"value": 800},
        },
    )
    return parse_sweep_config(
        {"method": method, "metric": {"name": "cv_rmse", "goal": goal}, "parameters": params, **top}
    )


class Quadratic:
    """(x-1)^2 + (log10 lr + 1)^2, +10 for dart; reports a converging score per fold."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign
        self.steps_run: list[int] = []  # per call, how many folds actually ran
        self.seen: list[dict] = []

    def score(self, p: dict) -> float:
        s = (p["x"] - 1.0) ** 2 + (math.log10(p["lr"]) + 1.0) ** 2
        return s + (10.0 if p["boosting"] == "dart" else 0.0)

    def __call__(self, params: dict, reporter) -> float:
        self.seen.append(params)
        self.steps_run.append(0)
        final = self.score(params)
        for step in range(1, N_STEPS + 1):
            self.steps_run[-1] = step
            reporter.report(step, self.sign * (final + 1.0 / step))
        return self.sign * final


def _sweep(spec, objective, n=30, seed=0) -> SweepResult:
    return run_sweep(
        spec, objective, n_trials=n, seed=seed, wandb_mode="disabled", show_progress=False
    )


def _history(result: SweepResult) -> list[tuple]:
    return [(t.params, t.value, t.state, t.intermediate) for t in result.trials]


def test_hyperband_prunes_and_pruned_trials_stop_running() -> None:
    objective = Quadratic()
    result = _sweep(_spec(early_terminate=HYPERBAND), objective, n=30)
    assert result.n_pruned > 0
    assert result.n_complete + result.n_pruned == len(result.trials) == 30
    for trial, ran in zip(result.trials, objective.steps_run, strict=True):
        assert len(trial.intermediate) == ran  # nothing ran after the prune signal
        if trial.state == "pruned":
            assert ran < N_STEPS and trial.value is None
        else:
            assert ran == N_STEPS and trial.value is not None
    # Pruning targets bad configurations: pruned trials scored worse than the best at step 1.
    best_first = min(t.intermediate[0] for t in result.trials if t.state == "complete")
    assert all(t.intermediate[-1] > best_first for t in result.trials if t.state == "pruned")


def test_without_early_terminate_nothing_is_pruned() -> None:
    objective = Quadratic()
    result = _sweep(_spec(), objective, n=15)
    assert result.n_pruned == 0 and result.n_complete == 15
    assert objective.steps_run == [N_STEPS] * 15


def test_same_seed_same_history_different_seed_different_history() -> None:
    a = _sweep(_spec(early_terminate=HYPERBAND), Quadratic(), seed=7)
    b = _sweep(_spec(early_terminate=HYPERBAND), Quadratic(), seed=7)
    c = _sweep(_spec(early_terminate=HYPERBAND), Quadratic(), seed=8)
    assert a.sweep_id == b.sweep_id != c.sweep_id
    assert _history(a) == _history(b)
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_best_is_the_best_complete_trial_and_constants_reach_the_objective() -> None:
    objective = Quadratic()
    result = _sweep(_spec(), objective, n=30)
    complete = [t for t in result.trials if t.state == "complete"]
    best = min(complete, key=lambda t: t.value)
    assert result.best_value == best.value and result.best_params == best.params
    assert result.best_number == best.number
    assert all(p["n_estimators"] == 800 for p in objective.seen)
    assert result.best_params["boosting"] == "gbdt"  # dart costs +10: TPE must find that
    # Types follow the declaration: int_uniform -> int, log range -> float within bounds.
    assert all(0.001 <= p["lr"] <= 1.0 and -5.0 <= p["x"] <= 5.0 for p in objective.seen)


def test_maximize_goal() -> None:
    result = _sweep(_spec(goal="maximize"), Quadratic(sign=-1.0), n=20)
    values = [t.value for t in result.trials if t.state == "complete"]
    assert result.best_value == max(values)
    frame = result.history_frame()
    assert frame["best_so_far"].is_monotonic_increasing
    assert frame["best_so_far"].iloc[-1] == result.best_value


def test_grid_visits_every_point_once() -> None:
    spec = _spec(
        method="grid",
        parameters={
            "boosting": {"values": ["gbdt", "dart", "goss"]},
            "depth": {"min": 2, "max": 3},
            "n_estimators": {"value": 800},
        },
    )
    seen: list[tuple] = []

    def objective(p, reporter):
        seen.append((p["boosting"], p["depth"], p["n_estimators"]))
        return float(p["depth"])

    result = _sweep(spec, objective, n=100)
    assert len(result.trials) == 6
    assert sorted(seen) == sorted((b, d, 800) for b in ("gbdt", "dart", "goss") for d in (2, 3))
    assert result.best_value == 2.0


def test_quantized_and_int_params_arrive_with_declared_types() -> None:
    spec = _spec(
        method="random",
        parameters={
            "leaves": {"distribution": "q_log_uniform_values", "min": 8, "max": 256, "q": 8},
            "n": {"min": 5, "max": 100},
            "frac": {"distribution": "q_uniform", "min": 0.5, "max": 1.0, "q": 0.1},
        },
    )
    seen: list[dict] = []

    def objective(p, reporter):
        seen.append(p)
        return float(p["n"])

    _sweep(spec, objective, n=25)
    assert all(isinstance(p["leaves"], int) and p["leaves"] % 8 == 0 for p in seen)
    assert all(isinstance(p["n"], int) and 5 <= p["n"] <= 100 for p in seen)
    assert all(round(p["frac"] * 10) == p["frac"] * 10 and 0.5 <= p["frac"] <= 1.0 for p in seen)
    assert len({p["leaves"] for p in seen}) > 1


def test_failed_trials_are_recorded_and_the_sweep_goes_on(caplog) -> None:
    def objective(p, reporter):
        if p["boosting"] == "dart":
            raise RuntimeError("dart exploded")
        if p["x"] > 4.0:
            return math.nan
        return (p["x"] - 1.0) ** 2

    with caplog.at_level(logging.WARNING, logger="housing.sweep"):
        result = _sweep(_spec(), objective, n=20)
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and result.n_failed == len(failed)
    assert all(t.value is None and t.error for t in failed)
    assert any("dart exploded" in t.error for t in failed)
    assert result.best_params["boosting"] == "gbdt"
    assert "dart exploded" in caplog.text


def test_all_failed_raises_one_clear_line() -> None:
    def objective(p, reporter):
        raise ValueError("bad data")

    with pytest.raises(SweepRunError) as info:
        _sweep(_spec(), objective, n=3)
    message = str(info.value)
    assert "no trial completed" in message and "ValueError: bad data" in message
    assert "3 of 3 failed" in message and "\n" not in message


def test_reporter_rejects_steps_that_do_not_increase() -> None:
    def objective(p, reporter):
        reporter.report(2, 1.0)
        reporter.report(1, 1.0)
        return 1.0

    with pytest.raises(SweepRunError, match="steps must increase"):
        _sweep(_spec(), objective, n=2)


def test_run_cap_and_metric_target_stop_the_sweep() -> None:
    capped = _sweep(_spec(run_cap=4), Quadratic(), n=50)
    assert len(capped.trials) == 4
    target = parse_sweep_config(
        {
            "method": "random",
            "metric": {"name": "m", "goal": "minimize", "target": 1e9},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    assert len(_sweep(target, lambda p, r: p["x"], n=50).trials) == 1


def test_history_frame_has_one_row_per_trial() -> None:
    result = _sweep(_spec(early_terminate=HYPERBAND), Quadratic(), n=20)
    frame = result.history_frame()
    assert list(frame.columns[:4]) == ["trial", "value", "best_so_far", "state"]
    assert {"x", "lr", "boosting", "n_estimators"} <= set(frame.columns)
    assert len(frame) == 20 and frame["trial"].tolist() == list(range(20))
    assert frame["best_so_far"].dropna().is_monotonic_decreasing
    assert (frame["state"] == "pruned").sum() == result.n_pruned
    assert frame.loc[frame["state"] == "pruned", "value"].isna().all()
    summary = result.summary()
    assert summary["n_trials"] == 20 and summary["best_value"] == result.best_value


def test_probabilities_are_ignored_with_a_warning(caplog) -> None:
    spec = _spec(
        method="random",
        parameters={"b": {"values": ["a", "b"], "probabilities": [0.9, 0.1]}},
    )
    with caplog.at_level(logging.WARNING, logger="housing.sweep"):
        _sweep(spec, lambda p, r: 1.0 if p["b"] == "a" else 0.0, n=4)
    assert "parameters.b.probabilities is ignored" in caplog.text


def test_bad_engine_or_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="engine"):
        run_sweep(_spec(), Quadratic(), n_trials=1, seed=0, engine="ray")
    with pytest.raises(ValueError, match="wandb_mode"):
        run_sweep(_spec(), Quadratic(), n_trials=1, seed=0, wandb_mode="online-ish")
