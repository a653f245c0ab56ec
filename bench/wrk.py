"""wrk as the load generator: one function per run, parsing its --latency report, with the
CPU time wrk itself used (on two shared cores the load generator takes a share the server
cannot have), and the scenarios the API benchmarks share."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
WAIT_S = 120.0  # a bounded run that has not exited by then has hung


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    """Latency percentiles (ms), throughput and failures of one wrk run, and wrk's own CPU
    seconds (user + system) over its wall seconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    rps: float
    requests: int
    failed: int
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def cpu_share(self, cores: int) -> float:
        """wrk's CPU seconds / wall seconds / cores: the part of the machine wrk used."""
        return self.cpu_s / self.wall_s / cores if self.wall_s else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Scenario:
    """One load shape: instances per request and open connections."""

    name: str
    batch: int
    connections: int


SINGLE_1C = Scenario("single_1c", 1, 1)
SINGLE_8C = Scenario("single_8c", 1, 8)
BATCH100_1C = Scenario("batch100_1c", 100, 1)
SCENARIOS = (SINGLE_1C, SINGLE_8C, BATCH100_1C)


def body_of(rows: Sequence[dict[str, Any]]) -> bytes:
    """A predict request's JSON body with ``rows`` as its instances."""
    return json.dumps({"instances": list(rows)}).encode()


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


@dataclass
class WrkRun:
    """A wrk process started by ``start_wrk``: its report goes to files, so ``finish_wrk``
    can reap it with ``os.wait4`` and read its own CPU time."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float


def start_wrk(
    url: str, *, body: bytes | None, connections: int, duration_s: float, script_dir: Path
) -> WrkRun:
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
    out, err = Path(f"{handle.name}.out"), Path(f"{handle.name}.err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    return WrkRun(process, out, err, started)


def finish_wrk(run: WrkRun) -> WrkResult:
    """Wait for a run started by ``start_wrk``, parse its report, add its CPU and wall time."""
    pid = run.process.pid
    deadline = time.monotonic() + WAIT_S
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            run.process.kill()
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.01)
    wall_s = time.perf_counter() - run.started
    run.process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if run.process.returncode != 0:
        err = run.err.read_text(errors="replace").strip()
        raise WrkError(f"wrk exited {run.process.returncode}: {err[:300]}")
    result = parse_report(run.out.read_text(errors="replace"))
    return replace(result, cpu_s=usage.ru_utime + usage.ru_stime, wall_s=wall_s)


def run_wrk(
    url: str, *, body: bytes | None, connections: int, duration_s: float, script_dir: Path
) -> WrkResult:
    """One bounded wrk run, waited for."""
    return finish_wrk(
        start_wrk(
            url, body=body, connections=connections, duration_s=duration_s, script_dir=script_dir
        )
    )


def run_scenario(
    url: str, body: bytes, scenario: Scenario, *, duration_s: float, warmup_s: float, work: Path
) -> WrkResult:
    """A warm-up run (when ``warmup_s``) at the scenario's concurrency, then the measured one."""
    if warmup_s:
        run_wrk(
            url, body=body, connections=scenario.connections, duration_s=warmup_s, script_dir=work
        )
    return run_wrk(
        url, body=body, connections=scenario.connections, duration_s=duration_s, script_dir=work
    )
