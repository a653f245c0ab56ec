"""Logging set-up for entry points (stages, CLIs). Library modules only call getLogger.

:func:`configure` also turns MLflow's chatter off at its source, through the switches MLflow
reads from the environment when it runs (a value already set wins): no ``Downloading
artifacts`` progress bar for every file the registry reads back, and MLflow's own loggers
(which do not propagate to ours) at WARNING, like the other chatty libraries below.
"""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that log routine work at INFO.
QUIET_LOGGERS = ("urllib3", "gcsfs", "fsspec", "google", "alembic", "git", "filelock")


def configure(level: str | None = None) -> None:
    """Configure root logging once, at an entry point; ``LOG_LEVEL`` overrides the level."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", force=True)
    # Chatty libraries log WARNING and above, or less when the root asks for less: a level on
    # a child logger is not bounded by its parent's, so LOG_LEVEL=ERROR needs it here too.
    quiet = max(logging.WARNING, logging.getLogger().level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Read when mlflow is first imported, which entry points do after this call.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", logging.getLevelName(quiet))
