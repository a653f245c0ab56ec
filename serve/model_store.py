"""The served model: the source cascade at start-up, hot reload, and an atomic swap.

Requests read `store.current` once and use that object throughout, so a swap (one reference
assignment) never mixes two models within a request. Loading always runs in a worker
thread, never on the request path.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serve.loaded_model import LoadedModel, utc_now_iso
from serve.metrics import ServeMetrics
from serve.sources.base import ModelSource

if TYPE_CHECKING:
    from serve.replay import ReplayMarks

logger = logging.getLogger(__name__)


class ReloadBusyError(Exception):
    """The model lock was not free in time: another load or reload check is running."""


@dataclass(frozen=True)
class ReloadOutcome:
    reloaded: bool
    model_version: str | None
    error: str | None = None


def _reason(exc: BaseException) -> str:
    """One line; the exception type only for unexpected errors."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    return text[0] if _expected(exc) else f"{type(exc).__name__}: {text[0]}"


class ModelStore:
    """Holds the current model and the state /ready and /api/v1/model report."""

    def __init__(
        self,
        sources: list[ModelSource],
        metrics: ServeMetrics,
        *,
        skipped: list[str] | None = None,
        replay: ReplayMarks | None = None,
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.replay = replay  # marks that outlive the process: an older champion is refused
        self.skipped = list(skipped or [])
        self._current: LoadedModel | None = None
        self.loading = False
        self.draining = False
        self.load_errors: list[str] = []
        self.last_reload_error: str | None = None
        self.last_reload_check_at: str | None = None
        self._lock = threading.Lock()  # one load/check at a time

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> None:
        """Make ``model`` the served one (atomic: one reference assignment)."""
        self._current = model
        ident = model.identity
        self.metrics.set_model(ident.name, ident.version, ident.alias, ident.source, ident.sha256)
        logger.info(
            "serving %s version %s from %s (sha256 %s, promotion #%s, %s)",
            ident.name,
            ident.version,
            ident.source,
            ident.sha256[:12],
            ident.promotion_sequence,
            f"signed by key {ident.key_id[:12]}…" if ident.signed and ident.key_id else "UNSIGNED",
        )

    def not_ready_reason(self) -> str | None:
        """None when ready; else one line for /ready and the 503s."""
        if self.draining:
            return "shutting down: not accepting new work"
        if self._current is not None:
            return None
        if self.loading:
            return "model loading; retry in a few seconds"
        detail = "; ".join(self.skipped + self.load_errors) or "no model source configured"
        return f"no model loaded ({detail})"

    def load_initial(self) -> bool:
        """Try each source in order; the first that loads is served. Never raises."""
        self.loading = True
        try:
            with self._lock:
                for line in self.skipped:
                    logger.info("model source skipped: %s", line)
                errors: list[str] = []
                for source in self.sources:
                    try:
                        model = self._admitted(source.load(None))
                    except Exception as exc:
                        line = f"{source.name}: {_reason(exc)}"
                        errors.append(line)
                        logger.warning(
                            "model source %s failed (%s); trying the next",
                            source.describe(),
                            _reason(exc),
                            exc_info=not _expected(exc),
                        )
                        continue
                    self.load_errors = errors
                    self.swap(model)
                    return True
                self.load_errors = errors
                logger.error(
                    "no model source could load a model: %s",
                    "; ".join(self.skipped + errors) or "none configured",
                )
                return False
        finally:
            self.loading = False

    def check_for_update(
        self, *, force: bool = False, lock_timeout: float | None = None
    ) -> ReloadOutcome:
        """Reload when the best reachable source offers a different model.

        Sources are tried in order, but never one of lower priority than the source now
        serving: a registry outage must not downgrade the registry model to the local file.
        A failed load keeps the old model, is reported and counted, and is retried at the
        next check (``force`` is accepted for the admin route; every check is a full one).
        With ``lock_timeout``, raises `ReloadBusyError` when another load or check holds the
        lock for longer than that (seconds).
        """
        if not self._lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout):
            raise ReloadBusyError(
                f"another model load or reload check has held the model lock for more than "
                f"{lock_timeout:g} s"
            )
        try:
            return self._check_locked()
        finally:
            self._lock.release()

    def _check_locked(self) -> ReloadOutcome:
        self.last_reload_check_at = utc_now_iso()
        current = self._current
        candidates = self.sources
        if current is not None:
            names = [s.name for s in self.sources]
            if current.identity.source in names:
                candidates = self.sources[: names.index(current.identity.source) + 1]
        errors: list[str] = []
        for source in candidates:
            try:
                fingerprint = source.fingerprint()
            except Exception as exc:
                errors.append(f"{source.name}: {_reason(exc)}")
                continue
            same_source = current is not None and current.identity.source == source.name
            if same_source and current.identity.fingerprint == fingerprint:
                self.last_reload_error = None
                return ReloadOutcome(False, current.identity.version)
            try:
                model = self._admitted(source.load(_sequence(current)))
            except Exception as exc:
                return self._fail(
                    f"{source.name}: loading {fingerprint[:24]} failed: {_reason(exc)}",
                    current,
                    exc,
                )
            self.last_reload_error = None
            self.load_errors = []
            self.swap(model)
            self.metrics.reloads.inc()
            return ReloadOutcome(True, model.identity.version)
        if errors:
            return self._fail("; ".join(errors), current, None)
        return ReloadOutcome(False, _version(current))

    def _admitted(self, model: LoadedModel) -> LoadedModel:
        """``model`` once the replay marks accept it (SourceError, one line, if not)."""
        if self.replay is not None:
            self.replay.admit(model.identity)
        return model

    def _fail(
        self, message: str, current: LoadedModel | None, exc: BaseException | None
    ) -> ReloadOutcome:
        self.last_reload_error = message
        self.metrics.reload_failures.inc()
        logger.warning(
            "reload failed, still serving %s: %s",
            _version(current),
            message,
            exc_info=exc is not None and not _expected(exc),
        )
        return ReloadOutcome(False, _version(current), message)


def _sequence(model: LoadedModel | None) -> int | None:
    """The served champion's promotion sequence: a reload must not go below it."""
    return model.identity.promotion_sequence if model is not None else None


def _version(model: LoadedModel | None) -> str | None:
    return model.identity.version if model is not None else None


def _expected(exc: BaseException) -> bool:
    """Failures a source reports on purpose (one line is enough; no stack trace).

    Sources wrap the bundle loader's ``BundleError`` in ``SourceError``; a bare
    ``BundleError`` is counted too. Neither import pulls PyYAML or skops into the API.
    """
    from housing.serving import BundleError
    from serve.sources.base import SourceError

    return isinstance(exc, SourceError | BundleError)


class Reloader:
    """A daemon thread that calls `check_for_update` every ``interval`` seconds."""

    def __init__(self, store: ModelStore, interval: float) -> None:
        self.store, self.interval = store, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="model-reloader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.store.loading:
                continue
            try:
                self.store.check_for_update()
            except Exception:
                logger.exception("reload check crashed; will retry")

    def stop(self) -> None:
        self._stop.set()
