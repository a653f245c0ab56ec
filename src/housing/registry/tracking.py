"""Where the registry lives: tracking URI resolution, reachability, clients, error translation.

MLflow is imported inside functions only: ``import mlflow`` costs seconds, and the API imports
this package on its start-up path.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from housing.redact import redact, redact_uri, secrets_in
from housing.registry.records import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"
_SQLITE_PREFIX = "sqlite:///"
_HEALTH_TIMEOUT_S = 5.0


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else the SQLite file of the workspace.

    The default ``sqlite:///mlflow.db`` is relative to the working directory, except inside
    a ``dvc exp run --temp`` copy, where it names the main workspace's database (by its
    absolute path): the copy, and a registry in it, is deleted when the experiment ends.
    """
    uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if uri:
        return uri
    from housing.workspace import in_experiment_copy, workspace_root

    if in_experiment_copy():
        return f"{_SQLITE_PREFIX}{workspace_root() / 'mlflow.db'}"
    return DEFAULT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute), else None."""
    if not uri.startswith(_SQLITE_PREFIX):
        return None
    raw = uri[len(_SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


def registry_identity(uri: str) -> str:
    """The registry ``uri`` names, as a promotion record states it: a SQLite file by its
    absolute path (``sqlite:///mlflow.db`` means another registry in every directory), any
    other URI with its credentials masked. The API keys its replay marks by it."""
    from housing.redact import redact_uri

    db = sqlite_path(uri)
    if db is not None:
        return f"{_SQLITE_PREFIX}{db.resolve()}"
    return redact_uri(uri).rstrip("/")


def default_artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite database (``./mlartifacts`` for the default URI).

    MLflow's own default for a SQLite store is ``./mlruns`` under the current directory; putting
    artifacts beside the database keeps a registry self-contained and a test's files in its tmp
    dir. A tracking server chooses its own artifact store, so other URIs return None.
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / ARTIFACTS_DIRNAME).as_uri()


def _health_request(uri: str) -> urllib.request.Request:
    """``GET <uri>/health`` without the userinfo (urllib cannot parse it), sent as Basic auth."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    path = parts.path.rstrip("/") + "/health"
    request = urllib.request.Request(urllib.parse.urlunsplit((parts.scheme, host, path, "", "")))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    return request


def check_reachable(uri: str, *, must_exist: bool) -> None:
    """Fail fast with one line when the store is missing or a tracking server does not answer.

    MLflow's HTTP client retries for minutes before giving up, so a server URI is probed once
    on ``/health`` with a short timeout; a SQLite file must exist for read-only operations so a
    typo does not silently create an empty registry.
    """
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(_health_request(uri), timeout=_HEALTH_TIMEOUT_S):
                return
        except urllib.error.HTTPError:
            return  # the server answered, even if it has no /health route (or wants auth)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            message = f"tracking server unreachable at {redact_uri(uri)}: {reason}"
            raise RegistryError(redact(one_line(RegistryError(message)), secrets_in(uri))) from None
    db = sqlite_path(uri)
    if db is not None and must_exist and not db.is_file():
        raise RegistryError(f"no MLflow database at {db} (tracking URI {redact_uri(uri)})")


def make_client(uri: str) -> MlflowClient:
    """A client bound to ``uri`` for both tracking and the model registry."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def is_not_found(exc: BaseException) -> bool:
    """Whether an MLflow exception means the requested entity does not exist."""
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception message, for one-line user errors."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn MLflow and connection failures inside the block into a one-line RegistryError.

    ``action`` names the tracking URI; its credentials are masked in the message (MLflow's
    own exception text may quote the URI, password included).
    """
    from mlflow.exceptions import MlflowException

    secrets = secrets_in(action)
    try:
        yield
    except RegistryError as exc:
        if not secrets:
            raise
        raise RegistryError(redact(exc, secrets)) from None
    except (MlflowException, OSError) as exc:
        message = redact(f"{action}: {one_line(exc)}", secrets)
        raise RegistryError(message) from (None if secrets else exc)


@contextlib.contextmanager
def registry_lock(uri: str, *, timeout_s: float = 120.0) -> Iterator[None]:
    """Serialise read-check-move-record sequences on a file store (SQLite); no-op otherwise.

    The lock file sits beside the database, so every process on the machine using that
    registry shares it. A tracking server has no lock to take (MLflow's REST API has no
    compare-and-swap): the callers' re-reads are the guard there.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    # One instance per path: a FileLock instance is re-entrant, two instances on one file
    # in one process would deadlock (flock is per open file).
    lock = FileLock(str(db.resolve()) + ".lock", is_singleton=True)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout as exc:
        raise RegistryError(
            f"registry {db} is locked by another process ({timeout_s:.0f}s)"
        ) from exc
    try:
        yield
    finally:
        lock.release()
