"""A real PostgreSQL cluster and a real ``mlflow server --app-name basic-auth`` against it.

The cluster comes from tests/postgres_support.py (Debian's ``postgresql`` package). Everything
lives in temp dirs and listens on loopback ports only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import postgres_support
import pytest
from postgres_support import as_postgres as _as_postgres
from registry_support import free_port

SERVER_START_TIMEOUT_S = 300.0
ADMIN = "admin"
READER = "reader"


@dataclass(frozen=True)
class AuthServer:
    url: str
    admin_password: str
    reader_password: str
    workdir: Path
    log: Path


@contextlib.contextmanager
def running_postgres() -> Iterator[tuple[int, Path]]:
    """A throw-away cluster (trust auth on 127.0.0.1) with databases mlflow and mlflow_auth."""
    with postgres_support.running_postgres(("mlflow", "mlflow_auth")) as found:
        yield found


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def http(
    url: str, *, body: dict | None = None, auth: str | None = None, method: str | None = None
) -> tuple[int, str]:
    """(status, body text) of one request; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@contextlib.contextmanager
def running_auth_server(workdir: Path, pg_port: int) -> Iterator[AuthServer]:
    """``mlflow server --app-name basic-auth`` on PostgreSQL, artifacts on a served volume."""
    admin_password, reader_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pg = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}"
    config = workdir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {pg}/mlflow_auth\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Cache password checks (PBKDF2 per request otherwise: seconds per registration here).
        "auth_cache_ttl_seconds = 300\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(config),
        MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # no GenAI job runner: see registry_support
    )
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"{pg}/mlflow",
        "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with serving(cmd, env, workdir, url, log_path):
        status, text = http(
            f"{url}/api/2.0/mlflow/users/create",
            body={"username": READER, "password": reader_password},
            auth=basic_auth(ADMIN, admin_password),
        )
        assert status == 200, f"creating the read-only user: {status} {text}"
        yield AuthServer(url, admin_password, reader_password, workdir, log_path)


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], workdir: Path, url: str, log_path: Path):
    """Run a server process until ``url``/health answers 200; stop its process group after."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[:4]} exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd[:4]} not healthy in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@dataclass
class EntrypointPostgres:
    port: int
    root: Path
    exit_code: int | None = None  # set on exit: 0 when postgres shut down cleanly


@contextlib.contextmanager
def running_postgres_entrypoint(
    entrypoint: Path, initdb: Path, env: dict[str, str]
) -> Iterator[EntrypointPostgres]:
    """docker/postgres/entrypoint.sh (the Debian-package image's start-up) on a loopback port.

    ``env`` is the compose service's environment (POSTGRES_USER/PASSWORD/DB); the server
    requires a password on TCP, as in the image. Stopped with SIGINT (the image's STOPSIGNAL)
    sent to postgres itself; ``exit_code`` records how the entrypoint ended.
    """
    root = Path(tempfile.mkdtemp(prefix="housing-pg-entrypoint-"))
    # The postgres user reads them from here: a checkout in root's home (mode 700) is not
    # readable to it, so nothing is run or read from the checkout itself.
    shutil.copytree(initdb, root / "initdb")
    shutil.copy2(entrypoint, root / "entrypoint.sh")
    if os.geteuid() == 0:
        for path in (root, *root.rglob("*")):
            shutil.chown(path, "postgres", "postgres")
    found = EntrypointPostgres(free_port(), root)
    settings = {
        **env,
        "PATH": os.environ["PATH"],
        "PGDATA": str(root / "data"),
        "PG_PORT": str(found.port),
        "PG_LISTEN": "127.0.0.1",
        "INITDB_DIR": str(root / "initdb"),
    }
    script = str(root / "entrypoint.sh")
    cmd = _as_postgres(["env", *(f"{k}={v}" for k, v in settings.items()), "sh", script])
    log_path = root / "postgres.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    pid_file = root / "data" / "postmaster.pid"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"entrypoint exited with {proc.returncode}:\n{log_path.read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", found.port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"postgres not listening in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield found
    finally:
        # runuser does not forward SIGINT: signal postgres (PID 1 of the container) directly.
        if proc.poll() is None and pid_file.is_file():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        try:
            found.exit_code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
