"""Reading the API's feature log (serve/feature_log.py) back: a time window of its lines.

The log is JSON lines, rotated as ``features.jsonl``, ``features.jsonl.1`` ... (oldest last);
each line holds ``at`` (UTC, ISO 8601), the instance's ``features``, its ``price``, ``low``,
``high``, the model's ``version`` and, with the shadow challenger on, ``shadow_version`` and
``shadow_price``. A line that cannot be parsed (a write cut by a full disk) is counted and
skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_FILE = "features.jsonl"  # serve.feature_log.LOG_FILE (the serving image has no housing.monitor)
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(value: str, *, now: datetime) -> datetime:
    """``2026-12-07T06:00:00Z`` (no zone: UTC), or a duration before ``now``: ``90m``, ``24h``."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO time (2026-12-07T06:00:00Z) nor a duration (90m, 24h)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def log_files(directory: Path) -> list[Path]:
    """The log's files, oldest first (``.N`` is older than ``.N-1``; the bare file is newest)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no feature log directory (set FEATURE_LOG_DIR)")
    rotated = sorted(
        (p for p in directory.glob(f"{LOG_FILE}.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    current = directory / LOG_FILE
    return rotated + ([current] if current.exists() else [])


@dataclass
class Window:
    """The records of a time window, and what was skipped reading them."""

    records: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    start: datetime | None = None
    end: datetime | None = None


def _lines(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            yield from fh


def read_window(
    directory: Path, *, since: datetime | None = None, until: datetime | None = None
) -> Window:
    """Every record with ``since <= at < until`` (either bound optional)."""
    window = Window(start=since, end=until)
    for line in _lines(log_files(directory)):
        try:
            record = json.loads(line)
            at = datetime.fromisoformat(record["at"])
            record["features"]
        except (ValueError, KeyError, TypeError):
            window.unreadable += 1
            continue
        if (since is None or at >= since) and (until is None or at < until):
            window.records.append(record)
    if window.unreadable:
        logger.warning("%d unreadable line(s) in the feature log skipped", window.unreadable)
    return window
