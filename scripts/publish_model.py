"""Publish the model bundle to the GCS path the API's GCS source reads.

DVC's remote stores files by content (``files/md5/ab/cdef…``), which the API cannot address
by name, so this copies ``models/model.skops``, the serving bundle ``models/serving/`` (what
the API loads) and ``models/model.json`` to ``gs://<bucket>/<prefix>/`` (``model.json``
last: readers fingerprint it). Settings use the
API's variable names, so one ``.env`` serves both:

    python scripts/publish_model.py --bucket my-bucket --prefix models
    GCS_BUCKET=my-bucket GCS_ENDPOINT_URL=http://127.0.0.1:4443 python scripts/publish_model.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from housing.artifact import META_FILE, MODEL_FILE
from housing.io import sha256_bytes
from housing.serving import MANIFEST, SERVING_DIR

logger = logging.getLogger(__name__)


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


def read_bundle(model_dir: Path) -> dict[str, bytes]:
    """The bundle's two files, checked to belong together (model sha256 = metadata's)."""
    files: dict[str, bytes] = {}
    for name in (MODEL_FILE, META_FILE):
        path = model_dir / name
        if not path.is_file():
            raise PublishError(f"{path} not found; run `dvc pull` (or `dvc repro`) first")
        files[name] = path.read_bytes()
    try:
        meta = json.loads(files[META_FILE])
    except json.JSONDecodeError as exc:
        raise PublishError(f"{model_dir / META_FILE} is not JSON: {exc}") from None
    recorded = meta.get("sha256") if isinstance(meta, dict) else None
    if not recorded:
        raise PublishError(f"{model_dir / META_FILE} records no sha256")
    actual = sha256_bytes(files[MODEL_FILE])
    if actual != recorded:
        raise PublishError(
            f"{model_dir / MODEL_FILE} sha256 {actual[:12]} does not match "
            f"{META_FILE}'s {recorded[:12]}; refusing to publish a mismatched bundle"
        )
    serving = model_dir / SERVING_DIR
    if not (serving / MANIFEST).is_file():
        raise PublishError(f"{serving / MANIFEST} not found; run `dvc pull` (or `dvc repro`) first")
    for path in sorted(serving.rglob("*")):
        if path.is_file():
            files[f"{SERVING_DIR}/{path.relative_to(serving).as_posix()}"] = path.read_bytes()
    manifest_sha = sha256_bytes(files[f"{SERVING_DIR}/{MANIFEST}"])
    if manifest_sha != meta.get("serving_sha256"):
        raise PublishError(
            f"{serving / MANIFEST} sha256 {manifest_sha[:12]} does not match {META_FILE}'s "
            "serving_sha256; refusing to publish a mismatched bundle"
        )
    return files


def resolve_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    """Destination from the flags, else the API's environment variables."""
    bucket = (args.bucket or env.get("GCS_BUCKET") or "").strip()
    bucket = bucket.removeprefix("gs://").strip("/")
    if not bucket:
        raise PublishError("no bucket: pass --bucket or set GCS_BUCKET")
    prefix = args.prefix if args.prefix is not None else env.get("GCS_PREFIX", "models")
    endpoint = args.endpoint_url or env.get("GCS_ENDPOINT_URL") or env.get("STORAGE_EMULATOR_HOST")
    return Target(bucket, prefix.strip("/"), endpoint or None, env.get("GCS_PROJECT") or None)


def probe(endpoint_url: str) -> None:
    """Fail in seconds when a custom endpoint is down (gcsfs would retry for ~30 s)."""
    url = endpoint_url if "://" in endpoint_url else f"http://{endpoint_url}"
    parsed = urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=2.0).close()
    except OSError as exc:
        raise PublishError(f"GCS endpoint {endpoint_url} unreachable: {exc}") from None


def filesystem(target: Target) -> Any:
    """A gcsfs filesystem: Application Default Credentials, or anonymous for an emulator."""
    # Without this, gcsfs asks the bucket type over gRPC, which an emulator never answers.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    kwargs: dict[str, Any] = {"skip_instance_cache": True, "cache_timeout": 0}
    if target.endpoint_url:
        probe(target.endpoint_url)
        kwargs |= {"endpoint_url": target.endpoint_url, "token": "anon"}
    if target.project:
        kwargs["project"] = target.project
    return gcsfs.GCSFileSystem(**kwargs)


def publish(files: Mapping[str, bytes], target: Target, fs: Any) -> str:
    """Upload the bundle (metadata last), read the metadata back; return the model sha256."""
    if not fs.exists(target.bucket):
        raise PublishError(f"bucket gs://{target.bucket} not found (create it first)")
    # The model and the serving bundle first, the metadata last (the API's commit point).
    for name in [n for n in files if n != META_FILE] + [META_FILE]:
        fs.pipe_file(target.path(name), files[name])
    if fs.cat_file(target.path(META_FILE)) != files[META_FILE]:
        raise PublishError(f"gs://{target.path(META_FILE)} reads back different bytes")
    return sha256_bytes(files[MODEL_FILE])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--bucket", help="bucket name or gs://bucket (default: $GCS_BUCKET)")
    parser.add_argument("--prefix", help="object prefix (default: $GCS_PREFIX or 'models')")
    parser.add_argument("--endpoint-url", help="emulator endpoint (default: $GCS_ENDPOINT_URL)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        target = resolve_target(args, os.environ)
        files = read_bundle(args.model_dir)
        sha = publish(files, target, filesystem(target))
    except PublishError as exc:
        logger.error("publish_model: %s", exc)
        return 2
    except OSError as exc:  # network or permission errors from gcsfs
        logger.error("publish_model: %s: %s", type(exc).__name__, exc)
        return 1
    logger.info("published gs://%s + %s (sha256 %s)", target.path(MODEL_FILE), META_FILE, sha[:12])
    return 0


if __name__ == "__main__":
    sys.exit(main())
