"""wrk as the load generator: one function per run, parsing its --latency report."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    """Latency percentiles (ms), throughput and failures of one wrk run."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    rps: float
    requests: int
    failed: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def require_wrk() -> str:
    """Path of the wrk binary, or a one-line reason to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: `apt-get install -y wrk` (or `make system-deps`)")
    return path


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise WrkError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_report(out: str) -> WrkResult:
    """WrkResult from wrk's stdout (with --latency)."""
    pct = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.M))
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (pct.keys() >= {"50", "99"} and latency and total and rps):
        raise WrkError(f"unreadable wrk report:\n{out}")
    failed = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        failed += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        failed += sum(int(x) for x in sockets.groups())
    return WrkResult(
        p50_ms=_to_ms(pct["50"]),
        p99_ms=_to_ms(pct["99"]),
        max_ms=_to_ms(latency.group(1)),
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        failed=failed,
    )


def _script(body: bytes | None) -> str:
    if body is None:
        return 'wrk.method = "GET"\n'
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )


def start_wrk(
    url: str, *, body: bytes | None, connections: int, duration_s: float, script_dir: Path
) -> subprocess.Popen[str]:
    """Start one bounded wrk run (POST ``body``, or GET when None) without waiting for it."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=script_dir, delete=False) as handle:
        handle.write(_script(body))
    threads = min(connections, 2)  # two cores: more wrk threads only steal from the server
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(duration_s, 1.0):.0f}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        handle.name,
        url,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(process: subprocess.Popen[str]) -> WrkResult:
    """Wait for a run started by ``start_wrk`` and parse its report."""
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise WrkError(f"wrk exited {process.returncode}: {err.strip()[:300]}")
    return parse_report(out)


def run_wrk(
    url: str, *, body: bytes | None, connections: int, duration_s: float, script_dir: Path
) -> WrkResult:
    """One bounded wrk run, waited for."""
    return finish_wrk(
        start_wrk(
            url, body=body, connections=connections, duration_s=duration_s, script_dir=script_dir
        )
    )
