"""A champion in a GCS bucket (``<prefix>/`` = what scripts/publish_model.py writes).

``promotion.json``, ``model.sig``, ``model.json`` and the serving bundle are fetched (the files
its manifest lists), then verified like every champion (serve/champion.py).

Objects are read with the storage JSON API's media download (``GET .../o/<name>?alt=media``)
over ``requests``; against GCS itself, google-auth supplies the credentials (Application
Default Credentials, read-only scope). That is all the API image needs of GCS (gcsfs and its
aiohttp/gRPC tree are the pipeline's). Works against a local emulator through GCS_ENDPOINT_URL
or STORAGE_EMULATOR_HOST, anonymously then. Both libraries are imported only when this source
is used.
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
from urllib.parse import quote, urlsplit

from housing.redact import redact, redact_uri, secrets_in
from housing.serving import MANIFEST, META_FILE, SERVING_DIR
from serve.champion import RECORD_FILE, SIGNATURE_FILE, load_champion, record_fingerprint
from serve.loaded_model import LoadedModel
from serve.sources.base import SourceError

if TYPE_CHECKING:
    from housing.signing import KeyRing

GCS_URL = "https://storage.googleapis.com"
READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"
TIMEOUT_S = (5.0, 60.0)  # connect, read (a bundle is a few MB)


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
        self.project = project  # object reads need none (kept: GCS_PROJECT is a setting)
        self.model_name = model_name
        self.context_limit = context_limit
        self._http: Any = None

    def describe(self) -> str:
        where = f" via {redact_uri(self.endpoint_url)}" if self.endpoint_url else ""
        return f"gs://{self._path('')}{where}"

    def _path(self, name: str) -> str:
        parts = [self.bucket, self.prefix, name] if self.prefix else [self.bucket, name]
        return "/".join(p for p in parts if p)

    def _probe(self) -> None:
        """Fail in seconds when a custom endpoint is down, not after the read timeout."""
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

    def _base_url(self) -> str:
        if not self.endpoint_url:
            return GCS_URL
        url = self.endpoint_url if "://" in self.endpoint_url else f"http://{self.endpoint_url}"
        return url.rstrip("/")

    def _session(self) -> Any:
        """An HTTP session: anonymous for a custom endpoint, else with ADC credentials."""
        self._probe()
        if self._http is None:
            if self.endpoint_url:
                import requests

                self._http = requests.Session()
            else:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[READ_ONLY])
                self._http = AuthorizedSession(credentials)
        return self._http

    def _get(self, name: str) -> bytes:
        """The bytes of object ``<prefix>/<name>``; SourceError (secrets redacted) otherwise."""
        path = self._path(name)
        obj = path.removeprefix(f"{self.bucket}/")
        url = (
            f"{self._base_url()}/storage/v1/b/{quote(self.bucket, safe='')}"
            f"/o/{quote(obj, safe='')}?alt=media"
        )
        try:
            response = self._session().get(url, timeout=TIMEOUT_S)
        except SourceError:
            raise
        except Exception as exc:
            message = f"cannot read gs://{path}: {type(exc).__name__}: {exc}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url))) from None
        if response.status_code == 404:
            raise SourceError(f"gs://{path} not found")
        if response.status_code != 200:
            message = f"cannot read gs://{path}: HTTP {response.status_code}: {response.text[:200]}"
            raise SourceError(redact(message, secrets_in(self.endpoint_url)))
        return bytes(response.content)

    def fingerprint(self) -> str:
        """The sha256 of the champion's promotion record (one small read per check)."""
        try:
            return record_fingerprint(self._get(RECORD_FILE))
        except SourceError as exc:
            raise SourceError(f"no champion: {exc} (publish: scripts/publish_model.py)") from None

    def _fetch(self, name: str, dest: Path) -> bytes:
        data = self._get(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return data

    def load(self, min_sequence: int | None = None) -> LoadedModel:
        """Download the champion (record, signature, model.json, the manifest and the files it
        lists), then verify and load it; the skops model is never fetched."""
        tmp = Path(tempfile.mkdtemp(prefix="housing-gcs-"))
        try:
            record = self._fetch(RECORD_FILE, tmp / RECORD_FILE)
            # Unsigned (no model.sig): load_champion refuses it when keys are configured.
            with contextlib.suppress(SourceError):
                self._fetch(SIGNATURE_FILE, tmp / SIGNATURE_FILE)
            self._fetch(META_FILE, tmp / META_FILE)
            raw = self._fetch(f"{SERVING_DIR}/{MANIFEST}", tmp / SERVING_DIR / MANIFEST)
            try:
                files = json.loads(raw).get("files") or {}
            except (ValueError, AttributeError) as exc:
                raise SourceError(f"gs://{self._path(SERVING_DIR)}/{MANIFEST}: {exc}") from exc
            for name in sorted(files):
                if not isinstance(name, str) or "/" in name or name.startswith("."):
                    raise SourceError(f"gs://{self._path(SERVING_DIR)}: bad file name {name!r}")
                self._fetch(f"{SERVING_DIR}/{name}", tmp / SERVING_DIR / name)
            # The compiled predictor, when the signed record lists one (its digests are
            # checked against the record by the loader, which falls back without it).
            for name in _compiled_files(record):
                self._fetch(name, tmp / name)
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


def _compiled_files(record: bytes) -> list[str]:
    """The ``compiled/<file>`` paths a promotion record lists (none if it is unreadable:
    load_champion then refuses the record itself, with its reason)."""
    from housing.serving.compiled import COMPILED_DIR

    try:
        files = json.loads(record).get("files") or {}
    except (ValueError, AttributeError):
        return []
    out = []
    for path in sorted(files) if isinstance(files, dict) else ():
        head, _, name = str(path).partition("/")
        if head == COMPILED_DIR and name and "/" not in name and not name.startswith("."):
            out.append(f"{COMPILED_DIR}/{name}")
    return out
