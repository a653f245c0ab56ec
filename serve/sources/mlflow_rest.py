"""Read an MLflow tracking server over its REST API with the stdlib only (no MLflow import).

Endpoints (MLflow 3.x, mlflow/server/handlers.py):

- ``GET /api/2.0/mlflow/registered-models/alias?name=&alias=``: the version, its run, its tags;
- ``GET /api/2.0/mlflow/artifacts/list?run_id=&path=``: a run's artifacts, whether the server
  proxies them (``mlflow-artifacts:``) or reads its own artifact store;
- ``GET /get-artifact?run_uuid=&path=``: one artifact file, from either kind of store.

Credentials: ``user:password@`` in the URI, else ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` (basic auth), else ``MLFLOW_TRACKING_TOKEN`` (bearer). They are
sent as a header and never appear in a message: every error is redacted.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from housing.redact import redact, redact_uri, secrets_in
from serve.sources.base import NoAliasError, SourceError
from serve.sources.mlflow_common import BUNDLE_ARTIFACT_PATH, AliasTarget, wanted

TIMEOUT_S = 10.0  # per call: connect and each read
_MAX_FILES = 10_000
_MAX_DEPTH = 8
_MAX_PAGES = 1_000  # per artifact directory listing
_MAX_JSON_BYTES = 16 << 20  # one REST answer
_MAX_FILE_BYTES = 1 << 30  # one downloaded bundle file
_MAX_BUNDLE_BYTES = 2 << 30  # all the files of one bundle


class RestRegistry:
    def __init__(self, uri: str, *, timeout_s: float = TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(uri.strip())
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise SourceError(f"not an http(s):// tracking URI: {redact(uri, secrets_in(uri))}")
        self.secrets = secrets_in(uri)
        self.shown = redact_uri(uri.strip().rstrip("/"))  # for messages: user kept, password masked
        netloc = parsed.hostname if ":" not in parsed.hostname else f"[{parsed.hostname}]"
        if parsed.port:
            netloc = f"{netloc}:{parsed.port}"
        # The base URL carries no userinfo: credentials travel in the Authorization header only.
        self.base = urllib.parse.urlunsplit(
            (parsed.scheme, netloc, parsed.path.rstrip("/"), "", "")
        )
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json", "User-Agent": "housing-serve"}
        user = urllib.parse.unquote(parsed.username) if parsed.username else None
        password = urllib.parse.unquote(parsed.password) if parsed.password else None
        if user is None:
            user = os.environ.get("MLFLOW_TRACKING_USERNAME") or None
            password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or None
        token = os.environ.get("MLFLOW_TRACKING_TOKEN") or None
        if user is not None:
            raw = f"{user}:{password or ''}".encode()
            encoded = base64.b64encode(raw).decode("ascii")
            self._headers["Authorization"] = f"Basic {encoded}"
            # A server or proxy may quote the header back in an error: mask its value too.
            self.secrets = (*self.secrets, *(s for s in (password, encoded) if s))
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"
            self.secrets = (*self.secrets, token)
        self._context = _ssl_context()

    # --- calls -----------------------------------------------------------------------------

    def _open(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self._headers, method="GET")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context)
        except urllib.error.HTTPError as exc:
            reason = _http_reason(exc)
            if path.endswith("/registered-models/alias") and _alias_not_found(reason, params):
                name, alias = params.get("name"), params.get("alias")
                raise NoAliasError(
                    self._clean(f"model {name!r} has no version with alias {alias!r} ({reason})")
                ) from None
            raise SourceError(self._clean(f"{path}: {reason}")) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(
                self._clean(f"tracking server unreachable at {self.shown}: {reason}")
            ) from None

    def _json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        with self._open(path, params) as response:
            try:
                raw = response.read(_MAX_JSON_BYTES + 1)
                if len(raw) > _MAX_JSON_BYTES:
                    raise SourceError(f"{path}: answer larger than {_MAX_JSON_BYTES} bytes")
                body = json.loads(raw)
            except (OSError, ValueError) as exc:
                raise SourceError(self._clean(f"{path}: unreadable answer ({exc})")) from None
        if not isinstance(body, dict):
            raise SourceError(f"{path}: the answer is not a JSON object")
        return body

    def _clean(self, message: str) -> str:
        return redact(" ".join(message.split()), self.secrets)

    # --- registry --------------------------------------------------------------------------

    def alias_target(self, name: str, alias: str) -> AliasTarget:
        body = self._json("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})
        mv = body.get("model_version")
        if not isinstance(mv, dict) or "version" not in mv:
            raise SourceError(f"model {name!r}: the server returned no version for {alias!r}")
        status = mv.get("status")
        if status and status != "READY":
            raise SourceError(f"{name} version {mv['version']} is {status}, not READY")
        run_id = str(mv.get("run_id") or "")
        if not run_id:
            raise SourceError(f"{name} version {mv['version']} has no run")
        tags = {
            str(t.get("key")): str(t.get("value", ""))
            for t in mv.get("tags") or []
            if isinstance(t, dict) and t.get("key")
        }
        return AliasTarget(name, alias, str(mv["version"]), run_id, tags)

    def _list(self, run_id: str, path: str) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = []
        params = {"run_id": run_id, "path": path}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            body = self._json("/api/2.0/mlflow/artifacts/list", params)
            files.extend(f for f in body.get("files") or [] if isinstance(f, dict))
            if len(files) > _MAX_FILES:
                raise SourceError(f"more than {_MAX_FILES} entries under {path}/")
            token = body.get("next_page_token")
            if not token:
                return files
            token = str(token)
            if token in seen:
                raise SourceError(f"listing {path}/: the server repeated page token {token[:40]!r}")
            seen.add(token)
            params = {**params, "page_token": token}
        raise SourceError(f"listing {path}/: more than {_MAX_PAGES} pages")

    def list_files(self, run_id: str, root: str = BUNDLE_ARTIFACT_PATH) -> list[str]:
        """Every file under ``root`` of the run's artifacts, as paths relative to ``root``."""
        out: list[str] = []
        pending = [(root, 0)]
        while pending:
            directory, depth = pending.pop()
            for entry in self._list(run_id, directory):
                path = str(entry.get("path") or "")
                if not path.startswith(f"{root}/"):
                    path = f"{directory}/{path.rsplit('/', 1)[-1]}"  # a bare name
                if entry.get("is_dir"):
                    if depth + 1 > _MAX_DEPTH:
                        raise SourceError(
                            f"artifact tree under {root}/ is deeper than {_MAX_DEPTH}"
                        )
                    pending.append((path, depth + 1))
                else:
                    out.append(path[len(root) + 1 :])
                if len(out) > _MAX_FILES:
                    raise SourceError(f"more than {_MAX_FILES} files under {root}/")
        return sorted(out)

    def download_bundle(self, target: AliasTarget, dst: Path) -> Path:
        """Download the run's ``bundle/`` (every file but the skops model) into ``dst``."""
        return self.download_dir(target, BUNDLE_ARTIFACT_PATH, dst, skip_skops=True)

    def download_dir(
        self, target: AliasTarget, root: str, dst: Path, *, skip_skops: bool = False
    ) -> Path:
        """Download every file under the run's artifact folder ``root`` into ``dst``."""
        names = [
            n for n in self.list_files(target.run_id, root) if not skip_skops or wanted(n, target)
        ]
        if not names:
            raise SourceError(
                f"{target.name} version {target.version}: run {target.run_id} has no {root}/ files"
            )
        root_dir = dst.resolve()
        total = 0
        for name in names:
            out = (dst / name).resolve()
            if root_dir not in out.parents:
                raise SourceError(f"artifact path {name!r} leaves the bundle directory")
            out.parent.mkdir(parents=True, exist_ok=True)
            params = {"run_uuid": target.run_id, "path": f"{root}/{name}"}
            tmp = out.with_name(f".{out.name}.part")
            with self._open("/get-artifact", params) as response, tmp.open("wb") as fh:
                try:
                    total += _copy_capped(response, fh, name, total)
                except OSError as exc:
                    raise SourceError(self._clean(f"downloading {name}: {exc}")) from None
                except SourceError:
                    fh.close()
                    tmp.unlink(missing_ok=True)
                    raise
            tmp.replace(out)
        return dst


def _copy_capped(response: Any, fh: Any, name: str, before: int) -> int:
    """Copy one download, refusing more than ``_MAX_FILE_BYTES`` for the file or more than
    ``_MAX_BUNDLE_BYTES`` for the bundle so far (``before`` bytes already downloaded)."""
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
        if size > _MAX_FILE_BYTES:
            raise SourceError(f"artifact {name} is larger than {_MAX_FILE_BYTES} bytes")
        if before + size > _MAX_BUNDLE_BYTES:
            raise SourceError(f"the bundle is larger than {_MAX_BUNDLE_BYTES} bytes at {name}")
        fh.write(chunk)
    return size


def _http_reason(exc: urllib.error.HTTPError) -> str:
    """``HTTP 404: RESOURCE_DOES_NOT_EXIST: Registered model alias champion not found.``"""
    detail = ""
    try:
        body = json.loads(exc.read(64_000) or b"{}")
        if isinstance(body, dict):
            detail = ": ".join(str(body[k]) for k in ("error_code", "message") if body.get(k))
    except (OSError, ValueError):
        pass
    if exc.code in {401, 403}:
        detail = detail or "credentials refused (set MLFLOW_TRACKING_USERNAME/PASSWORD)"
    return f"HTTP {exc.code}" + (f": {detail[:300]}" if detail else "")


def _alias_not_found(reason: str, params: dict[str, str]) -> bool:
    """Whether an alias lookup failed because the model has no such alias (MLflow 3.17:
    ``HTTP 400: INVALID_PARAMETER_VALUE: Registered model alias X not found.``)."""
    return reason.startswith(("HTTP 400", "HTTP 404")) and (
        f"alias {params.get('alias')} not found" in reason
    )


def _ssl_context() -> ssl.SSLContext | None:
    """MLflow's TLS settings: a CA bundle path, or (on purpose only) no verification."""
    cert = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in {"1", "true"}:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cert) if cert else None
