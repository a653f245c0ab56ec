"""The sweep stage's own workers: N local ``python -m housing.sweep worker`` processes.

They are the same command a worker on another machine runs, so the stage's workers and
remote ones are interchangeable. :func:`run_local_workers` waits for all of them at most
``timeout_s``; on timeout (or any exit of the stage) the ones still running are stopped:
SIGTERM first, which fails the trial each is running, then SIGKILL. With no local worker
(``sweep.workers: 0``) the stage only coordinates: :func:`wait_for_trials` polls the study
until workers elsewhere have finished its trials.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from housing.sweep.engine import SweepRunError
from housing.sweep.worker import finished_count

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

_POLL_S = 0.5
_STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class WorkerExit:
    """How one local worker ended: its name and exit status (None: still running)."""

    name: str
    returncode: int | None


def worker_command(
    storage: str,
    study: str,
    *,
    index: int,
    name: str,
    params: Path = Path("params.yaml"),
    plan: str | None = None,
) -> list[str]:
    """The worker command line (no secret: the storage URL holds no password)."""
    cmd = [
        sys.executable, "-m", "housing.sweep", "worker",
        "--storage", storage, "--study", study,
        "--index", str(index), "--name", name, "--params", str(params),
    ]  # fmt: skip
    return [*cmd, "--plan", plan] if plan else cmd


@contextlib.contextmanager
def _started(
    commands: Sequence[tuple[str, list[str]]],
) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    procs: list[tuple[str, subprocess.Popen]] = []
    try:
        for name, cmd in commands:
            # Workers inherit stderr: their log lines (one per trial) show live.
            procs.append((name, subprocess.Popen(cmd, stdin=subprocess.DEVNULL)))
        yield procs
    finally:
        _stop([p for _, p in procs if p.poll() is None])


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_local_workers(
    storage: str,
    study: str,
    *,
    workers: int,
    timeout_s: float,
    params: Path = Path("params.yaml"),
    plan: str | None = None,
) -> list[WorkerExit]:
    """Run ``workers`` local workers on ``study`` and wait for all of them.

    Raises :class:`SweepRunError` when ``timeout_s`` passes first (the workers are stopped;
    the study keeps what they finished) or when every worker failed.
    """
    names = [f"local-{i}" for i in range(workers)]
    commands = [
        (name, worker_command(storage, study, index=i, name=name, params=params, plan=plan))
        for i, name in enumerate(names)
    ]
    logger.info("sweep: starting %d local worker(s) on study %s", workers, study)
    deadline = time.monotonic() + timeout_s
    with _started(commands) as procs:
        while any(p.poll() is None for _, p in procs):
            if time.monotonic() > deadline:
                raise SweepRunError(
                    f"sweep: sweep.timeout_s ({timeout_s:g} s) passed before the study "
                    f"{study} had its trials; its workers were stopped and it keeps what they "
                    "finished: rerun to resume it"
                )
            time.sleep(_POLL_S)
        exits = [WorkerExit(name, p.returncode) for name, p in procs]
    failed = [e for e in exits if e.returncode != 0]
    for e in failed:
        logger.warning("worker %s exited with status %s (its error is above)", e.name, e.returncode)
    if len(failed) == len(exits):
        raise SweepRunError(
            f"sweep: all {len(exits)} worker(s) of study {study} failed "
            f"(first: {failed[0].name}, status {failed[0].returncode}; its error is above)"
        )
    return exits


def wait_for_trials(
    study: optuna.Study, *, n_trials: int, timeout_s: float, poll_s: float = 2.0
) -> int:
    """Wait until ``study`` has ``n_trials`` finished (complete or pruned) trials, run by
    workers elsewhere; returns that count, or raises :class:`SweepRunError` at ``timeout_s``.
    """
    logger.info(
        "sweep: no local worker (sweep.workers: 0); waiting up to %g s for %d finished "
        "trial(s) on study %s", timeout_s, n_trials, study.study_name,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    seen = -1
    while (done := finished_count(study)) < n_trials:
        if done != seen:
            logger.info("sweep: study %s has %d of %d trials finished", study.study_name,
                        done, n_trials)  # fmt: skip
            seen = done
        if time.monotonic() > deadline:
            raise SweepRunError(
                f"sweep: sweep.timeout_s ({timeout_s:g} s) passed with {done} of {n_trials} "
                f"trials of study {study.study_name} finished and no local worker; start "
                "workers on it (python -m housing.sweep worker) and rerun to resume"
            )
        time.sleep(poll_s)
    return done
