"""JSON log lines carrying the request id of the request being served."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
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


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes with the stream's own class method.

    Importing wandb (the prediction log does, at its first flush) replaces ``sys.stderr.write``
    on the instance with a wrapper that runs console-capture callbacks under two locks and
    an ExitStack; with ``console="off"`` there are none, yet every access line paid for the
    wrapper (4.9 % of a single prediction's CPU in bench/request_profile.py). The bytes
    still go to the same stream, in order with anything else written to it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        write = getattr(type(stream), "write", None)
        self._write = write.__get__(stream) if callable(write) else stream.write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record) + "\n")
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _handler(*, json: bool) -> logging.Handler:
    handler = _StderrHandler(sys.stderr)
    handler._serve_handler = True  # type: ignore[attr-defined]
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    return handler
