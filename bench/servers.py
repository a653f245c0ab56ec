"""Start, time and stop the servers the benchmarks measure (127.0.0.1 only), and the rows
every API benchmark sends: real districts the served model accepts."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PREDICT = "/api/v1/predict"
POLL_S = 0.02  # /ready is polled every 20 ms
CLK_TCK = os.sysconf("SC_CLK_TCK")
UVICORN_FLAGS = [
    # The same uvicorn configuration as `python -m serve` (see serve/__main__.py); the
    # number of workers is given apart.
    "--host",
    "127.0.0.1",
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

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the server so far, its worker processes included."""
        return process_ticks(self.process.pid) / CLK_TCK

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
    return uvicorn_argv(factory, port, factory=True)


def uvicorn_argv(app: str, port: int, *, workers: int = 1, factory: bool = False) -> list[str]:
    """``app`` under uvicorn with `python -m serve`'s flags and ``workers`` processes."""
    return [
        *(sys.executable, "-m", "uvicorn", app, "--port", str(port)),
        *(["--factory"] if factory else []),
        *("--workers", str(workers)),
        *UVICORN_FLAGS,
    ]


def local_env(champion: Path, pem: str, port: int, work: Path, **settings: str) -> dict[str, str]:
    """The API's environment serving the signed champion directory ``champion`` (trusting
    ``pem``) on 127.0.0.1:``port``; ``settings`` (env names) override or add."""
    return pinned_env(
        {
            "MODEL_SOURCES": "local",
            "LOCAL_MODEL_DIR": str(champion),
            "HOUSING_VERIFY_KEYS": pem,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WANDB_DIR": str(work),
            **settings,
        }
    )


def registry_env(uri: str, pem: str, port: int, work: Path, **settings: str) -> dict[str, str]:
    """`make serve`'s configuration against the registry at ``uri``: only its champion can
    make the API ready (no local bundle, no GCS)."""
    env = pinned_env(
        {
            "MLFLOW_TRACKING_URI": uri,
            "HOUSING_VERIFY_KEYS": pem,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "LOCAL_MODEL_DIR": str(work / "no-local-bundle"),
            "WANDB_DIR": str(work),
            **settings,
        }
    )
    env.pop("MODEL_SOURCES", None)
    env.pop("GCS_BUCKET", None)
    return env


@contextmanager
def start_api(
    env: Mapping[str, str], work: Path, label: str, argv: Sequence[str] | None = None
) -> Iterator[Server]:
    """Our API (`python -m serve` unless ``argv``) on the port ``env`` names, until exit."""
    port = int(env["PORT"])
    command = list(argv) if argv is not None else serve_argv()
    with running(command, env=env, port=port, log=work / f"{label}-{port}.log") as server:
        yield server


def candidate_rows(model_dir: Path, data: Path, n: int) -> list[dict[str, Any]]:
    """``n`` real districts inside the served model's bounds (the API still has the last word)."""
    import pandas as pd

    from housing.contract import RAW_FEATURES

    features = json.loads((model_dir / "model.json").read_text())["contract"]["features"]
    frame = pd.read_csv(data)[list(RAW_FEATURES)]
    ok = frame["ocean_proximity"].isin(features["ocean_proximity"]["categories"])
    for name in RAW_FEATURES[:-1]:
        column, rule = frame[name], features[name]
        ok &= column.isna() | column.between(rule["min"], rule["max"])
        if not rule["nullable"]:
            ok &= column.notna()
    rows = frame[ok].sample(min(n, int(ok.sum())), random_state=0)
    return json.loads(rows.to_json(orient="records"))


def vet_rows(base_url: str, rows: list[dict[str, Any]], need: int) -> list[dict[str, Any]]:
    """Drop the rows the API refuses (cross-field rules), so every load answer is a 200."""
    import httpx

    kept = list(rows)
    for _ in range(20):
        answer = httpx.post(f"{base_url}{PREDICT}", json={"instances": kept[:need]}, timeout=60)
        if answer.status_code == 200:
            return kept[:need]
        fields = answer.json().get("error", {}).get("fields", []) if answer.content else []
        bad = {
            int(m.group(1)) for f in fields if (m := re.match(r"instances\[(\d+)\]", f["field"]))
        }
        if answer.status_code != 422 or not bad:
            raise SystemExit(
                f"the API refused the benchmark rows: {answer.status_code} {answer.text[:300]}"
            )
        kept = [row for i, row in enumerate(kept) if i not in bad]
    raise SystemExit("could not find enough rows the API accepts")


def stat_ticks(path: Path) -> int:
    """utime + stime of a /proc stat file, in clock ticks (0 once it is gone)."""
    try:
        fields = path.read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (uvicorn's workers, wandb-core), from /proc."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                kids = [int(x) for x in task.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def cpu_snapshot(pid: int) -> dict[str, Any]:
    """CPU ticks per thread of ``pid`` and in all of its descendant processes."""
    threads = {int(p.name): stat_ticks(p / "stat") for p in Path(f"/proc/{pid}/task").iterdir()}
    children = {kid: stat_ticks(Path(f"/proc/{kid}/stat")) for kid in descendants(pid)}
    return {"threads": threads, "children": children}


def process_ticks(pid: int) -> int:
    """CPU ticks of ``pid`` (every thread) and its descendant processes."""
    snap = cpu_snapshot(pid)
    return sum(snap["threads"].values()) + sum(snap["children"].values())


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


# What each worker logs once its model is swapped in (serve/model_store.py, ModelStore.swap).
_SERVING = re.compile(r"serving \S+ version \S+ from ")


def wait_every_worker_ready(
    port: int, workers: int, t0: float, log: Path, timeout_s: float
) -> float:
    """Seconds from ``t0`` until every worker has logged that it serves its model.

    Probing /ready cannot tell: the workers share one listening socket and the kernel hands
    a new connection to whichever accepts first, so many 200s in a row can all come from the
    worker that is ready while the other still answers 503 (wrk's first requests then failed).
    """
    while True:
        served = len(_SERVING.findall(log.read_text(errors="replace"))) if log.exists() else 0
        if served >= workers:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout_s:
            status, body = _ready(port)
            raise ServerError(
                f"{served} of {workers} workers serving after {timeout_s:.0f} s; /ready said "
                f"{status} {body[:400]} ({log})"
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
    workers: int = 1,
) -> Iterator[Server]:
    """Start ``argv`` (clock starts just before exec), wait for /ready (from every one of
    ``workers`` processes), stop it afterwards."""
    with log.open("wb") as sink:
        t0 = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=sink, stderr=sink)
    try:
        ready_s = wait_ready(process, port, t0, log, timeout_s)
        if workers > 1:
            ready_s = wait_every_worker_ready(port, workers, t0, log, timeout_s)
        yield Server(process=process, port=port, start_to_ready_s=ready_s, log=log)
    finally:
        stop(process)
