"""Logging set-up for entry points (stages, CLIs). Library modules only call getLogger."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: str | None = None) -> None:
    """Configure root logging once, at an entry point; ``LOG_LEVEL`` overrides the level."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", force=True)
    # Chatty third-party loggers stay at WARNING unless asked otherwise.
    for noisy in ("urllib3", "gcsfs", "fsspec", "google", "alembic", "git", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
