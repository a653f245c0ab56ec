"""``housing-sweep`` (or ``python -m housing.sweep``): join a shared sweep study as a worker.

    housing-sweep worker --storage postgresql+psycopg://sweep@db:5432/optuna --study NAME

Run it at the root of a checkout with the data (``dvc pull``): the worker rebuilds the
objective from ``params.yaml`` and ``data/split/train.parquet`` exactly as the sweep stage
does, refuses a study created from other inputs, and stops when the study has its
``n_trials`` finished. The database password comes from ``PGPASSWORD``, never the URL.
Failures are one line on stderr and exit status 1.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

logger = logging.getLogger(__name__)

DEFAULT_PLAN = "housing.sweep.inputs:checkout_plan"

app = typer.Typer(
    name="housing-sweep",
    help="Workers of a sweep study shared through a journal file or a database.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors as Click's one line, not a panel wrapped over lines
)


@app.callback()
def _main() -> None:
    """Sweep workers (the sweep stage creates the study; see docs/sweep.md)."""


def load_plan(spec: str) -> Callable[[Mapping[str, Any]], Any]:
    """The ``module:function`` that builds a :class:`~housing.sweep.inputs.StudyPlan`."""
    from housing.sweep.engine import SweepRunError

    module, _, function = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError):
        raise SweepRunError(f"--plan {spec!r}: no such module:function") from None


def join(storage: str, study: str, *, index: int, name: str, params: Path, plan: str) -> None:
    """Open ``storage``, join ``study`` with this checkout's plan and run trials."""
    from housing import stage
    from housing.params.base import raw_section
    from housing.params.sweep import SweepParams

    # Before Optuna and pandas load (3 to 4 s): a bad params file fails at once. The
    # project's plan reads the section through its schema, as the sweep stage does (the
    # same mapping, so the same study digest); another plan's parameters are its own.
    if plan == DEFAULT_PLAN:
        p = stage.params("sweep", SweepParams, params).model_dump()
    else:
        p = raw_section("sweep", params)
    from housing.sweep.config import SweepConfigError
    from housing.sweep.engine import SweepRunError

    try:
        _work(p, storage, study, index=index, name=name, plan=plan)
    except (SweepConfigError, SweepRunError) as exc:
        raise stage.StageError(str(exc)) from exc


def _work(p: dict[str, Any], storage: str, study: str, *, index: int, name: str, plan: str) -> None:
    """What :func:`join` does once the params are valid."""
    from housing import stage
    from housing.sweep.storage import MEMORY, SQLITE, open_storage, parse_storage
    from housing.sweep.tracking import TrialTracker
    from housing.sweep.worker import Interrupt, load_worker_study, run_worker

    target = parse_storage(storage)
    if target.kind == MEMORY:
        raise stage.StageError("--storage is empty: workers share a journal file or a database")
    if target.kind == SQLITE:
        logger.warning("SQLite must not be shared by parallel workers ('database is locked')")
    opened = open_storage(
        target,
        heartbeat_s=p.get("heartbeat_s"),
        grace_s=p.get("grace_s"),
        max_retry=p.get("max_retry"),
    )
    built = load_plan(plan)(p)
    joined = load_worker_study(opened, study, built, index)
    logger.info(
        "worker %s (index %d, sampler seed %d) joined study %s on %s",
        name, index, built.seed + index, study, target.shown,
    )  # fmt: skip
    tracker = TrialTracker(
        mode=os.environ.get("WANDB_MODE", "offline"),
        project=str(p.get("wandb_project", "housing-price")),
        entity=None,
        group=study,
        metric_name=built.spec.metric_name,
    )
    interrupt = Interrupt()
    signal.signal(signal.SIGTERM, interrupt)
    try:
        run_worker(joined, built, name=name, tracker=tracker, interrupt=interrupt)
    except KeyboardInterrupt:
        logger.warning("worker %s: stopped by a signal; its running trial is marked failed", name)
        sys.exit(130)


@app.command()
def worker(
    storage: Annotated[
        str,
        typer.Option(
            "--storage",
            envvar="HOUSING_SWEEP_STORAGE",
            help="Journal file path or postgresql+psycopg://user@host:port/db (no password).",
        ),
    ],
    study: Annotated[str, typer.Option("--study", help="Study name (the stage logs it).")],
    index: Annotated[
        int | None,
        typer.Option(
            "--index",
            envvar=["HOUSING_SWEEP_WORKER_INDEX", "JOB_COMPLETION_INDEX"],
            help="Worker index: the sampler's seed is sweep.seed + index. Default: from the "
            "worker name (distinct, not reproducible).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Recorded on each trial. Default: host-pid.", show_default=False
        ),
    ] = None,
    params: Annotated[Path, typer.Option("--params", help="The params file.")] = Path(
        "params.yaml"
    ),
    plan: Annotated[
        str, typer.Option("--plan", help="module:function building the objective.")
    ] = DEFAULT_PLAN,
) -> None:
    """Join a study and run trials until it has n_trials finished (complete or pruned)."""
    from housing import stage

    label = name or f"{socket.gethostname()}-{os.getpid()}"
    number = index if index is not None else zlib.crc32(label.encode()) % 1_000_000
    stage.run(
        lambda: join(storage, study, index=number, name=label, params=params, plan=plan),
        # The sweep's own errors arrive as StageError (join); OSError: a params path or a
        # journal that cannot be read or written, a refused socket.
        expected=(OSError,),
    )


def main() -> None:
    """The ``housing-sweep`` console script."""
    app()
