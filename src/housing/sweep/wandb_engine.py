"""The W&B engine: W&B's online sweep controller samples, its agent runs each trial here.

Opt-in (``engine="wandb"``) and online only: the controller lives on W&B's servers, so there is
no offline W&B sweep, and ``wandb_mode`` must be ``"online"`` (``"offline"`` and ``"disabled"``
are refused rather than silently ignored).

How W&B stops a run early (wandb 0.31, ``wandb/agents/pyagent.py``): Hyperband decides on the
server; the agent's heartbeat receives a ``stop`` command and calls ``Agent._stop_run``, which
marks the run STOPPED and calls ``_terminate_thread``. That sets ``thread._terminated = True``
on the run's thread, *then* injects a plain ``Exception`` into it with
``ctypes.pythonapi.PyThreadState_SetAsyncExc``. The exception type says nothing (an objective's
own bug may raise ``Exception`` too), so :class:`AgentTrial` decides by the flag: an exception
in a run the agent has flagged is a stop, recorded as ``pruned``; any other exception is a
programming error, which ends the sweep by re-raising it (never a "failed" trial).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from housing.sweep.config import SweepSpec, wandb_sweep_config
from housing.sweep.engine import (
    Objective,
    SweepRunError,
    TrialPruned,
    _finish,
    _StepLog,
    as_score,
)
from housing.sweep.result import SweepResult, TrialRecord
from housing.sweep.tracking import TrialRun, _WandbRun

logger = logging.getLogger(__name__)

# The attribute W&B's agent sets on a run's thread before it injects the stop exception.
AGENT_STOP_FLAG = "_terminated"
# AgentTrial lets only programming errors reach the agent: the first one stops it.
AGENT_OPTIONS: dict[str, Any] = {"max_consecutive_failed_runs": 1}


def agent_stopped(thread: threading.Thread | None = None) -> bool:
    """True once W&B's agent asked to stop the run executing in ``thread`` (default: this one)."""
    thread = threading.current_thread() if thread is None else thread
    return bool(getattr(thread, AGENT_STOP_FLAG, False))


class _WandbReporter:
    """Logs intermediate scores with ``run.log``; raises :class:`TrialPruned` once stopped.

    The agent's injected exception normally ends the objective by itself; checking the flag at
    each report also stops an objective whose own ``except Exception`` swallowed it.
    """

    def __init__(self, run: TrialRun, steps: _StepLog, stopped: Callable[[], bool]) -> None:
        self._run = run
        self._stopped = stopped
        self.steps = steps

    def report(self, step: int, value: float) -> None:
        self._run.log_step(step, self.steps.add(step, value))
        if self._stopped():
            raise TrialPruned(f"stopped by W&B's early termination at step {step}")


class AgentTrial:
    """The function W&B's agent calls once per run: one trial, recorded in ``records``.

    A run the agent stops becomes a ``pruned`` record; an objective returning a non-number or
    a non-finite value a ``failed`` one; an exception that is not a stop is kept in ``error``
    and re-raised, so the agent marks the run errored and stops (``max_consecutive_failed_runs
    =1``) and :meth:`result` raises it again in the caller's thread.
    """

    def __init__(self, spec: SweepSpec, objective: Objective, *, mode: str) -> None:
        self._spec = spec
        self._objective = objective
        self._mode = mode
        self.records: list[TrialRecord] = []
        self.error: Exception | None = None

    def __call__(self) -> None:
        import wandb  # deferred: only this engine needs it

        thread = threading.current_thread()

        def stopped() -> bool:
            return agent_stopped(thread)

        steps = _StepLog()
        params: dict[str, Any] = {}
        tracked: _WandbRun | None = None
        start = time.perf_counter()
        try:
            # Under the agent, wandb.init() receives the sampled params as its config.
            run = wandb.init(mode=self._mode, settings=wandb.Settings(silent=True, console="off"))
            params = {k: run.config[k] for k in self._spec.parameters if k in run.config}
            tracked = _WandbRun(run, self._spec.metric_name)
            reporter = _WandbReporter(tracked, steps, stopped)
            state, value, error = self._evaluate(params, reporter, stopped)
        except Exception as exc:
            if not stopped():
                self.error = exc
                raise
            # The agent's exception: it may land anywhere in this block, even in wandb.init.
            state, value, error = "pruned", None, None
        number = len(self.records)
        if error:
            logger.warning("trial %d failed: %s", number, error)
        self.records.append(
            TrialRecord(
                number=number,
                params=params,
                value=value,
                state=state,
                intermediate=list(steps.values),
                duration_s=time.perf_counter() - start,
                error=error,
            )
        )
        if tracked is not None:
            tracked.finish(state, value)

    def _evaluate(
        self, params: dict[str, Any], reporter: _WandbReporter, stopped: Callable[[], bool]
    ) -> tuple[str, float | None, str | None]:
        """(state, final value, error text); exceptions other than TrialPruned propagate."""
        try:
            raw = self._objective(dict(params), reporter)
        except TrialPruned:
            return "pruned", None, None
        if stopped():  # the objective swallowed the agent's exception and carried on
            return "pruned", None, None
        return as_score(raw)

    def result(self, sweep_id: str) -> SweepResult:
        """The sweep's result; re-raises the objective's error if a run raised one."""
        if self.error is not None:
            raise self.error
        return _finish("wandb", sweep_id, self._spec, self.records)


def run_wandb(
    spec: SweepSpec,
    objective: Objective,
    n: int,
    project: str,
    entity: str | None,
    mode: str,
) -> SweepResult:
    """Create the sweep on W&B's servers and run ``n`` trials of it with one in-process agent."""
    if mode != "online":
        raise SweepRunError(
            f"engine='wandb' needs wandb_mode='online', got {mode!r}: W&B's sweep controller "
            "runs on W&B's servers; the default engine='optuna' runs offline (each trial can "
            "still be an offline W&B run)"
        )
    if not os.environ.get("WANDB_API_KEY"):
        raise SweepRunError(
            "engine='wandb' needs WANDB_API_KEY in the environment (the W&B sweep controller "
            "is online); the default engine='optuna' runs offline and needs no key"
        )
    import wandb  # deferred: only this engine needs it at import time

    sweep_id = wandb.sweep(sweep=wandb_sweep_config(spec), project=project, entity=entity)
    trial = AgentTrial(spec, objective, mode=mode)
    wandb.agent(sweep_id, function=trial, project=project, entity=entity, count=n, **AGENT_OPTIONS)
    return trial.result(sweep_id)
