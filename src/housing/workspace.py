"""The project's main workspace, also from inside ``dvc exp run --temp``.

``dvc exp run --temp`` runs the stages in a throw-away copy of the repository,
``<workspace>/.dvc/tmp/exps/<random>/`` (DVC 3's ``TempDirExecutor``: ``EXEC_TMP_DIR`` under
the repo's ``.dvc/tmp``). What is *not* versioned must still come from the workspace the
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
    """The main workspace of ``start`` (default: DVC's ``DVC_ROOT`` for a stage, else the
    working directory): ``start`` itself, or the workspace whose ``.dvc/tmp/exps/`` holds it."""
    here = Path(start if start is not None else os.environ.get("DVC_ROOT") or Path.cwd())
    here = here.resolve()
    n = len(EXPERIMENT_COPIES)
    for candidate in (here, *here.parents):
        parts = candidate.parts
        if len(parts) > n + 1 and parts[-n - 1 : -1] == EXPERIMENT_COPIES:
            root = Path(*parts[: -n - 1])
            if (root / ".dvc").is_dir():
                return root
    return here


def in_experiment_copy(start: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``start`` lies in a ``dvc exp run --temp`` copy of a workspace."""
    here = Path(start if start is not None else os.environ.get("DVC_ROOT") or Path.cwd())
    return workspace_root(here) != here.resolve()
