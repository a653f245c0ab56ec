"""JSON log lines carrying the request id of the request being served."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode("utf-8")


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


def _handler(*, json: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler._serve_handler = True  # type: ignore[attr-defined]
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    return handler
