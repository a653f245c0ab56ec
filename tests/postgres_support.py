"""A throw-away PostgreSQL cluster on a free loopback port, for tests of real database code.

Debian's ``postgresql`` package provides the binaries (``apt-get install -y postgresql``,
``make system-deps``); as root the cluster runs as the ``postgres`` user (via runuser), as
anyone else as that user. Everything lives in one temp dir, removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"PostgreSQL's {name} not found: apt-get install -y postgresql")


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def psql(port: int, sql: str) -> None:
    subprocess.run(
        [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@contextlib.contextmanager
def running_postgres(databases: Sequence[str] = ()) -> Iterator[tuple[int, Path]]:
    """A cluster (trust auth on 127.0.0.1, user ``postgres``) holding ``databases``:
    yields (port, its root directory)."""
    root = Path(tempfile.mkdtemp(prefix="housing-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    log = root / "postgres.log"
    subprocess.run(
        as_postgres([pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True, capture_output=True, timeout=120, cwd=root,
    )  # fmt: skip
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = pg_bin("pg_ctl")
    subprocess.run(
        as_postgres([ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"]),
        check=True, capture_output=True, timeout=120, cwd=root,
    )  # fmt: skip
    try:
        for db in databases:
            psql(port, f"CREATE DATABASE {db}")
        yield port, root
    finally:
        subprocess.run(
            as_postgres([ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False, capture_output=True, timeout=120, cwd=root,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
