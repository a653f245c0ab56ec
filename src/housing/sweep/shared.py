"""A study shared by workers, from the sweep stage's side: create (or resume) it, read it back.

The stage creates the study named by its inputs (:func:`housing.sweep.inputs.study_name`)
and records on it the inputs' digest and ``n_trials``; workers started anywhere join it
(:mod:`housing.sweep.worker`). When they are done, :func:`study_result` turns its trials
into the same :class:`SweepResult` the in-memory engine returns, plus what only a shared
study has: who ran what, duplicates, overshoot, retried trials.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from housing.sweep.config import SweepSpec
from housing.sweep.engine import _finish, build_pruner, effective_n_trials
from housing.sweep.inputs import StudyPlan, study_name
from housing.sweep.result import SweepResult, TrialRecord
from housing.sweep.worker import (
    ERROR_ATTR,
    FINISHED,
    INPUTS_ATTR,
    LABEL_ATTR,
    STATE_NAMES,
    TARGET_ATTR,
    WORKER_ATTR,
    check_inputs,
    shared_sampler,
)

logger = logging.getLogger(__name__)

_RETRIED_FROM = "failed_trial"  # system attr RetryHeartbeatStaleTrialCallback sets


def create_study(
    storage: optuna.storages.BaseStorage, plan: StudyPlan, *, n_trials: int
) -> optuna.Study:
    """The study of ``plan``'s inputs: created, or resumed when it exists (its finished
    trials count towards ``n_trials``, which is recorded on it for the workers)."""
    name = study_name(plan.digest)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=plan.spec.goal,
        load_if_exists=True,
        # As worker 0 would: trials run on this object (in tests) see the spec's pruner.
        sampler=shared_sampler(plan.spec, plan.seed),
        pruner=build_pruner(plan.spec),
    )
    if INPUTS_ATTR in study.user_attrs:
        check_inputs(study, plan.digest)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        logger.info("study %s exists: resuming with %d finished trial(s)", name, done)
    else:
        study.set_user_attr(INPUTS_ATTR, plan.digest)
        study.set_user_attr(LABEL_ATTR, plan.label)
    study.set_user_attr(TARGET_ATTR, effective_n_trials(plan.spec, n_trials))
    return study


def record_of(trial: FrozenTrial, spec: SweepSpec) -> TrialRecord:
    """One finished trial of a shared study as the engine records trials."""
    duration = trial.duration.total_seconds() if trial.duration is not None else 0.0
    error = trial.user_attrs.get(ERROR_ATTR)
    if trial.state == TrialState.FAIL and error is None:
        error = "the worker stopped during the trial (killed, or its heartbeat went stale)"
    return TrialRecord(
        number=trial.number,
        params=spec.decode(trial.params) if trial.params else {},
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        state=STATE_NAMES[trial.state],
        intermediate=[trial.intermediate_values[k] for k in sorted(trial.intermediate_values)],
        duration_s=duration,
        error=error,
        worker=str(trial.user_attrs.get(WORKER_ATTR, "")),
    )


@dataclass
class SharedSweep:
    """A shared study's result and its bookkeeping (all JSON-ready but ``result``)."""

    result: SweepResult
    n_trials: int
    n_finished: int
    duplicates: int
    overshoot: int
    retried: int
    unfinished: list[int] = field(default_factory=list)  # RUNNING / WAITING trial numbers
    per_worker: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The keys a shared run adds to the sweep summary."""
        return {
            "n_finished": self.n_finished,
            "duplicates": self.duplicates,
            "overshoot": self.overshoot,
            "n_retried": self.retried,
            "n_unfinished": len(self.unfinished),
            "per_worker": self.per_worker,
        }


def study_result(study: optuna.Study, spec: SweepSpec, *, n_trials: int) -> SharedSweep:
    """Every ended trial of ``study`` (complete, pruned, failed) in trial order, the best,
    and the shared-run counts. Raises ``SweepRunError`` when no trial completed."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    ended = [t for t in trials if t.state in STATE_NAMES]
    records = [record_of(t, spec) for t in ended]
    result = _finish("optuna", study.study_name, spec, records)
    finished = [r for r in records if r.state in ("complete", "pruned")]
    keys = Counter(_key(r.params) for r in finished)
    per_worker: dict[str, Counter[str]] = {}
    for r in records:
        per_worker.setdefault(r.worker or "?", Counter())[r.state] += 1
    n = effective_n_trials(spec, n_trials)
    return SharedSweep(
        result=result,
        n_trials=n,
        n_finished=len(finished),
        duplicates=sum(c - 1 for c in keys.values()),
        overshoot=max(0, len(finished) - n),
        retried=sum(_RETRIED_FROM in t.system_attrs for t in ended),
        unfinished=[t.number for t in trials if t.state not in STATE_NAMES],
        per_worker={w: dict(sorted(c.items())) for w, c in sorted(per_worker.items())},
    )


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=repr)
