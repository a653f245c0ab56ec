"""Stage ``download``: fetch the raw CSV, verify its sha256, write ``data/raw/housing.csv``.

``HOUSING_DATA_MIRROR`` (a path or URL) replaces ``download.url`` on machines without
internet; the checksum pins the bytes either way, so the output is the same file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from housing import stage
from housing.download import DownloadError, fetch
from housing.params.download import DownloadParams

logger = logging.getLogger(__name__)

OUTPUT = Path("data/raw/housing.csv")
MIRROR_ENV = "HOUSING_DATA_MIRROR"


def resolve_source(url: str, mirror: str | None) -> str:
    """The mirror when one is set, else the configured URL."""
    return mirror.strip() if mirror and mirror.strip() else url


def main() -> None:
    p = stage.params("download", DownloadParams)
    source = resolve_source(p.url, os.environ.get(MIRROR_ENV))
    if source != p.url:
        logger.info("using %s=%s instead of %s", MIRROR_ENV, source, p.url)
    fetch(source, OUTPUT, sha256=p.sha256, timeout=p.timeout_s)


if __name__ == "__main__":
    stage.run(main, expected=(DownloadError,))
