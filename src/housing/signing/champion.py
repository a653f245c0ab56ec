"""Build a signed champion directory from a model bundle, replacing the old one in one step.

Promotion copies the bundle's files (``model.json``, ``serving/``, ``model.skops``) into a
fresh directory beside the destination, optionally compiles the booster for this machine
(``compiled/``, :mod:`housing.serving.compiled`), writes the record, signs it, verifies the
result, and only then swaps it in. A failure at any step leaves the previous champion in
place. The record lists every file, the compiled library included, so the signature covers it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from housing.io import replace_dir
from housing.signing.digests import GIT_PATHS, file_digests
from housing.signing.keys import SigningKey
from housing.signing.record import RECORD_FILE, SIGNATURE_FILE, PromotionRecord, SigningError

logger = logging.getLogger(__name__)

BUNDLE_FILES = ("model.json", "serving", "model.skops")


def _copy(source: Path, dest: Path, include: Sequence[str]) -> None:
    for name in include:
        src = source / name
        if src.is_symlink():
            raise SigningError(f"{src} is a symbolic link; refusing to copy it into a champion")
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, dest / name)
        elif name != "model.skops":  # the full pipeline is optional, the rest is not
            raise SigningError(f"{src} not found; cannot build a champion from {source}")


def build_champion(
    source: str | Path,
    dest: str | Path,
    record: PromotionRecord,
    key: SigningKey | None,
    *,
    include: Sequence[str] = BUNDLE_FILES,
    compiled: bool = False,
) -> PromotionRecord:
    """Write ``dest`` = the bundle files of ``source`` + ``promotion.json`` (+ ``model.sig``).

    With ``compiled``, the booster is also compiled for this platform into ``compiled/``
    (exact against LightGBM or left out with a warning: the champion is valid either way).

    With ``key`` None (no signing key configured) the record is written unsigned and a
    warning logged: verifiers with keys will refuse it, verifiers without keys serve it as
    unsigned. Returns the record with its ``files`` filled in.
    """
    source, dest = Path(source), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _copy(source, staging, include)
        if compiled:
            from housing.serving.compiled import compile_champion

            compile_champion(staging)
        if key is None:
            files = file_digests(staging, ignore=[SIGNATURE_FILE, RECORD_FILE, *GIT_PATHS])
            record = replace(record, version=str(record.version), files=files)
            PromotionRecord.from_dict(record.to_dict())
            (staging / RECORD_FILE).write_bytes(record.to_bytes())
            logger.warning(
                "no signing key configured: champion %s v%s written UNSIGNED to %s",
                record.name,
                record.version,
                dest,
            )
        else:
            from housing.signing.sign import sign_directory

            record = sign_directory(staging, record, key)
        staging.chmod(0o755)
        replace_dir(staging, dest)  # restores the previous champion if the swap fails
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record
