"""Fetch a file from https://, gs:// or a local path, verify its sha256, write it atomically."""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from tqdm.auto import tqdm

from housing.io import atomic_path

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
_OFFLINE_HINT = "set HOUSING_DATA_MIRROR to a local copy (path or URL) when offline"


class DownloadError(RuntimeError):
    """The download failed; the message says what failed and what to do."""


def _copy(src: BinaryIO, dst: BinaryIO, total: int | None, label: str) -> tuple[int, str]:
    """Stream ``src`` to ``dst`` with a progress bar; return (bytes, sha256)."""
    digest = hashlib.sha256()
    size = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return size, digest.hexdigest()


def _fetch_http(url: str, out: BinaryIO, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "housing-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            try:
                size, digest = _copy(resp, out, total, Path(urlparse(url).path).name)
            except (http.client.IncompleteRead, ConnectionError) as exc:
                raise DownloadError(
                    f"truncated download from {url}: the connection closed early ({exc}); "
                    f"retry, or {_OFFLINE_HINT}"
                ) from exc
            if total is not None and size != total:
                raise DownloadError(
                    f"truncated download from {url}: got {size} of {total} bytes; "
                    f"retry, or {_OFFLINE_HINT}"
                )
            return size, digest
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"HTTP {exc.code} {exc.reason} fetching {url}; check download.url, or {_OFFLINE_HINT}"
        ) from exc
    except TimeoutError as exc:
        raise DownloadError(
            f"timed out after {timeout:g}s fetching {url}; retry, or {_OFFLINE_HINT}"
        ) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(
            f"cannot reach {urlparse(url).netloc or url} ({exc.reason}); {_OFFLINE_HINT}"
        ) from exc


def _fetch_gcs(url: str, out: BinaryIO) -> tuple[int, str]:
    import gcsfs

    try:
        fs = gcsfs.GCSFileSystem()
        with fs.open(url, "rb") as src:
            return _copy(src, out, fs.size(url), Path(urlparse(url).path).name)
    except FileNotFoundError as exc:
        raise DownloadError(f"{url} does not exist; check download.url") from exc
    except Exception as exc:  # gcsfs raises many transport/auth types
        raise DownloadError(
            f"cannot read {url} ({type(exc).__name__}: {exc}); check credentials "
            f"(GOOGLE_APPLICATION_CREDENTIALS), or {_OFFLINE_HINT}"
        ) from exc


def _fetch_local(source: str, out: BinaryIO) -> tuple[int, str]:
    path = Path(urlparse(source).path if source.startswith("file://") else source)
    if not path.is_file():
        raise DownloadError(f"{path} not found; check download.url / HOUSING_DATA_MIRROR")
    with path.open("rb") as src:
        return _copy(src, out, path.stat().st_size, path.name)


def fetch(source: str, dest: str | Path, *, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``source`` to ``dest`` if its sha256 matches; otherwise leave ``dest`` untouched."""
    scheme = urlparse(source).scheme
    dest = Path(dest)
    with atomic_path(dest) as tmp, tmp.open("wb") as out:
        if scheme in ("http", "https"):
            size, digest = _fetch_http(source, out, timeout)
        elif scheme == "gs":
            size, digest = _fetch_gcs(source, out)
        elif scheme in ("", "file"):
            size, digest = _fetch_local(source, out)
        else:
            raise DownloadError(f"unsupported URL scheme {scheme!r} in {source}")
        if digest != sha256:
            raise DownloadError(
                f"sha256 mismatch for {source}: expected {sha256}, got {digest} ({size} bytes); "
                "the file is corrupt or not the expected data set"
            )
        out.close()
    logger.info("downloaded %s (%d bytes, sha256 verified) to %s", source, size, dest)
    return dest
