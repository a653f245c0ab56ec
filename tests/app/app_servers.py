"""Real servers on 127.0.0.1 for tests: Streamlit via `python -m app`, the API via uvicorn."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_API_MAX_BATCH = 3  # the real API in app tests: small, so a 7-row upload must be split
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_up(url: str, process: subprocess.Popen, log: Path, *, patience: float) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or never does."""
    give_up = time.monotonic() + patience
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise AssertionError(f"{url}: server exited with {process.returncode}\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise AssertionError(f"{url} did not come up within {patience:.0f} s\n{_tail(log)}")


@contextlib.contextmanager
def running(
    command: list[str],
    *,
    env: Mapping[str, str],
    health_url: str,
    log: Path,
    patience: float = 120.0,
) -> Iterator[subprocess.Popen]:
    """Run ``command`` from the repo root until the block ends; stop it (and only it) after."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(health_url, process, log, patience=patience)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def app_command() -> list[str]:
    """How a container starts the app."""
    return [sys.executable, "-m", "app"]


def api_command(port: int) -> list[str]:
    """How the API is started for tests: uvicorn on loopback."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "serve.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
