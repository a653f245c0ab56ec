"""A champion in a GCS bucket (``<prefix>/`` = what scripts/publish_model.py writes), via gcsfs.

``promotion.json``, ``model.sig``, ``model.json`` and the serving bundle are fetched (the files
its manifest lists), then verified like every champion (serve/champion.py).

Works against a local emulator through GCS_ENDPOINT_URL or STORAGE_EMULATOR_HOST (anonymous
access then). gcsfs is imported only when this source is configured (it costs ~1-2 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from housing.redact import redact, redact_uri, secrets_in
from housing.serving import MANIFEST, META_FILE, SERVING_DIR
from serve.champion import RECORD_FILE, SIGNATURE_FILE, load_champion, record_fingerprint
from serve.loaded_model import LoadedModel
from serve.sources.base import SourceError

if TYPE_CHECKING:
    from housing.signing import KeyRing


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
        keys: KeyRing,
    ) -> None:
        self.keys = keys
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

    def _read(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return bytes(self._filesystem().cat_file(path))
        except FileNotFoundError:
            raise SourceError(f"gs://{path} not found") from None
        except SourceError:
            raise
        except Exception as exc:
            message = f"cannot read gs://{path}: {type(exc).__name__}: {exc}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url))) from None

    def fingerprint(self) -> str:
        """The sha256 of the champion's promotion record (one small read per check)."""
        try:
            return record_fingerprint(self._read(RECORD_FILE))
        except SourceError as exc:
            raise SourceError(f"no champion: {exc} (publish: scripts/publish_model.py)") from None

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

    def load(self, min_sequence: int | None = None) -> LoadedModel:
        """Download the champion (record, signature, model.json, the manifest and the files it
        lists), then verify and load it; the skops model is never fetched."""
        tmp = Path(tempfile.mkdtemp(prefix="housing-gcs-"))
        try:
            fs = self._filesystem()
            self._fetch(fs, RECORD_FILE, tmp / RECORD_FILE)
            # Unsigned (no model.sig): load_champion refuses it when keys are configured.
            with contextlib.suppress(SourceError):
                self._fetch(fs, SIGNATURE_FILE, tmp / SIGNATURE_FILE)
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
                return load_champion(
                    tmp,
                    keys=self.keys,
                    expected={"name": self.model_name, "alias": "champion"},
                    min_sequence=min_sequence,
                    source=self.name,
                    default_name=self.model_name,
                    context_limit=self.context_limit,
                )
            except SourceError as exc:
                raise SourceError(f"gs://{self._path('')}: {exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
