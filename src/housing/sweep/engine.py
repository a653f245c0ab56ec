"""Run a sweep: the embedded Optuna engine (offline, seeded) or the W&B sweep service.

The objective is ``objective(params, reporter) -> score``; it calls ``reporter.report(step,
value)`` after each CV fold so Hyperband can stop hopeless trials early.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from housing.names import ENGINES
from housing.sweep.config import SweepSpec
from housing.sweep.result import SweepResult, TrialRecord, best_of
from housing.sweep.tracking import WANDB_MODES, TrialRun, TrialTracker

logger = logging.getLogger(__name__)

TrialPruned = optuna.TrialPruned


class SweepRunError(RuntimeError):
    """A sweep that cannot start or produced no usable trial; the message is one line."""


class Reporter(Protocol):
    """Given to the objective; receives one score per step (e.g. per CV fold)."""

    def report(self, step: int, value: float) -> None:
        """Record ``value`` at ``step``; raises :class:`TrialPruned` when the trial should stop."""
        ...


Objective = Callable[[dict[str, Any], Reporter], float]


class _StepLog:
    """Validates and keeps the intermediate scores of one trial."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._last: int | None = None

    def add(self, step: int, value: float) -> float:
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"reporter step must be a non-negative int, got {step!r}")
        if self._last is not None and step <= self._last:
            raise ValueError(f"reporter steps must increase, got {step} after {self._last}")
        self._last = step
        value = float(value)
        self.values.append(value)
        return value


class _OptunaReporter:
    """Reports to the Optuna trial (for the pruner) and to the trial's W&B run."""

    def __init__(self, trial: optuna.Trial, run: TrialRun) -> None:
        self._trial = trial
        self._run = run
        self.steps = _StepLog()

    def report(self, step: int, value: float) -> None:
        value = self.steps.add(step, value)
        self._trial.report(value, step)
        self._run.log_step(step, value)
        if self._trial.should_prune():
            raise TrialPruned(f"trial {self._trial.number} pruned at step {step}")


# -- shared helpers ------------------------------------------------------------------------


def effective_n_trials(spec: SweepSpec, n_trials: int) -> int:
    """``n_trials`` capped by ``run_cap`` and, for grid search, by the grid size."""
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    n = n_trials if spec.run_cap is None else min(n_trials, spec.run_cap)
    if spec.method == "grid":
        n = min(n, spec.grid_size())
    return n


def make_sweep_id(spec: SweepSpec, seed: int, n_trials: int) -> str:
    """A deterministic id for an embedded sweep: same declaration, seed and budget, same id."""
    payload = json.dumps(
        {"config": spec.raw, "seed": seed, "n_trials": n_trials}, sort_keys=True, default=repr
    )
    return "optuna-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:10]


def _call_objective(
    objective: Objective, params: dict[str, Any], reporter: Reporter
) -> tuple[str, float | None, str | None]:
    """Run the objective once; returns (state, final value, error text)."""
    try:
        raw = objective(dict(params), reporter)
    except TrialPruned:
        return "pruned", None, None
    except Exception as exc:
        logger.debug("objective raised", exc_info=True)
        return "failed", None, f"{type(exc).__name__}: {exc}"
    return as_score(raw)


def as_score(raw: object) -> tuple[str, float | None, str | None]:
    """An objective's return value as (state, value, error): complete if a finite number."""
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "failed", None, f"objective returned {raw!r}, not a number"
    if not math.isfinite(value):
        return "failed", None, f"objective returned {value}"
    return "complete", value, None


def _finish(engine: str, sweep_id: str, spec: SweepSpec, records: list[TrialRecord]) -> SweepResult:
    best = best_of(records, spec.goal)
    if best is None:
        n_failed = sum(r.state == "failed" for r in records)
        first = next((r.error for r in records if r.error), None)
        detail = f"; first error: {first}" if first else ""
        raise SweepRunError(
            f"sweep {sweep_id}: no trial completed ({n_failed} of {len(records)} failed, "
            f"{len(records) - n_failed} pruned){detail}"
        )
    assert best.value is not None
    return SweepResult(
        engine=engine,
        sweep_id=sweep_id,
        best_params=dict(best.params),
        best_value=best.value,
        trials=records,
        metric_name=spec.metric_name,
        goal=spec.goal,
        best_number=best.number,
    )


# -- embedded Optuna engine ----------------------------------------------------------------


class _GridSampler(optuna.samplers.GridSampler):
    """GridSampler that never calls ``study.stop()``: the engine already caps trials at the grid
    size, and ``stop()`` raises outside ``study.optimize`` (this engine uses ask/tell)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def build_sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    """bayes -> TPE, random -> RandomSampler, grid -> GridSampler; all seeded."""
    if spec.method == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return _GridSampler(spec.grid_space(), seed=seed)


def build_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """W&B hyperband -> Optuna HyperbandPruner; no early_terminate -> NopPruner."""
    et = spec.early_terminate
    if et is None:
        return optuna.pruners.NopPruner()
    eta = int(et["eta"])
    max_iter = et.get("max_iter")
    # W&B puts brackets at min_iter * eta^k, or (max_iter only) at max_iter / eta^k, k = 1..s.
    min_iter = et.get("min_iter") or max(1, max_iter // eta ** et["s"])
    if et.get("strict"):
        logger.warning("early_terminate.strict is ignored by the Optuna engine")
    return optuna.pruners.HyperbandPruner(
        min_resource=int(min_iter),
        max_resource=int(max_iter) if max_iter else "auto",
        reduction_factor=eta,
    )


def _run_optuna(
    spec: SweepSpec,
    objective: Objective,
    n: int,
    seed: int,
    tracker_kwargs: dict[str, Any],
    show_progress: bool,
) -> SweepResult:
    sweep_id = make_sweep_id(spec, seed, n)
    for name, p in spec.parameters.items():
        if p.probabilities is not None:
            logger.warning(
                "parameters.%s.probabilities is ignored by the Optuna engine (uniform choice)", name
            )
    tracker = TrialTracker(group=sweep_id, metric_name=spec.metric_name, **tracker_kwargs)
    distributions = spec.optuna_distributions()
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records: list[TrialRecord] = []
    try:
        study = optuna.create_study(
            study_name=sweep_id,  # Hyperband assigns brackets from a hash of this name
            sampler=build_sampler(spec, seed),
            pruner=build_pruner(spec),
            direction=spec.goal,
        )
        logger.info(
            "sweep %s: %s search, %d trials, %s %s",
            sweep_id,
            spec.method,
            n,
            spec.goal,
            spec.metric_name,
        )
        with tqdm(
            total=n, desc=f"sweep {sweep_id}", unit="trial", disable=not show_progress
        ) as bar:
            for _ in range(n):
                record = _optuna_trial(study, spec, objective, distributions, tracker)
                records.append(record)
                best = best_of(records, spec.goal)
                bar.update(1)
                bar.set_postfix(
                    done=len(records),
                    pruned=sum(r.state == "pruned" for r in records),
                    failed=sum(r.state == "failed" for r in records),
                    best="-" if best is None else f"{best.value:.6g}",
                )
                if _target_reached(spec, best):
                    logger.info("sweep %s: metric target %s reached", sweep_id, spec.metric_target)
                    break
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
    result = _finish("optuna", sweep_id, spec, records)
    logger.info(
        "sweep %s: best %s=%.6g at trial %d (%d complete, %d pruned, %d failed)",
        sweep_id,
        spec.metric_name,
        result.best_value,
        result.best_number,
        result.n_complete,
        result.n_pruned,
        result.n_failed,
    )
    return result


def _target_reached(spec: SweepSpec, best: TrialRecord | None) -> bool:
    if spec.metric_target is None or best is None or best.value is None:
        return False
    if spec.goal == "minimize":
        return best.value <= spec.metric_target
    return best.value >= spec.metric_target


def _optuna_trial(
    study: optuna.Study,
    spec: SweepSpec,
    objective: Objective,
    distributions: dict[str, optuna.distributions.BaseDistribution],
    tracker: TrialTracker,
) -> TrialRecord:
    trial = study.ask(distributions)
    params = spec.decode(trial.params)
    run = tracker.start(trial.number, params)
    reporter = _OptunaReporter(trial, run)
    start = time.perf_counter()
    state, value, error = "failed", None, "interrupted"
    try:
        state, value, error = _call_objective(objective, params, reporter)
    finally:
        if state == "complete":
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
        run.finish(state, value)
    if error:
        logger.warning("trial %d failed: %s", trial.number, error)
    return TrialRecord(
        number=trial.number,
        params=params,
        value=value,
        state=state,
        intermediate=list(reporter.steps.values),
        duration_s=time.perf_counter() - start,
        error=error,
    )


# -- public entry --------------------------------------------------------------------------


def run_sweep(
    spec: SweepSpec,
    objective: Objective,
    *,
    n_trials: int,
    seed: int,
    engine: str = "optuna",
    wandb_mode: str = "offline",
    wandb_project: str = "housing-price",
    wandb_entity: str | None = None,
    show_progress: bool = True,
) -> SweepResult:
    """Search ``spec`` with ``objective`` for up to ``n_trials`` (capped by ``run_cap``).

    ``engine="optuna"`` runs in-process, seeded and offline, logging each trial as a W&B run
    in ``wandb_mode``; ``engine="wandb"`` uses the online W&B sweep controller and needs
    ``wandb_mode="online"`` (housing.sweep.wandb_engine).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'optuna' or 'wandb', got {engine!r}")
    if wandb_mode not in WANDB_MODES:
        raise ValueError(f"wandb_mode must be one of {', '.join(WANDB_MODES)}, got {wandb_mode!r}")
    n = effective_n_trials(spec, n_trials)
    if engine == "wandb":
        # Deferred: wandb_engine imports this module's helpers.
        from housing.sweep.wandb_engine import run_wandb

        return run_wandb(spec, objective, n, wandb_project, wandb_entity, wandb_mode)
    tracker_kwargs = {"mode": wandb_mode, "project": wandb_project, "entity": wandb_entity}
    return _run_optuna(spec, objective, n, seed, tracker_kwargs, show_progress)
