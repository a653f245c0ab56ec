"""Start-to-ready of `make serve`'s configuration: the registry's champion on SQLite.

Runs the API as `make serve` does (``MLFLOW_TRACKING_URI=sqlite:///mlflow.db python -m serve``,
from the repository, after the pipeline or `housing-registry` registered a champion), measures
from the process's exec to the first 200 of /ready (polled every 20 ms), then asks the process
which heavy modules it imported (GET /api/v1/model says which source answered). Repeats and
prints each run and the median. Only 127.0.0.1 receives traffic; the server is stopped by pid.

    python bench/registry_ready.py [--runs 5] [--make]   # --make: time `make serve` itself
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.02
TIMEOUT_S = 120.0
HEAVY = ("mlflow", "sklearn", "pandas", "skops", "scipy.optimize", "lightgbm")
TARGET_S = 2.5

logger = logging.getLogger("registry_ready")

_GUARD = """\
import json, os, runpy, signal, sys

def dump(*_):
    with open(os.environ["MODULES_OUT"], "w") as fh:
        json.dump(sorted(sys.modules), fh)
    sys.exit(0)

signal.signal(signal.SIGTERM, dump)
sys.path.insert(0, os.getcwd())
sys.argv = ["serve"]
runpy.run_module("serve", run_name="__main__")
dump()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU the server process used so far (Linux /proc; None elsewhere).

    On a loaded machine wall time says little; CPU time to ready is what a quiet one would see.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def one_run(work: Path, *, use_make: bool) -> dict:
    port = _free_port()
    modules_out = work / f"modules-{port}.json"
    guard = work / "guard.py"
    guard.write_text(_GUARD)
    env = {
        **os.environ,
        "PORT": str(port),
        "MODULES_OUT": str(modules_out),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if use_make:
        argv = ["make", "--no-print-directory", "serve"]
    else:
        env["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow.db"  # as the Makefile's serve target
        argv = [sys.executable, str(guard)]
    log = work / f"server-{port}.log"
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}; see {log}")
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/ready")
            except OSError:
                status = 0
            if status == 200:
                ready_s = time.perf_counter() - start
                cpu_s = _cpu_seconds(proc.pid)
                break
            if time.perf_counter() - start > TIMEOUT_S:
                raise SystemExit(f"not ready after {TIMEOUT_S:.0f} s; see {log}")
            time.sleep(POLL_S)
        info = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/model")[1])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    heavy: list[str] = []
    if modules_out.is_file():
        names = set(json.loads(modules_out.read_text()))
        heavy = [m for m in HEAVY if m in names]
    return {
        "ready_s": ready_s,
        "cpu_s": cpu_s,
        "source": info.get("source"),
        "source_detail": info.get("source_detail"),
        "version": info.get("version"),
        "heavy_modules": heavy if modules_out.is_file() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--make", action="store_true", help="time `make serve` itself")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (REPO / "mlflow.db").is_file():
        raise SystemExit("no mlflow.db here: run the pipeline (dvc repro) first")
    with tempfile.TemporaryDirectory(prefix="registry-ready-") as tmp:
        runs = [one_run(Path(tmp), use_make=args.make) for _ in range(args.runs)]
    for i, run in enumerate(runs, 1):
        logger.info(
            "run %d: ready in %.2f s (server CPU %s s), source %s, version %s, heavy modules %s",
            i,
            run["ready_s"],
            "n/a" if run["cpu_s"] is None else f"{run['cpu_s']:.2f}",
            run["source_detail"] or run["source"],
            run["version"],
            run["heavy_modules"],
        )
    median = statistics.median(r["ready_s"] for r in runs)
    verdict = "met" if median <= TARGET_S else "MISSED"
    logger.info("load average at the end: %s", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    logger.info(
        "start to ready (%s): median %.2f s over %d runs, min %.2f, max %.2f; target <= %.1f s %s",
        "make serve" if args.make else "python -m serve, MLFLOW_TRACKING_URI=sqlite:///mlflow.db",
        median,
        len(runs),
        min(r["ready_s"] for r in runs),
        max(r["ready_s"] for r in runs),
        TARGET_S,
        verdict,
    )


if __name__ == "__main__":
    main()
