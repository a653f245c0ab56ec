"""One worker of a shared study: run trials until the study has ``n_trials`` finished.

Finished means complete or pruned; a failed trial does not count. Workers stop on their own
(``MaxTrialsCallback``), so workers started together may overshoot by at most workers - 1
trials (each finishes the trial it is running). ``study.optimize`` runs the loop because it
is what records a database storage's heartbeats and fails stale trials before each new one.

Each worker samples with its own seed (the plan's seed + its index), and TPE's constant
liar counts other workers' running trials as bad, so workers do not all try the same point.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from housing.sweep.config import SweepSpec
from housing.sweep.engine import (
    SweepRunError,
    _call_objective,
    _OptunaReporter,
    build_pruner,
    effective_n_trials,
)
from housing.sweep.inputs import StudyPlan
from housing.sweep.tracking import TrialTracker, _NullRun

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
# Study user attributes the stage sets when it creates the study.
INPUTS_ATTR, TARGET_ATTR, LABEL_ATTR = "inputs_sha256", "n_trials", "label"
# Trial user attributes each worker sets.
WORKER_ATTR, ERROR_ATTR = "worker", "error"


class StudyMismatchError(SweepRunError):
    """A worker's inputs differ from those the study was created from."""


class Interrupt:
    """A signal handler that stops a worker cleanly: inside the objective's own computation
    it raises ``KeyboardInterrupt`` at once (Optuna marks the trial failed), anywhere else
    (a storage write, between trials) the worker stops before its next trial."""

    def __init__(self) -> None:
        self.requested = False
        self.in_objective = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.in_objective:
            raise KeyboardInterrupt


class _GuardedReporter:
    """The trial's reporter, with the interrupt held off while it writes to the storage."""

    def __init__(self, inner: _OptunaReporter, interrupt: Interrupt) -> None:
        self._inner = inner
        self._interrupt = interrupt

    @property
    def steps(self) -> Any:
        return self._inner.steps

    def report(self, step: int, value: float) -> None:
        self._interrupt.in_objective = False
        try:
            self._inner.report(step, value)
        finally:
            self._interrupt.in_objective = True
        if self._interrupt.requested:
            raise KeyboardInterrupt


class _ObjectiveFailedError(Exception):
    """The objective raised or returned a non-number: the trial is FAIL, the worker goes on."""


def shared_sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of one worker: as :func:`housing.sweep.build_sampler`, with TPE's constant
    liar on (Optuna 5's default, stated because parallel workers depend on it)."""
    if spec.method == "bayes":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # GridSampler takes the unvisited points from the study, so workers share the grid.
    return optuna.samplers.GridSampler(spec.grid_space(), seed=seed)


def suggest(trial: optuna.Trial, name: str, dist: optuna.distributions.BaseDistribution) -> Any:
    """``trial.suggest_*`` for one distribution of :meth:`SweepSpec.optuna_distributions`.

    A re-queued trial (a stale one retried) already holds its params: suggest returns them.
    """
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"no suggest for {type(dist).__name__}")


@dataclass
class WorkerStats:
    """What one worker ran, by state."""

    name: str
    states: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.states.items())) or "none"
        return f"worker {self.name}: ran {sum(self.states.values())} trial(s) ({counts})"


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def check_inputs(study: optuna.Study, digest: str) -> None:
    """Refuse a study created from other inputs (or not by the sweep stage)."""
    theirs = study.user_attrs.get(INPUTS_ATTR)
    if theirs != digest:
        raise StudyMismatchError(
            f"study {study.study_name} was created from other inputs (sha256 "
            f"{str(theirs)[:12]}, this checkout {digest[:12]}): run the worker in a checkout "
            "with the same params.yaml sweep section, data, upstream reports and code"
        )


def target_of(study: optuna.Study, spec: SweepSpec) -> int:
    """``n_trials`` as the stage recorded it on the study, capped as the engine caps it."""
    target = study.user_attrs.get(TARGET_ATTR)
    if not isinstance(target, int):
        raise SweepRunError(f"study {study.study_name} records no n_trials: create it first")
    return effective_n_trials(spec, target)


def load_worker_study(
    storage: optuna.storages.BaseStorage, study_name: str, plan: StudyPlan, index: int
) -> optuna.Study:
    """Join ``study_name`` with this worker's sampler (seed + index) and the spec's pruner."""
    try:
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=shared_sampler(plan.spec, plan.seed + index),
            pruner=build_pruner(plan.spec),
        )
    except KeyError:
        raise SweepRunError(
            f"no study {study_name} in this storage: the sweep stage creates it "
            "(dvc repro sweep with sweep.storage set)"
        ) from None
    check_inputs(study, plan.digest)
    return study


def run_worker(
    study: optuna.Study,
    plan: StudyPlan,
    *,
    name: str,
    tracker: TrialTracker | None = None,
    interrupt: Interrupt | None = None,
) -> WorkerStats:
    """Run trials of ``plan`` in ``study`` until it has its ``n_trials`` finished.

    A worker also stops once the study holds ``n_trials`` trials that failed in the objective
    (an objective that always fails would otherwise run forever); :class:`SweepRunError` then.
    With ``interrupt`` installed as a signal handler, the worker stops early on that signal:
    ``KeyboardInterrupt`` propagates from here once the trial it interrupted is marked failed.
    """
    n = target_of(study, plan.spec)
    interrupt = interrupt or Interrupt()
    stats = WorkerStats(name)
    distributions = plan.spec.optuna_distributions()
    metric = plan.spec.metric_name

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, name)
        params = plan.spec.decode({k: suggest(trial, k, d) for k, d in distributions.items()})
        run = tracker.start(trial.number, params) if tracker else None
        reporter = _GuardedReporter(_OptunaReporter(trial, run or _NullRun()), interrupt)
        interrupt.in_objective = True
        try:
            state, value, error = _call_objective(plan.objective, params, reporter)
        finally:
            interrupt.in_objective = False
        if run is not None:
            run.finish(state, value)
        if state == "pruned":
            raise optuna.TrialPruned()
        if state == "failed":
            trial.set_user_attr(ERROR_ATTR, error)
            raise _ObjectiveFailedError(error)
        assert value is not None
        return value

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = STATE_NAMES.get(trial.state, trial.state.name.lower())
        stats.states[state] += 1
        done = finished_count(study)
        value = "" if trial.value is None else f" {metric}={trial.value:.6g}"
        error = trial.user_attrs.get(ERROR_ATTR)
        logger.info(
            "worker %s: trial %d %s%s%s (%d/%d finished)",
            name, trial.number, state, value, f": {error}" if error else "", done, n,
        )  # fmt: skip
        if done >= n or _objective_failures(study) >= n or interrupt.requested:
            study.stop()

    if finished_count(study) < n and _objective_failures(study) < n and not interrupt.requested:
        previous = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # workers log their own lines
        try:
            study.optimize(objective, catch=(_ObjectiveFailedError,), callbacks=[after])
        finally:
            optuna.logging.set_verbosity(previous)
    if interrupt.requested:
        raise KeyboardInterrupt
    if finished_count(study) < n and _objective_failures(study) >= n:
        first = next(
            (t.user_attrs[ERROR_ATTR] for t in study.get_trials(deepcopy=False)
             if ERROR_ATTR in t.user_attrs),
            "",
        )  # fmt: skip
        raise SweepRunError(
            f"study {study.study_name}: {n} trials failed in the objective before {n} "
            f"finished; first error: {first}"
        )
    logger.info("%s", stats.line())
    return stats


def _objective_failures(study: optuna.Study) -> int:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return sum(ERROR_ATTR in t.user_attrs for t in failed)
