"""The project's main workspace, also from inside ``dvc exp run --temp``.

``dvc exp run --temp`` runs the stages in a throw-away copy of the repository,
``<workspace>/.dvc/tmp/exps/standalone/<random>/`` (DVC 3's ``TempDirQueue``; the queue's
workers use ``exps/<random>/``). What is *not* versioned must still come from the workspace the
user typed the command in: the local registry (``mlflow.db``, ``mlartifacts/``), the
development signing key (``.keys/``) and the exported ``champion/`` that ``make serve``
watches. Relative to the copy, they would be created there and deleted with it.

Imports the standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT_COPIES = (".dvc", "tmp", "exps")  # where DVC puts --temp copies, below the root
DEV_KEYS_DIR = ".keys"  # the development key pair `make install` creates (git-ignored)


def workspace_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The main workspace of ``start`` (default: the working directory, where a stage runs):
    ``start`` itself, or the workspace whose ``.dvc/tmp/exps/`` holds it
    (``exps/standalone/<tmp>`` for ``--temp``, ``exps/<tmp>`` for the queue's workers).

    Not DVC's ``DVC_ROOT``: in a ``--temp`` copy it names the main workspace already (DVC
    3.67), so it cannot tell a copy from the workspace; the working directory can.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    parts, n = here.parts, len(EXPERIMENT_COPIES)
    for i in range(len(parts) - n, 0, -1):  # the innermost match: a copy's own .dvc/tmp
        if parts[i : i + n] == EXPERIMENT_COPIES and len(parts) > i + n:
            root = Path(*parts[:i])
            if (root / ".dvc").is_dir():
                return root
    return here


def in_experiment_copy(start: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``start`` lies in a ``dvc exp run --temp`` copy of a workspace."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    return workspace_root(here) != here
