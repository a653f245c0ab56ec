"""What every stage entry point shares: its params section, logging, and a clean exit.

A stage's ``main`` reads only its own ``params.yaml`` section through :func:`params`, which
validates it with the section's typed model (``housing.params.<section>``) before any work,
and :func:`run` turns expected failures (bad data, bad input, bad parameters) into one clear
line on stderr and exit status 1, instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from housing import logs
from housing.params.base import PARAMS_FILE, ParamsError, load

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
# Library thread pools oversubscribe 2 shared cores badly (10x slower measured): pin them.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class StageError(RuntimeError):
    """An expected failure with a message that tells the user what to do."""


def params(section: str, model: type[M], path: Path = PARAMS_FILE) -> M:
    """The ``section`` of params.yaml, validated by ``model`` (each stage reads only its own).

    A bad value raises :class:`ParamsError`, one line per key, which :func:`run` reports
    without a traceback: call this first, before reading data or writing anything.
    """
    return load(section, model, path)


def pin_threads() -> None:
    """Default every native thread pool to one thread unless the user set otherwise."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")


def run(main: Callable[[], None], expected: tuple[type[BaseException], ...] = ()) -> None:
    """Run a stage's ``main``; expected errors exit 1 with one line, not a traceback."""
    pin_threads()
    logs.configure()
    from threadpoolctl import threadpool_limits

    try:
        # Env vars are read when a pool starts; limit pools already loaded at import too.
        with threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"])):
            main()
    except (StageError, ParamsError, *expected) as exc:
        first = str(exc).strip().splitlines()
        detail = "\n".join(first[1:])
        logger.error("%s", first[0] if first else type(exc).__name__)
        if detail:
            sys.stderr.write(detail + "\n")
        sys.exit(1)
