"""The feature log: every scored instance as one JSON line, written off the request path.

Each line holds the instance's raw fields, its price and interval, the model's name and
version, the request id and a UTC timestamp: what a drift report compares with the training
data, and what realised error joins true values to (docs/monitoring.md).

A request puts one tuple on a bounded queue (``put_nowait``: never a wait, never an
exception) and goes on; a full queue drops the request's records and counts them. One
daemon thread takes the tuples, samples instances at ``sample_rate``, serialises them and
hands the lines to the standard library's ``RotatingFileHandler``: ``features.jsonl``,
rotated at ``max_bytes`` into ``features.jsonl.1`` ... ``.<backups>``, the oldest deleted,
so the log never holds more than ``max_bytes * (backups + 1)`` bytes. A write that fails (a
read-only or full disk) is counted and logged once per kind, and the next is tried again:
requests never see it. JSON lines only: the serving image has no pyarrow.
"""

from __future__ import annotations

import logging
import logging.handlers
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

logger = logging.getLogger(__name__)

LOG_FILE = "features.jsonl"
_STOP = object()


class Batch(NamedTuple):
    """One request's scored instances, as the request left them (serialised later)."""

    instances: Sequence[Any]  # dicts, or the API's validated pydantic instances
    prices: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]
    model_name: str
    model_version: str | None
    request_id: str
    at: float  # time.time() when scored
    # The arrays the model scored (the (n, 8) matrix and category indices), for observers
    # (drift gauges, the shadow challenger): already built on the request path, so free.
    numeric: Any = None
    categories: Sequence[int] | None = None
    model: Any = None  # the serve.loaded_model.LoadedModel that priced it


# An observer sees every batch the writer takes (before sampling) and may return, per batch,
# fields to add to each of its lines: a scalar for all, or a list with one value per instance.
Observer = Callable[[Sequence[Batch]], Sequence[dict[str, Any] | None] | None]
# Batches taken from the queue at once: observers score and bin them together.
_GROUP = 256
_CHUNK_BYTES = 64 * 1024  # at most this much per write (and never more than max_bytes)


class _CountingHandler(logging.handlers.RotatingFileHandler):
    """Rotation from the standard library; a failed write is counted, not printed."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int, on_error: Callable) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, delay=True)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._on_error = on_error
        self.failures = 0  # writes that failed so far (the caller counts their lines)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.failures += 1
        self._on_error(sys.exc_info()[1])
        if self.stream is not None:  # reopen at the next write: the disk may be back
            try:
                self.stream.close()  # flushes: on a full disk that fails too
            except OSError:
                pass
            finally:
                self.stream = None  # type: ignore[assignment]


def _plain(value: Any) -> Any:
    """orjson's fallback: the API's validated instances are pydantic models."""
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return dump(mode="json")


def lines(
    batch: Batch, keep: Callable[[], bool], extra: dict[str, Any] | None = None
) -> list[bytes]:
    """The JSON lines of ``batch``'s instances that ``keep`` samples, with ``extra`` fields
    (a list value gives one item per instance, anything else is repeated)."""
    at = datetime.fromtimestamp(batch.at, UTC).isoformat(timespec="milliseconds")
    out = []
    for i, (fields, price, low, high) in enumerate(
        zip(batch.instances, batch.prices, batch.lows, batch.highs, strict=True)
    ):
        if not keep():
            continue
        record = {
            "at": at,
            "request_id": batch.request_id,
            "model": batch.model_name,
            "version": batch.model_version,
            "price": price,
            "low": low,
            "high": high,
            "features": fields,
        }
        if extra:
            for key, value in extra.items():
                record[key] = value[i] if isinstance(value, list) else value
        out.append(orjson.dumps(record, default=_plain))
    return out


class FeatureLog:
    """Bounded queue + one writer thread + a size-bounded rotating JSON-lines file.

    ``observers`` (the drift gauges, the shadow challenger) see every batch in the same
    thread, off the request path; with no ``directory`` only they run and nothing is written.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        sample_rate: float = 1.0,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 4,
        queue_size: int = 10_000,
        on_drop: Callable[[float], None] = lambda n: None,
        on_error: Callable[[float], None] = lambda n: None,
        on_written: Callable[[float], None] = lambda n: None,
        seed: int | None = None,
        observers: Sequence[Observer] = (),
        interval_s: float = 0.05,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.directory = None if directory is None else Path(directory)
        self.path = None if self.directory is None else self.directory / LOG_FILE
        self.observers = list(observers)
        self.sample_rate = sample_rate
        # Requests append here and nothing else: no lock, no condition, no thread woken (a
        # woken thread takes the GIL from the event loop). The writer takes what is waiting
        # every interval_s; only stop() and flush() wake it early.
        self._pending: deque[Any] = deque()
        self._queue_size = queue_size
        self._wake = threading.Event()
        self._on_drop, self._on_error, self._on_written = on_drop, on_error, on_written
        self._random = random.Random(seed)
        self._warned: set[str] = set()
        self._handler = (
            None
            if self.path is None
            else _CountingHandler(
                self.path, max_bytes=max_bytes, backups=backups, on_error=self._failed
            )
        )
        self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)

    def start(self) -> None:
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # the writes will fail and be counted; requests go on
                self._warn("mkdir", f"feature log directory {self.directory}: {exc.strerror}")
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """From the request: one append, never blocks, never raises, wakes nothing."""
        if len(self._pending) >= self._queue_size:
            self._on_drop(float(len(batch.prices)))
            self._warn("full", "feature log queue full: records dropped (counted)")
            return
        self._pending.append(batch)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the file."""
        if self._thread.is_alive():
            self._control(_STOP)
            self._thread.join(timeout)
        if self._handler is not None:
            self._handler.close()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        done = threading.Event()
        self._control(done)
        done.wait(timeout)

    def _control(self, item: Any) -> None:
        self._pending.append(item)
        self._wake.set()

    def _keep(self) -> bool:
        return self.sample_rate >= 1.0 or self._random.random() < self.sample_rate

    def _take(self) -> list[Any]:
        """What is waiting, up to ``_GROUP`` items or a control item, after sleeping
        ``interval_s`` (less when stop() or flush() wakes the thread; not at all with a full
        group waiting): under load the thread runs once per interval, not once per request,
        and a group is binned, shadow-scored and written together."""
        if len(self._pending) < _GROUP:  # a full group (a backlog) is taken at once
            self._wake.wait(self.interval_s)
            self._wake.clear()
        items: list[Any] = []
        while self._pending and len(items) < _GROUP:
            items.append(self._pending.popleft())
            if not isinstance(items[-1], Batch):
                break
        return items

    def _run(self) -> None:
        while True:
            items = self._take()
            if not items:
                continue
            batches = [item for item in items if isinstance(item, Batch)]
            if batches:
                try:
                    self._handle(batches)
                except Exception:  # never let the writer die: requests would pile up unseen
                    self._on_error(float(sum(len(b.prices) for b in batches)))
                    self._warn("handle", "feature log: a group of batches failed (counted)")
                    logger.debug("feature log failure", exc_info=True)
            control = items[-1]
            if control is _STOP:
                return
            if isinstance(control, threading.Event):
                control.set()

    def _observe(self, batches: list[Batch]) -> list[dict[str, Any]]:
        extras: list[dict[str, Any]] = [{} for _ in batches]
        for observer in self.observers:
            try:
                added = observer(batches)
            except Exception:  # an observer's bug never stops the log or a request
                name = getattr(observer, "name", type(observer).__name__)
                if name not in self._warned:
                    self._warned.add(name)
                    logger.exception("feature log observer %s failed (logged once)", name)
                continue
            for extra, more in zip(extras, added or (), strict=False):
                if more:
                    extra.update(more)
        return extras

    def _handle(self, batches: list[Batch]) -> None:
        extras = self._observe(batches) if self.observers else [{}] * len(batches)
        if self._handler is None:
            return
        # The group's lines go out in chunks of up to _CHUNK_BYTES, one write (and one
        # rotation check) each: a write per line cost the thread more than the requests that
        # made the lines (100-instance batches: two stat calls and a flush per line).
        chunk, size, limit = [], 0, min(_CHUNK_BYTES, self._handler.maxBytes)
        for batch, extra in zip(batches, extras, strict=True):
            try:
                out = lines(batch, self._keep, extra)
            except Exception:  # a record that cannot be serialised: counted, never fatal
                logger.exception("feature log: a batch could not be serialised")
                self._on_error(float(len(batch.prices)))
                continue
            for line in out:
                if chunk and size + len(line) + 1 > limit:
                    self._write(chunk)
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line) + 1
        if chunk:
            self._write(chunk)

    def _write(self, chunk: list[bytes]) -> None:
        """One write of ``chunk``'s lines: every one written, or every one counted failed."""
        assert self._handler is not None
        failed_before = self._handler.failures
        message = b"\n".join(chunk).decode()
        self._handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO}))
        if self._handler.failures > failed_before:
            self._on_error(float(len(chunk)))
        else:
            self._on_written(float(len(chunk)))

    def _failed(self, exc: BaseException | None = None) -> None:
        reason = f": {exc}" if exc is not None else ""
        self._warn("write", f"feature log: cannot write {self.path}{reason} (counted; retried)")

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:  # once per kind: a full disk must not flood the log
            self._warned.add(kind)
            logger.warning(message)


def batch_now(
    instances: Sequence[Any],
    prices: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    model_name: str,
    model_version: str | None,
    request_id: str,
    numeric: Any = None,
    categories: Sequence[int] | None = None,
    model: Any = None,
) -> Batch:
    return Batch(
        instances,
        prices,
        lows,
        highs,
        model_name,
        model_version,
        request_id,
        time.time(),
        numeric,
        categories,
        model,
    )
