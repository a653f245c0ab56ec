"""Atomic file output and content hashing.

Every file the pipeline or the service writes goes through :func:`atomic_path`, so a
crash or a bad input never leaves a half-written file at the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.replace(dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def replace_dir(staging: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Swap the complete directory ``staging`` in at ``dest`` (same filesystem).

    The old ``dest`` is renamed aside first, then ``staging`` renamed onto ``dest``; if that
    second rename fails the old directory is renamed back, so ``dest`` is never lost. The
    old copy is deleted only after the swap. ``staging`` is removed on failure.
    """
    staging, dest = Path(staging), Path(dest)
    old: Path | None = None
    try:
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            old.rmdir()
            dest.rename(old)
        try:
            staging.rename(dest)
        except BaseException:
            if old is not None and not dest.exists():
                old.rename(dest)
                old = None
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as stable, sorted, indented JSON (deterministic bytes)."""
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_yaml(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as block-style YAML with keys in insertion order."""
    import yaml  # lazily: the serving process imports this module and has no PyYAML

    write_text(dest, yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def write_parquet(dest: str | os.PathLike[str], frame: Any) -> None:
    """Write a DataFrame to Parquet atomically, without the index, deterministically."""
    with atomic_path(dest) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="snappy")


def write_csv(dest: str | os.PathLike[str], frame: Any) -> None:
    """Write a DataFrame to CSV atomically (DVC plots read these)."""
    with atomic_path(dest) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with Path(path).open(encoding="utf-8") as fh:
        return json.load(fh)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file with the safe loader."""
    import yaml

    with Path(path).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()
