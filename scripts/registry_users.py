"""Create the registry's read-only API user and grant it READ on the model (idempotent).

Talks to a ``mlflow server --app-name basic-auth`` over its auth REST API with the standard
library only, so it runs in the MLflow image (the compose one-shot ``registry-users``) and in
tests. Everything comes from the environment; a flag overrides it:

    MLFLOW_TRACKING_URI        the server, e.g. http://mlflow:5000 (no credentials in it)
    MLFLOW_TRACKING_USERNAME   an admin user (the server's MLFLOW_AUTH_ADMIN_USERNAME)
    MLFLOW_TRACKING_PASSWORD   its password
    HOUSING_READER_USERNAME    the read-only user to ensure (the API's credentials)
    HOUSING_READER_PASSWORD    its password

    python scripts/registry_users.py [--model housing_price_model] [--wait 120]

Run twice, it changes nothing the second time except the reader's password, which is set to
the environment's value each run (so the environment is the one source of truth). The reader
is never an admin: an admin flag found on it is removed. Every failure is one line on stderr
and exit status 1; passwords never appear in a message.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("registry_users")

MODEL_NAME = "housing_price_model"
READ = "READ"
TIMEOUT_S = 15.0
USERS = "/api/2.0/mlflow/users"
# MLflow 3.17 replaced the per-resource permission routes with one grant API (api/3.0).
GRANTS = "/api/3.0/mlflow/users/permissions"


class UsersError(RuntimeError):
    """A refusal or a missing setting, as one line."""


@dataclass(frozen=True)
class Settings:
    url: str
    admin: str
    admin_password: str
    reader: str
    reader_password: str
    model: str
    wait_s: float


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsersError(f"{name} is not set")
    return value


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The flags, else the environment; refuses credentials in the URL and an admin reader."""
    url = (args.url or _required(env, "MLFLOW_TRACKING_URI")).strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsersError("MLFLOW_TRACKING_URI must be an http(s):// server URL")
    if parts.username is not None or parts.password is not None:
        raise UsersError("put credentials in MLFLOW_TRACKING_USERNAME/PASSWORD, not in the URL")
    found = Settings(
        url=url,
        admin=_required(env, "MLFLOW_TRACKING_USERNAME"),
        admin_password=_required(env, "MLFLOW_TRACKING_PASSWORD"),
        reader=_required(env, "HOUSING_READER_USERNAME"),
        reader_password=_required(env, "HOUSING_READER_PASSWORD"),
        model=args.model,
        wait_s=args.wait,
    )
    if found.reader == found.admin:
        raise UsersError("HOUSING_READER_USERNAME must differ from the admin user")
    return found


class AuthApi:
    """The few auth endpoints this script needs, as the admin."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.url
        token = f"{settings.admin}:{settings.admin_password}".encode()
        self._auth = "Basic " + base64.b64encode(token).decode("ascii")
        self._secrets = (settings.admin_password, settings.reader_password, self._auth)

    def call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body or {}) of one request; HTTP errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._auth)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsersError(self.clean(f"{self.url} unreachable: {reason}")) from None

    def expect(self, what: str, status: int, body: dict[str, Any]) -> None:
        if status == 401:
            raise UsersError(f"{what}: 401, the admin credentials were refused")
        if status == 403:
            raise UsersError(f"{what}: 403, MLFLOW_TRACKING_USERNAME is not an admin")
        if status != 200:
            detail = body.get("message") or body.get("error_code") or body.get("text") or ""
            raise UsersError(self.clean(f"{what}: HTTP {status} {detail}"))

    def clean(self, message: str) -> str:
        message = " ".join(str(message).split())
        for secret in self._secrets:
            if secret:
                message = message.replace(secret, "***")
        return message


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"text": raw[:200].decode(errors="replace")}
    return body if isinstance(body, dict) else {}


def wait_healthy(url: str, wait_s: float) -> None:
    """Poll the unauthenticated /health until it answers 200 or ``wait_s`` passes."""
    deadline = time.monotonic() + wait_s
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise UsersError(f"{url}/health not ok after {wait_s:.0f} s ({last})")
        time.sleep(1.0)


def ensure_reader(api: AuthApi, settings: Settings) -> str:
    """Create the reader, or reset its password and drop an admin flag; returns what was done."""
    query = urllib.parse.urlencode({"username": settings.reader})
    status, body = api.call("GET", f"{USERS}/get", query=query)
    if status == 404 or body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        credentials = {"username": settings.reader, "password": settings.reader_password}
        status, body = api.call("POST", f"{USERS}/create", body=credentials)
        api.expect(f"creating user {settings.reader!r}", status, body)
        return "created"
    api.expect(f"reading user {settings.reader!r}", status, body)
    was_admin = bool((body.get("user") or {}).get("is_admin"))
    credentials = {"username": settings.reader, "password": settings.reader_password}
    status, body = api.call("PATCH", f"{USERS}/update-password", body=credentials)
    api.expect(f"setting the password of {settings.reader!r}", status, body)
    if was_admin:
        flag = {"username": settings.reader, "is_admin": False}
        status, body = api.call("PATCH", f"{USERS}/update-admin", body=flag)
        api.expect(f"removing the admin flag of {settings.reader!r}", status, body)
        return "existed (password reset, admin flag removed)"
    return "existed (password reset)"


def explicit_grant(api: AuthApi, settings: Settings) -> str | None:
    """The permission granted to the reader on the model itself (not the default), if any."""
    query = urllib.parse.urlencode({"username": settings.reader})
    status, body = api.call("GET", f"{GRANTS}/list", query=query)
    api.expect(f"listing the permissions of {settings.reader!r}", status, body)
    for row in body.get("permissions") or []:
        if (
            row.get("resource_type") == "registered_model"
            and row.get("resource_pattern", row.get("resource_id")) == settings.model
        ):
            return str(row.get("permission"))
    return None


def ensure_read_grant(api: AuthApi, settings: Settings) -> str:
    """READ on the registered model for the reader: granted, kept, or lowered to READ."""
    current = explicit_grant(api, settings)
    if current == READ:
        return "kept"
    target = {"username": settings.reader, "resource_type": "registered_model"}
    target["resource_id"] = settings.model
    if current is not None:  # e.g. EDIT or MANAGE granted by hand: the API user only reads
        status, body = api.call("POST", f"{GRANTS}/revoke", body=target)
        api.expect(f"revoking {current} on {settings.model!r}", status, body)
    status, body = api.call("POST", f"{GRANTS}/grant", body={**target, "permission": READ})
    api.expect(f"granting READ on {settings.model!r}", status, body)
    return "granted" if current is None else f"lowered from {current}"


def run(settings: Settings) -> None:
    wait_healthy(settings.url, settings.wait_s)
    api = AuthApi(settings)
    done = ensure_reader(api, settings)
    logger.info("user %s: %s", settings.reader, done)
    done = ensure_read_grant(api, settings)
    logger.info("READ on registered model %s for %s: %s", settings.model, settings.reader, done)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="tracking server (default: MLFLOW_TRACKING_URI)")
    parser.add_argument("--model", default=MODEL_NAME, help="registered model to grant READ on")
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for the server's /health"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        run(settings_from(args, os.environ if env is None else env))
    except UsersError as exc:
        sys.stderr.write(f"registry_users: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
