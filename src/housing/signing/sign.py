"""Sign a champion directory with OpenSSF model-signing (pipeline side; imports it lazily).

:func:`sign_directory` hashes every model file, writes ``promotion.json`` (the record, with
those sha256s) into the directory, and has model-signing sign the whole directory with the
EC private key: the signature's manifest lists every file, the record included, so the
record and the bytes are bound together. The signature is then checked back with the light
verifier, so a directory is never left with a signature that the API would refuse.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from housing.signing.digests import GIT_PATHS, file_digests
from housing.signing.keys import KeyRing, SigningKey
from housing.signing.record import RECORD_FILE, SIGNATURE_FILE, PromotionRecord, SigningError
from housing.signing.verify import VerificationError, _read_record, verify_signature

logger = logging.getLogger(__name__)


def now_utc() -> str:
    """The record's timestamp format: ISO 8601, UTC, whole seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def who() -> str:
    """The actor of a promotion: the CI actor when CI says so, else the OS user."""
    for var in ("GITHUB_ACTOR", "CI_ACTOR", "GITLAB_USER_LOGIN"):
        if os.environ.get(var):
            return f"ci:{os.environ[var]}"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@contextlib.contextmanager
def _key_path(key: SigningKey) -> Iterator[Path]:
    """A path model-signing can read the PEM from (its API takes a path, not a key object).

    On Linux an anonymous in-memory file (memfd), so the key never touches a disk; elsewhere
    a 0600 file in a 0700 temporary directory, removed on exit.
    """
    pem = key.private_pem()
    if hasattr(os, "memfd_create") and sys.platform.startswith("linux"):
        fd = os.memfd_create("housing-signing-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="housing-sign-") as tmp:
        path = Path(tmp) / "key.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        yield path


def _write_atomic(dest: Path, data: bytes) -> None:
    from housing.io import write_bytes

    write_bytes(dest, data)


def sign_directory(
    directory: str | Path, record: PromotionRecord, key: SigningKey
) -> PromotionRecord:
    """Write ``promotion.json`` + ``model.sig`` into ``directory``; return the record as signed.

    ``record.files`` is recomputed from the directory (whatever the caller passed). Any
    existing record and signature are replaced atomically; on failure the directory keeps
    no signature that disagrees with it.
    """
    directory = Path(directory)
    try:
        from model_signing import hashing, signing
    except ImportError as exc:
        raise SigningError(
            f"model-signing is not installed ({exc.name}); install the 'pipeline' extra"
        ) from None
    files = file_digests(directory, ignore=[SIGNATURE_FILE, RECORD_FILE, *GIT_PATHS])
    if not files:
        raise SigningError(f"{directory} holds no file to sign")
    record = replace(record, version=str(record.version), files=files)
    PromotionRecord.from_dict(record.to_dict())  # validate before writing anything
    (directory / SIGNATURE_FILE).unlink(missing_ok=True)
    _write_atomic(directory / RECORD_FILE, record.to_bytes())
    hashing_config = hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE])
    with (
        _key_path(key) as key_path,
        tempfile.TemporaryDirectory(prefix="housing-sig-") as tmp,
    ):
        out = Path(tmp) / SIGNATURE_FILE
        try:
            config = signing.Config().use_elliptic_key_signer(private_key=key_path)
            config.set_hashing_config(hashing_config).sign(directory, out)
        except Exception as exc:
            # Never echo a message that could quote key material.
            detail = str(exc).splitlines()[0] if str(exc) else ""
            if "-----BEGIN" in str(exc) or "PRIVATE" in str(exc).upper():
                detail = "(message withheld)"
            raise SigningError(
                f"model-signing failed to sign {directory}: {type(exc).__name__} {detail}"
            ) from None
        signature = out.read_bytes()
    _write_atomic(directory / SIGNATURE_FILE, signature)
    try:
        manifest, _ = verify_signature(directory, KeyRing.of([key.public_key]))
        _read_record(directory, manifest)
    except VerificationError as exc:
        (directory / SIGNATURE_FILE).unlink(missing_ok=True)
        raise SigningError(f"{directory} changed while it was being signed: {exc}") from None
    logger.info(
        "signed %s: %s v%s @%s, sequence %d, %d files, key %s…",
        directory,
        record.name,
        record.version,
        record.alias,
        record.sequence,
        len(files),
        key.key_id[:12],
    )
    return record
