"""Prediction statistics to Weights & Biases, never on the request path.

Requests append one small record (count, mean/min/max price, latency) to a bounded buffer
(a deque: one append, no lock, no thread wake-up per request); when the buffer is full the
record is dropped and counted, so a request never waits. A daemon thread takes the buffered
records every ``flush_s`` seconds and hands each window to a sink (W&B offline by default;
`WANDB_MODE=disabled` turns the whole logger off). The W&B run captures no console and no
system statistics: console capture wraps stderr, which every access-log line goes through.

wandb is optional in the API (the image installs it only when built with
``--build-arg WITH_WANDB=1``). Without it, a W&B sink says so in one warning at start-up and
the logger stays idle: no thread, no buffer, nothing counted as dropped.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, float]], None]


def wandb_installed() -> bool:
    """Whether the wandb package is there (looked up, not imported: importing costs seconds)."""
    try:
        return importlib.util.find_spec("wandb") is not None
    except (ImportError, ValueError):
        return False


class PredictionRecord(NamedTuple):
    count: int
    mean: float
    min: float
    max: float
    latency_ms: float


def aggregate(records: list[PredictionRecord], dropped: int) -> dict[str, float]:
    """One W&B row for a window of requests."""
    instances = sum(r.count for r in records)
    return {
        "requests": float(len(records)),
        "instances": float(instances),
        "prediction_mean": sum(r.mean * r.count for r in records) / instances,
        "prediction_min": min(r.min for r in records),
        "prediction_max": max(r.max for r in records),
        "latency_ms_mean": sum(r.latency_ms for r in records) / len(records),
        "latency_ms_max": max(r.latency_ms for r in records),
        "dropped_total": float(dropped),
    }


class PredictionLogger:
    """Bounded, drop-on-full queue drained by one background thread into ``sink``.

    A sink whose ``available`` attribute is False (a W&B sink without wandb) leaves the
    logger idle: ``record`` returns False at once and ``start`` starts no thread.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        maxsize: int = 1000,
        flush_s: float = 10.0,
        on_drop: Callable[[], None] | None = None,
        close_sink: Callable[[], None] | None = None,
    ) -> None:
        self._buffer: deque[PredictionRecord] = deque()
        self._maxsize = maxsize
        self._sink = sink
        self._flush_s = flush_s
        self._on_drop = on_drop
        self._close_sink = close_sink
        self.dropped = 0
        self.logged_windows = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.enabled = bool(getattr(sink, "available", True))

    def record(self, record: PredictionRecord) -> bool:
        """Buffer a record without waiting; False (and counted) when the buffer is full."""
        if not self.enabled:
            return False
        buffer = self._buffer
        if len(buffer) >= self._maxsize:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        buffer.append(record)
        return True

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is buffered, close the sink, and stop the thread (bounded wait)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[PredictionRecord]:
        buffer, window = self._buffer, []
        while True:
            try:
                window.append(buffer.popleft())
            except IndexError:
                return window

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._flush_s)
            window = self._take()
            if window:
                self._flush(window)
            if stopping:
                break
        if self._close_sink is not None:
            try:
                self._close_sink()
            except Exception:
                logger.exception("closing the prediction-log sink failed")

    def _flush(self, window: list[PredictionRecord]) -> None:
        try:
            self._sink(aggregate(window, self.dropped))
            self.logged_windows += 1
        except Exception:
            logger.exception("prediction-log sink failed; %d record(s) lost", len(window))


class WandbSink:
    """Logs each window to one W&B run, started lazily in the logger's thread.

    ``available`` is False when wandb is not installed: one warning, then the logger idles.
    """

    def __init__(self, *, mode: str, project: str, config: dict[str, Any] | None = None) -> None:
        self.mode, self.project, self.config = mode, project, config or {}
        self._run: Any = None
        self.available = wandb_installed()
        self._failed = not self.available
        if not self.available:
            logger.warning(
                "WANDB_MODE=%s but wandb is not installed: prediction statistics are not "
                "logged (the API image includes wandb when built with --build-arg WITH_WANDB=1; "
                "WANDB_MODE=disabled silences this)",
                mode,
            )

    def __call__(self, row: dict[str, float]) -> None:
        if self._failed:
            return
        if self._run is None:
            try:
                import wandb

                # WANDB_DIR is forwarded per run: wandb freezes its environment at the first
                # init in a process, so a later change would otherwise be ignored.
                self._run = wandb.init(
                    project=self.project,
                    mode=self.mode,
                    job_type="serving",
                    config=self.config,
                    dir=os.environ.get("WANDB_DIR"),
                    settings=wandb.Settings(
                        console="off",  # no wrapper around stdout/stderr (the access log)
                        x_disable_stats=True,  # no system-metrics sampling thread
                        x_disable_meta=True,
                        x_disable_machine_info=True,
                        disable_git=True,
                        save_code=False,
                        silent=True,
                    ),
                )
            except Exception:
                self._failed = True
                logger.exception("W&B init failed; prediction statistics are not logged")
                return
        self._run.log(row)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
