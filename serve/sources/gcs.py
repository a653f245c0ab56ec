"""A bundle in a GCS bucket (`<prefix>/model.json` + `<prefix>/serving/*`), via gcsfs.

Only the metadata and the serving bundle are fetched (the files its manifest lists); the
skops model beside them is never downloaded by the API.

Works against a local emulator through GCS_ENDPOINT_URL or STORAGE_EMULATOR_HOST (anonymous
access then). gcsfs is imported only when this source is configured (it costs ~1-2 s).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from housing.redact import redact, redact_uri, secrets_in
from housing.serving import MANIFEST, META_FILE, SERVING_DIR
from serve.loaded_model import LoadedModel, load_directory
from serve.sources.base import SourceError


class GcsSource:
    name = "gcs"

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        project: str | None,
        model_name: str,
        context_limit: int,
    ) -> None:
        self.bucket = bucket.removeprefix("gs://").strip("/")
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST") or None
        self.project = project
        self.model_name = model_name
        self.context_limit = context_limit
        self._fs: Any = None

    def describe(self) -> str:
        where = f" via {redact_uri(self.endpoint_url)}" if self.endpoint_url else ""
        return f"gs://{self._path('')}{where}"

    def _path(self, name: str) -> str:
        parts = [self.bucket, self.prefix, name] if self.prefix else [self.bucket, name]
        return "/".join(p for p in parts if p)

    def _probe(self) -> None:
        """Fail in seconds when a custom endpoint is down (gcsfs retries for ~30 s)."""
        if not self.endpoint_url:
            return
        parsed = urlsplit(
            self.endpoint_url if "://" in self.endpoint_url else f"http://{self.endpoint_url}"
        )
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=2.0).close()
        except OSError as exc:
            message = f"GCS endpoint {self.endpoint_url} unreachable: {exc}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url))) from None

    def _filesystem(self) -> Any:
        self._probe()
        if self._fs is None:
            # Without this, gcsfs asks the bucket type over gRPC, which an emulator never
            # answers: every call then waits minutes.
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
            import gcsfs

            kwargs: dict[str, Any] = {"skip_instance_cache": True, "cache_timeout": 0, "retries": 1}
            if self.endpoint_url:
                kwargs |= {"endpoint_url": self.endpoint_url, "token": "anon"}
            if self.project:
                kwargs["project"] = self.project
            self._fs = gcsfs.GCSFileSystem(**kwargs)
        return self._fs

    def _read_meta(self) -> dict[str, Any]:
        path = self._path(META_FILE)
        try:
            raw = self._filesystem().cat_file(path)
        except FileNotFoundError:
            raise SourceError(f"gs://{path} not found") from None
        except Exception as exc:
            message = f"cannot read gs://{path}: {type(exc).__name__}: {exc}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url))) from exc
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SourceError(f"gs://{path} is not JSON: {exc}") from exc
        if not isinstance(meta, dict) or not meta.get("serving_sha256"):
            raise SourceError(f"gs://{path} records no serving_sha256")
        return meta

    def fingerprint(self) -> str:
        return str(self._read_meta()["serving_sha256"])

    def _fetch(self, fs: Any, name: str, dest: Path) -> bytes:
        path = self._path(name)
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            raise SourceError(f"gs://{path} not found") from None
        except Exception as exc:
            message = f"cannot read gs://{path}: {type(exc).__name__}: {exc}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url))) from exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return data

    def load(self) -> LoadedModel:
        """Download model.json, the manifest and the files it lists, then verify and load."""
        tmp = Path(tempfile.mkdtemp(prefix="housing-gcs-"))
        try:
            fs = self._filesystem()
            self._fetch(fs, META_FILE, tmp / META_FILE)
            raw = self._fetch(fs, f"{SERVING_DIR}/{MANIFEST}", tmp / SERVING_DIR / MANIFEST)
            try:
                files = json.loads(raw).get("files") or {}
            except (ValueError, AttributeError) as exc:
                raise SourceError(f"gs://{self._path(SERVING_DIR)}/{MANIFEST}: {exc}") from exc
            for name in sorted(files):
                if not isinstance(name, str) or "/" in name or name.startswith("."):
                    raise SourceError(f"gs://{self._path(SERVING_DIR)}: bad file name {name!r}")
                self._fetch(fs, f"{SERVING_DIR}/{name}", tmp / SERVING_DIR / name)
            try:
                return load_directory(
                    tmp,
                    source=self.name,
                    alias=None,
                    default_name=self.model_name,
                    context_limit=self.context_limit,
                )
            except SourceError as exc:
                raise SourceError(f"gs://{self._path('')}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
