"""Where a shared Optuna study lives: ``sweep.storage`` parsed, checked and opened.

Three kinds, by what the setting looks like:

- ``""`` (the default): in memory, one process; :data:`MEMORY`.
- a path (no ``scheme://``): a journal file (Optuna's ``JournalFileBackend``), for several
  processes on one machine or a shared file system; no server, but no heartbeat either.
- a database URL: ``postgresql+psycopg://user@host:port/db`` (heartbeats and retry of stale
  trials), or ``sqlite:///file.db`` for one worker only: SQLite shared by parallel workers
  fails with "database is locked".

Credentials come from the environment only (libpq's ``PGPASSWORD``, ``PGPASSFILE``): a URL
holding a password is refused, because the setting lives in params.yaml and in logs. Every
message shows the URL through :func:`housing.redact.redact_uri`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from housing.redact import redact_uri
from housing.sweep.engine import SweepRunError

MEMORY, JOURNAL, POSTGRESQL, SQLITE = "memory", "journal", "postgresql", "sqlite"
# The driver SQLAlchemy would pick for a bare postgresql:// (psycopg2) is not installed.
_POSTGRES_SCHEMES = {"postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}
_CONNECT_TIMEOUT_S = 10


class StorageError(SweepRunError):
    """``sweep.storage`` is unusable (bad form, unreachable, wrong for the worker count)."""


@dataclass(frozen=True)
class Storage:
    """A parsed ``sweep.storage``: its kind and the URL or path Optuna opens."""

    kind: str
    target: str = ""

    @property
    def shown(self) -> str:
        """The target as it may appear in a log line or a report (password masked)."""
        return redact_uri(self.target) if self.kind in (POSTGRESQL, SQLITE) else self.target

    @property
    def shared(self) -> bool:
        return self.kind != MEMORY


def parse_storage(value: str | None, *, workers: int = 1) -> Storage:
    """Classify ``value`` (see the module docstring); raises :class:`StorageError` on a bad
    scheme, a password in the URL, or SQLite with more than one worker."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise StorageError(f"sweep.workers must be a non-negative integer, got {workers!r}")
    text = (value or "").strip()
    if not text:
        if workers == 0:
            raise StorageError(
                "sweep.workers: 0 (the stage only coordinates, workers elsewhere run the "
                "trials) needs a shared sweep.storage: a journal file path or PostgreSQL"
            )
        return Storage(MEMORY)
    if "://" not in text:
        return Storage(JOURNAL, text)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(
            f"sweep.storage: cannot parse {redact_uri(text)!r} as a URL ({exc})"
        ) from None
    if url.drivername.startswith("sqlite"):
        if workers > 1:
            raise StorageError(
                f"sweep.storage: SQLite cannot be shared by {workers} workers (parallel writers "
                "fail with 'database is locked'); use a journal file path or PostgreSQL"
            )
        return Storage(SQLITE, text)
    if url.drivername not in _POSTGRES_SCHEMES:
        raise StorageError(
            f"sweep.storage: unsupported scheme {url.drivername!r} in {redact_uri(text)!r}; "
            "use '' (in memory), a journal file path, or postgresql+psycopg://user@host:port/db"
        )
    if url.password is not None or any("password" in k.lower() for k in url.query):
        raise StorageError(
            f"sweep.storage: {redact_uri(text)!r} holds a password; remove it and set "
            "PGPASSWORD (or PGPASSFILE) in the environment instead"
        )
    url = url.set(drivername=_POSTGRES_SCHEMES[url.drivername])
    return Storage(POSTGRESQL, url.render_as_string(hide_password=False))


def open_storage(
    storage: Storage,
    *,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    max_retry: int | None = None,
) -> optuna.storages.BaseStorage:
    """Open ``storage`` (connecting to a database at once, so a bad URL fails here).

    For a database, ``heartbeat_s`` makes each running trial record a heartbeat; a trial
    silent for ``grace_s`` is failed by the next worker that starts a trial and re-queued
    with the same params, at most ``max_retry`` times per original trial.
    """
    if storage.kind == MEMORY:
        return optuna.storages.InMemoryStorage()
    if storage.kind == JOURNAL:
        return _open_journal(Path(storage.target))
    return _open_database(storage, heartbeat_s=heartbeat_s, grace_s=grace_s, max_retry=max_retry)


def _open_journal(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise StorageError(
            f"sweep.storage: cannot open the journal file {path}: {exc.strerror or exc}"
        ) from None


def _open_database(
    storage: Storage, *, heartbeat_s: int | None, grace_s: int | None, max_retry: int | None
) -> optuna.storages.BaseStorage:
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True}}
    if storage.kind == POSTGRESQL:
        # libpq waits for an unreachable host for minutes by default.
        kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():
            # heartbeat_interval and the retry callback are marked experimental.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat_s:
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
                kwargs.update(
                    heartbeat_interval=int(heartbeat_s),
                    grace_period=int(grace_s) if grace_s else None,
                    heartbeat_stale_trial_callback=retry,
                )
            return optuna.storages.RDBStorage(storage.target, **kwargs)
    except ImportError:
        raise StorageError(
            f"sweep.storage: {storage.shown}: the database driver is not installed "
            "(PostgreSQL needs psycopg: pip install 'psycopg[binary]')"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"sweep.storage: cannot reach the database at {storage.shown}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy appends SQL and a docs link after it)."""
    cause = exc.__cause__ or getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    return redact_uri(lines[0] if lines else type(cause).__name__)
