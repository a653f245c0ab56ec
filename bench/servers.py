"""Start, time and stop the servers the benchmark measures (127.0.0.1 only)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.02  # /ready is polled every 20 ms
UVICORN_FLAGS = [
    # The same uvicorn configuration as `python -m serve` (see serve/__main__.py).
    "--host",
    "127.0.0.1",
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


class ServerError(RuntimeError):
    """A server exited or never became ready (the message names its log)."""


@dataclass
class Server:
    """A running server: its process, port, and seconds from exec to the first 200 /ready."""

    process: subprocess.Popen[bytes]
    port: int
    start_to_ready_s: float
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mib(self) -> float:
        """Peak resident set size of the serving process so far (VmHWM), MiB."""
        return _vm_hwm_kib(self.process.pid) / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment with one thread per native pool (two shared cores) plus ``extra``."""
    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return {**os.environ, **threads, "PYTHONUNBUFFERED": "1", **extra}


def serve_argv() -> list[str]:
    """Our API exactly as shipped: `python -m serve`."""
    return [sys.executable, "-m", "serve"]


def uvicorn_factory_argv(factory: str, port: int) -> list[str]:
    """A comparison app from bench/ on the same uvicorn configuration as ours."""
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port)]


def _vm_hwm_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    raise ServerError(f"no VmHWM for process {pid}")


def _ready(port: int) -> tuple[int | None, str]:
    """Status and body of GET /ready (None while nothing listens)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/ready")
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError:
        return None, ""
    finally:
        connection.close()


def _tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    process: subprocess.Popen[bytes], port: int, t0: float, log: Path, timeout_s: float
) -> float:
    """Seconds from ``t0`` to the first 200 of /ready, polled every 20 ms."""
    while True:
        if process.poll() is not None:
            raise ServerError(f"server exited with {process.returncode}; {log}:\n{_tail(log)}")
        status, body = _ready(port)
        if status == 200:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout_s:
            raise ServerError(
                f"not ready after {timeout_s:.0f} s: /ready said {body[:400]} ({log})"
            )
        time.sleep(POLL_S)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s: only this process, never by name."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(
    argv: list[str],
    *,
    env: Mapping[str, str],
    port: int,
    log: Path,
    cwd: Path = ROOT,
    timeout_s: float = 120.0,
) -> Iterator[Server]:
    """Start ``argv`` (clock starts just before exec), wait for /ready, stop it afterwards."""
    with log.open("wb") as sink:
        t0 = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=sink, stderr=sink)
    try:
        ready_s = wait_ready(process, port, t0, log, timeout_s)
        yield Server(process=process, port=port, start_to_ready_s=ready_s, log=log)
    finally:
        stop(process)
