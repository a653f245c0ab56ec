"""sha256 of every file of a model directory, walked the way OpenSSF model-signing walks it.

model-signing's ``files`` serialization visits the directory and everything under it,
refuses any symbolic link or special file (even inside ignored folders), and hashes each
regular file not under an ignored path, keyed by its POSIX path relative to the directory.
The signer and the light verifier both call :func:`file_digests`, so they see one view.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from housing.signing.record import SigningError

_CHUNK = 1 << 20
# model-signing ignores these by default (hashing.Config(ignore_git_paths=True)).
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _ignored(rel: PurePosixPath, ignore: Iterable[PurePosixPath]) -> bool:
    return any(rel.is_relative_to(path) for path in ignore)


def file_digests(directory: Path, ignore: Iterable[str]) -> dict[str, str]:
    """Map POSIX relative path -> sha256 of every regular file not under ``ignore``.

    Raises :class:`SigningError` naming the path on a symlink or a special file.
    """
    directory = Path(directory)
    if directory.is_symlink() or not directory.is_dir():
        raise SigningError(f"{directory} is not a directory")
    ignored = [PurePosixPath(p) for p in ignore]
    out: dict[str, str] = {}

    def refuse(exc: OSError) -> None:
        raise SigningError(f"cannot read {exc.filename}: {exc.strerror}")

    for root, dirs, files in os.walk(directory, onerror=refuse, followlinks=False):
        base = Path(root)
        for name in sorted(dirs) + sorted(files):
            path = base / name
            mode = path.lstat().st_mode
            rel = PurePosixPath(path.relative_to(directory).as_posix())
            if stat.S_ISLNK(mode):
                raise SigningError(f"{rel} is a symbolic link; refusing (links are not signed)")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise SigningError(f"{rel} is not a regular file; refusing")
            if not _ignored(rel, ignored):
                out[str(rel)] = sha256_file(path)
    return out
