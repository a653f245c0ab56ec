"""`make serve` as a user runs it, in a test: a user's shell, a free port, Ctrl-C to stop.

Used on a fresh copy with its own virtualenv (tests/pipeline/test_pipeline_full.py) and on
copies of the suite's shared build, which has none: there ``make -o install serve
BIN=<the test run's venv>/bin`` skips the ``install`` prerequisite (``uv sync`` would
re-point the test run's own virtualenv at the copy) and runs the same recipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
# What only a test's environment holds: the runner's (pytest, xdist, coverage), a key or a
# registry a test exported, the interpreter of the test run's virtualenv, and the native
# thread pools' sizes the suite pins (tests/conftest.py): a user's shell sets none, and the
# stages must reproduce dvc.lock without them (issue 23).
TEST_ONLY = (
    "PYTEST_",
    "COV_CORE_",
    "MLFLOW_",
    "WANDB_",
    "HOUSING_",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def user_env(mirror: Path, **extra: str) -> dict[str, str]:
    """The shell of a user of this machine: the test run's environment without what only
    tests set, plus the data mirror the README's offline line sets, and DVC's analytics off
    (no network here; `.ci/run` sets the same)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(TEST_ONLY)}
    env.update(HOUSING_DATA_MIRROR=str(mirror), DVC_NO_ANALYTICS="1", **extra)
    return env


def activated(env: dict[str, str], bin_dir: Path) -> dict[str, str]:
    """``env`` after ``source <venv>/bin/activate``: the venv's bin first on PATH."""
    return {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(bin_dir.parent),
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def stop_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Ctrl-C to the process group we started (make and the API it runs), as a user stops
    `make serve`; SIGKILL whatever is left after ``timeout``."""
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    proc.wait(10)


@dataclass
class MakeServe:
    """A running `make serve`: its base URL, process and log."""

    base_url: str
    proc: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def json(self, path: str) -> dict[str, Any]:
        status, body = get(f"{self.base_url}{path}")
        assert status == 200, (path, status, body[:2000], self.logs()[-3000:])
        return json.loads(body)

    def wait(self, what: str, until: Callable[[], bool], timeout: float = 180.0) -> None:
        """Poll ``until`` every 0.2 s; fail with the server's log after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not until():
            assert self.proc.poll() is None, (
                f"make serve exited {self.proc.returncode}\n{self.logs()[-4000:]}"
            )
            assert time.monotonic() < deadline, f"{what}: not in {timeout:.0f} s\n{self.logs()}"
            time.sleep(0.2)

    def ready(self) -> bool:
        return get(f"{self.base_url}/ready")[0] == 200


@contextlib.contextmanager
def running_make_serve(
    repo: Path, env: dict[str, str], log: Path, *, shared_venv: bool = False
) -> Iterator[MakeServe]:
    """`make serve` in ``repo`` on a free port (its documented ``PORT`` setting), stopped
    with Ctrl-C. ``shared_venv``: the copy has no virtualenv of its own (module docstring)."""
    port = free_port()
    argv = ["make", "serve"]
    if shared_venv:
        argv = ["make", "-o", "install", "serve", f"BIN={VENV_BIN}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=repo,
            env={**env, "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    server = MakeServe(f"http://127.0.0.1:{port}", proc, log)
    try:
        server.wait("make serve listening", lambda: get(f"{server.base_url}/health")[0] != 0)
        yield server
    finally:
        stop_group(proc)
