"""Publish the signed champion to the GCS path the API's GCS source reads.

DVC's remote stores files by content (``files/md5/ab/cdef…``), which the API cannot address
by name, so this copies the champion directory the register stage exports (``champion/``:
``model.json``, the serving bundle ``serving/``, ``model.sig``, ``promotion.json``) to
``gs://<bucket>/<prefix>/``, the promotion record last (readers fingerprint it).

Only a **signed** champion is published: the directory is verified, before anything is
uploaded, against the public keys of ``HOUSING_VERIFY_KEYS`` / ``HOUSING_VERIFY_KEY_FILES``
(the ones the API trusts); an unsigned, tampered or wrong-key directory, or a candidate
(``models/``, which has no promotion record), is refused. Settings use the API's variable
names, so one ``.env`` serves both:

    python scripts/publish_model.py --bucket my-bucket --prefix champion
    GCS_BUCKET=my-bucket GCS_ENDPOINT_URL=http://127.0.0.1:4443 python scripts/publish_model.py

A refusal (no keys, no bucket, an unsigned or tampered champion, an endpoint that does not
answer) is one line and exit status 2; a failure of the upload itself is one line and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from housing.cli_errors import one_line
from housing.io import sha256_bytes
from housing.signing import RECORD_FILE, KeyConfigError, KeyRing, SigningError, verify
from housing.signing.keys import VERIFY_KEY_FILES_ENV, VERIFY_KEYS_ENV

logger = logging.getLogger(__name__)

GCS_ENDPOINT = "https://storage.googleapis.com"  # gcsfs's default (no emulator)


class PublishError(RuntimeError):
    """The bundle or the destination is not usable; the message says which and why."""


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str
    endpoint_url: str | None = None
    project: str | None = None

    def path(self, name: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, name) if p)


def read_champion(champion_dir: Path, keys: KeyRing) -> tuple[dict[str, bytes], str]:
    """Every file of a signed champion, verified with ``keys``; and the model's version."""
    if not len(keys):
        raise PublishError(
            f"no verification keys: set {VERIFY_KEY_FILES_ENV} (or {VERIFY_KEYS_ENV}) to the "
            "public key the champion must be signed with; only a signed champion is published"
        )
    if not (champion_dir / RECORD_FILE).is_file():
        raise PublishError(
            f"{champion_dir / RECORD_FILE} not found: {champion_dir} is not a promoted champion "
            "(run the pipeline, or `housing-registry export --out champion`)"
        )
    try:
        result = verify(champion_dir, keys, expected={"alias": "champion"})
    except SigningError as exc:
        raise PublishError(f"refusing to publish {champion_dir}: {exc}") from None
    files: dict[str, bytes] = {}
    for path in sorted(champion_dir.rglob("*")):
        if path.is_file():
            files[path.relative_to(champion_dir).as_posix()] = path.read_bytes()
    if result.record is None:  # verify() with keys always returns the record
        raise PublishError(f"{champion_dir}: no promotion record")
    # Check again what will be uploaded, byte for byte, against the signed record.
    for name, digest in result.record.files.items():
        if sha256_bytes(files.get(name, b"")) != digest:
            raise PublishError(f"{champion_dir / name} changed after verification")
    return files, result.record.version


def resolve_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    """Destination from the flags, else the API's environment variables."""
    bucket = (args.bucket or env.get("GCS_BUCKET") or "").strip()
    bucket = bucket.removeprefix("gs://").strip("/")
    if not bucket:
        raise PublishError("no bucket: pass --bucket or set GCS_BUCKET")
    prefix = args.prefix if args.prefix is not None else env.get("GCS_PREFIX", "champion")
    endpoint = args.endpoint_url or env.get("GCS_ENDPOINT_URL") or env.get("STORAGE_EMULATOR_HOST")
    return Target(bucket, prefix.strip("/"), endpoint or None, env.get("GCS_PROJECT") or None)


def probe(endpoint_url: str) -> None:
    """Fail in seconds when the endpoint is down or offline (gcsfs retries for a minute or more)."""
    url = endpoint_url if "://" in endpoint_url else f"http://{endpoint_url}"
    try:
        parsed = urlsplit(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError as exc:
        raise PublishError(f"GCS endpoint {endpoint_url!r} is not a URL: {exc}") from None
    if not parsed.hostname:
        raise PublishError(f"GCS endpoint {endpoint_url!r} names no host")
    try:
        socket.create_connection((parsed.hostname, port), timeout=2.0).close()
    except OSError as exc:
        raise PublishError(f"GCS endpoint {endpoint_url} unreachable: {one_line(exc)}") from None


def filesystem(target: Target) -> Any:
    """A gcsfs filesystem: Application Default Credentials, or anonymous for an emulator."""
    probe(target.endpoint_url or GCS_ENDPOINT)  # before gcsfs's import (seconds)
    # Without this, gcsfs asks the bucket type over gRPC, which an emulator never answers.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    kwargs: dict[str, Any] = {"skip_instance_cache": True, "cache_timeout": 0}
    if target.endpoint_url:
        kwargs |= {"endpoint_url": target.endpoint_url, "token": "anon"}
    if target.project:
        kwargs["project"] = target.project
    return gcsfs.GCSFileSystem(**kwargs)


def publish(files: Mapping[str, bytes], target: Target, fs: Any) -> None:
    """Upload the champion (the record last), then read the record back."""
    if not fs.exists(target.bucket):
        raise PublishError(f"bucket gs://{target.bucket} not found (create it first)")
    for name in [n for n in files if n != RECORD_FILE] + [RECORD_FILE]:
        fs.pipe_file(target.path(name), files[name])
    if fs.cat_file(target.path(RECORD_FILE)) != files[RECORD_FILE]:
        raise PublishError(f"gs://{target.path(RECORD_FILE)} reads back different bytes")


@contextmanager
def upload_failures() -> Iterator[None]:
    """What gcsfs and google-auth raise besides OSError (a 5xx, expired credentials), as one
    line: the PublishError of a refusal."""
    from gcsfs.retry import HttpError
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except (HttpError, GoogleAuthError) as exc:
        raise PublishError(f"GCS: {type(exc).__name__}: {one_line(exc)}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--champion-dir", type=Path, default=Path("champion"), help="default: champion/"
    )
    parser.add_argument("--bucket", help="bucket name or gs://bucket (default: $GCS_BUCKET)")
    parser.add_argument("--prefix", help="object prefix (default: $GCS_PREFIX or 'champion')")
    parser.add_argument("--endpoint-url", help="emulator endpoint (default: $GCS_ENDPOINT_URL)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # gcsfs logs every failed request with its traceback; the one line below says it once.
    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
    args = parse_args(argv)
    try:
        target = resolve_target(args, os.environ)
        files, version = read_champion(args.champion_dir, KeyRing.from_env())
        fs = filesystem(target)
        with upload_failures():
            publish(files, target, fs)
    except (KeyConfigError, PublishError) as exc:
        logger.error("publish_model: %s", one_line(exc))
        return 2
    except OSError as exc:  # network or permission errors from gcsfs
        logger.error("publish_model: %s: %s", type(exc).__name__, one_line(exc))
        return 1
    logger.info(
        "published the signed champion v%s: gs://%s (%d files)",
        version,
        target.path(""),
        len(files),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
