"""JSON log lines carrying the request id of the request being served."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import TextIO

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
_NOISY = ("urllib3", "gcsfs", "fsspec", "google", "alembic", "git", "filelock", "httpx")

# Attribute of a record whose dict is merged as is (no scan of the record's attributes):
# the access log's fast path, see `log_fields`.
FIELDS_ATTR = "json_fields"


class _UtcClock:
    """ISO-8601 UTC with milliseconds; the date-time part is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _UtcClock()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": self._clock(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attrs = record.__dict__
        fields = attrs.get(FIELDS_ATTR)
        if fields is not None:
            out.update(fields)
        else:
            request_id = attrs.get("request_id") or request_id_var.get()
            if request_id:
                out["request_id"] = request_id
            for key, value in attrs.items():
                if key not in _STANDARD and key not in out and not key.startswith("_"):
                    out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode("utf-8")


def log_fields(logger: logging.Logger, message: str, fields: dict[str, object]) -> None:
    """Log ``message`` at INFO with ``fields`` as JSON keys, for a line logged per request.

    Skips what `Logger.info` does on each call and this line does not need: the caller's
    frame lookup and the %-formatting of the message; the formatter merges ``fields``
    without scanning the record. Handlers, levels and filters apply as usual.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, message, None, None)
    record.json_fields = fields
    logger.handle(record)


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route the root and uvicorn loggers to one stderr handler (JSON unless told otherwise).

    Uvicorn's own access log is silenced: the access middleware logs each request once,
    with its request id, route, status and duration. Other root handlers (pytest's) stay.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(getattr(h, "_serve_handler", False) for h in root.handlers):
        root.addHandler(_handler(json=json))
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


# Access lines wait at most this long in the handler's buffer (see _StderrHandler).
FLUSH_S = 0.05


class _StderrHandler(logging.StreamHandler):
    """JSON lines to stderr; the per-request lines written in batches off the request path.

    A line logged with `log_fields` (the access log: one per request) is formatted at once,
    in the request's context, and appended to a buffer that a daemon thread writes every
    ``flush_s`` seconds in one write: a request makes no system call for its access line
    (the write, and getting the GIL back after it, was most of the line's cost in
    bench/request_profile.py). Any other record is written at once, after what is
    buffered, so the order holds, and start-up, shutdown, warnings and errors reach the log
    as they happen, even when the process then ends by a re-raised SIGTERM (uvicorn's way,
    which skips `logging.shutdown`). At most ``flush_s`` of access lines can be lost if the
    process is killed. ``flush_s=0`` writes every line at once.

    Writes go through the stream's class method: importing wandb (the prediction log does,
    at its first flush) replaces ``sys.stderr.write`` on the instance with a wrapper that
    runs console-capture callbacks (none with ``console="off"``) under two locks and an
    ExitStack. The bytes still go to the same stream.
    """

    def __init__(self, stream: TextIO, flush_s: float = FLUSH_S) -> None:
        super().__init__(stream)
        write = getattr(type(stream), "write", None)
        self._write = write.__get__(stream) if callable(write) else stream.write
        self.flush_s = flush_s
        self._pending: deque[str] = deque()  # append and popleft need no lock
        self._writing = threading.Lock()  # one write at a time, in order
        self._thread: threading.Thread | None = None
        forked = weakref.WeakMethod(self._forked)  # the fork hook must not keep us alive
        os.register_at_fork(after_in_child=lambda: (hook := forked()) and hook())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        if record.__dict__.get(FIELDS_ATTR) is None or self.flush_s <= 0:
            try:
                self.flush()
            except Exception:
                self.handleError(record)
        elif self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Write every buffered line now (one write)."""
        # Never takes the handler's lock: an emit holds it and may be waiting in here.
        with self._writing:
            pending = self._pending
            lines = [pending.popleft() for _ in range(len(pending))]
            if lines:
                self._write("".join(lines))
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()

    def _run(self) -> None:
        while True:
            time.sleep(self.flush_s)
            with contextlib.suppress(Exception):  # stderr failed: nowhere left to report it
                self.flush()

    def _forked(self) -> None:
        """A forked child starts its own writer; the parent's buffered lines are the parent's."""
        self._thread = None
        self._pending = deque()
        self._writing = threading.Lock()


def _handler(*, json: bool) -> logging.Handler:
    handler = _StderrHandler(sys.stderr)
    handler._serve_handler = True  # type: ignore[attr-defined]
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    return handler
