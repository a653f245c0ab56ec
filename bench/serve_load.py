"""Load benchmark of the prediction API against the original design's serving path.

Starts `python -m serve` (uvicorn, one worker, uvloop/httptools) on 127.0.0.1 with the local
bundle, measures start-to-ready, then p50/p99 latency and throughput for: one instance at 1
connection, one instance at 8 connections, 100-instance batches at 1 connection. The same
load then runs against the baseline (pandas DataFrame per request → ColumnTransformer →
RandomForest(100 trees), fitted here on the data mirror) served by a minimal FastAPI app
(`make_baseline_app` below, run by uvicorn with --factory).
Prints a table with ratios and writes JSON to bench/results/.

    python bench/serve_load.py [--model-dir models] [--duration 10] [--client auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from housing.contract import RAW_FEATURES

ROOT = Path(__file__).resolve().parents[1]
RAW = list(RAW_FEATURES)
TARGETS = {
    "single_1c": {"p50_ms": 2.0, "p99_ms": 10.0},
    "single_8c": {"rps": 800.0, "p99_ms": 50.0},
    "batch100_1c": {"p50_ms": 15.0},
    "start_to_ready_s": 5.0,
}
SCENARIOS = [("single_1c", 1, 1), ("single_8c", 1, 8), ("batch100_1c", 100, 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def thread_env() -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def start_server(
    argv: list[str], env: dict[str, str], port: int, log: Path, timeout: float = 300.0
) -> tuple[subprocess.Popen, float]:
    """Start a server; return it and the seconds from process start to the first 200 /ready."""
    import httpx

    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/ready"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise SystemExit(f"server not ready after {timeout:.0f} s; see {log}")
        time.sleep(0.02)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load generators ------------------------------------------------------------------


def run_wrk(port: int, body: bytes, connections: int, duration: float) -> dict[str, float]:
    """wrk with a POST script; latency percentiles from --latency."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
        script = fh.name
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:.0f}s",
            "--latency",
            "-s",
            script,
            f"http://127.0.0.1:{port}/api/v1/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script).unlink()

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    pct = dict(re.findall(r"^\s+(50|99)\.000%\s+(\S+)", out, re.M))
    if not pct:
        pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors.group(1)) if errors else 0
    if sock_err:
        failed += sum(int(x) for x in sock_err.groups())
    return {
        "p50_ms": ms(pct["50"]),
        "p99_ms": ms(pct["99"]),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": total,
        "failed": failed,
    }


async def _connection(
    port: int, request: bytes, stop_at: float, lat: list[float], failed: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                failed.append(1)
    finally:
        writer.close()


def run_python(port: int, body: bytes, connections: int, duration: float) -> dict[str, float]:
    """A closed-loop keep-alive client on raw asyncio streams (low overhead)."""
    request = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    lat: list[float] = []
    failed: list[int] = []

    async def main() -> float:
        start = time.perf_counter()
        stop_at = start + duration
        await asyncio.gather(
            *(_connection(port, request, stop_at, lat, failed) for _ in range(connections))
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    arr = np.array(lat) * 1000
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "rps": len(lat) / elapsed,
        "requests": len(lat),
        "failed": len(failed),
    }


# --- baseline -------------------------------------------------------------------------


def fit_baseline(data: Path, dest: Path) -> float:
    """Fit the original design's pipeline on the mirror; return the fit time in seconds."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(data)
    numeric = RAW[:-1]
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
        ]
    )
    model = Pipeline(
        [("pre", pre), ("rf", RandomForestRegressor(n_estimators=100, random_state=42, n_jobs=1))]
    )
    t0 = time.perf_counter()
    model.fit(frame[RAW], frame["median_house_value"])
    fit_s = time.perf_counter() - t0
    with dest.open("wb") as fh:
        pickle.dump(model, fh)
    return fit_s


class Instance(BaseModel):
    longitude: float
    latitude: float
    housing_median_age: float
    total_rooms: float
    total_bedrooms: float | None = None
    population: float
    households: float
    median_income: float
    ocean_proximity: str


class PredictRequest(BaseModel):
    instances: list[Instance]


def make_baseline_app() -> Any:
    """The original design's API: pydantic body → DataFrame → pipeline.predict (sync route)."""
    from fastapi import FastAPI

    with Path(os.environ["BASELINE_MODEL"]).open("rb") as fh:
        model = pickle.load(fh)  # our own file, written by fit_baseline above

    app = FastAPI()

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/api/v1/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        frame = pd.DataFrame([i.model_dump() for i in body.instances], columns=RAW)
        return {"predictions": [{"predicted_price": float(p)} for p in model.predict(frame)]}

    return app


# --- main -----------------------------------------------------------------------------


def request_rows(model_dir: Path, data: Path, n: int) -> list[dict[str, Any]]:
    """``n`` real districts inside the served model's contract (so every answer is a 200)."""
    contract = json.loads((model_dir / "model.json").read_text())["contract"]["features"]
    frame = pd.read_csv(data)[RAW]
    ok = frame["ocean_proximity"].str.upper().isin(contract["ocean_proximity"]["categories"])
    for name in RAW[:-1]:
        col = frame[name]
        ok &= col.isna() | col.between(contract[name]["min"], contract[name]["max"])
        if not contract[name]["nullable"]:
            ok &= col.notna()
    rows = frame[ok].sample(n, random_state=0)
    return json.loads(rows.to_json(orient="records"))


def measure(port: int, client: str, rows: list[dict], duration: float) -> dict[str, Any]:
    runner = run_wrk if client == "wrk" else run_python
    results = {}
    for name, batch, conns in SCENARIOS:
        body = json.dumps({"instances": rows[:batch]}).encode()
        runner(port, body, conns, min(2.0, duration))  # warm-up
        results[name] = runner(port, body, conns, duration)
        print(
            f"  {name:12s} p50 {results[name]['p50_ms']:8.2f} ms  p99 "
            f"{results[name]['p99_ms']:8.2f} ms  {results[name]['rps']:8.1f} req/s  "
            f"failed {results[name]['failed']}",
            flush=True,
        )
    return results


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(
            os.environ.get("HOUSING_DATA_MIRROR", ROOT.parent / "shared/data/housing.csv")
        ),
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (args.model_dir / "model.skops").is_file():
        raise SystemExit(f"no bundle in {args.model_dir}; run the pipeline or pass --model-dir")
    if not args.data.is_file():
        raise SystemExit(f"data mirror not found at {args.data}; pass --data")
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"

    rows = request_rows(args.model_dir, args.data, 100)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "python": sys.version.split()[0],
            "loadavg_start": os.getloadavg(),
        },
        "client": client,
        "duration_s": args.duration,
        "model": {
            k: v
            for k, v in json.loads((args.model_dir / "model.json").read_text()).items()
            if k in {"name", "sha256", "spec"}
        },
    }

    port = free_port()
    env = thread_env() | {
        "MODEL_SOURCES": "local",
        "LOCAL_MODEL_DIR": str(args.model_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WANDB_MODE": "disabled",
        "RELOAD_INTERVAL_S": "0",
    }
    print(f"API: python -m serve on 127.0.0.1:{port} ({client} client)", flush=True)
    proc, ready_s = start_server([sys.executable, "-m", "serve"], env, port, work / "api.log")
    print(f"  start to ready {ready_s:.2f} s", flush=True)
    try:
        report["ours"] = measure(port, client, rows, args.duration)
    finally:
        stop_server(proc)
    report["ours"]["start_to_ready_s"] = ready_s

    if not args.skip_baseline:
        print("baseline: fitting ColumnTransformer → RandomForest(100) on the mirror", flush=True)
        pkl = work / "baseline.pkl"
        report["baseline_fit_s"] = fit_baseline(args.data, pkl)
        port = free_port()
        env = thread_env() | {"BASELINE_MODEL": str(pkl)}
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.serve_load:make_baseline_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
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
        print(
            f"baseline: uvicorn bench.serve_load:make_baseline_app on 127.0.0.1:{port}", flush=True
        )
        proc, ready_s = start_server(argv, env, port, work / "baseline.log")
        try:
            report["baseline"] = measure(port, client, rows, args.duration)
        finally:
            stop_server(proc)
        report["baseline"]["start_to_ready_s"] = ready_s

    report["machine"]["loadavg_end"] = os.getloadavg()
    print_table(report)
    out = args.out or ROOT / "bench" / "results" / f"serve_load-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    failed = {
        f"{side}/{name}": report[side][name]["failed"]
        for side in ("ours", "baseline")
        if side in report
        for name, *_ in SCENARIOS
        if report[side][name]["failed"]
    }
    if failed:
        raise SystemExit(f"non-200 answers during the load: {failed}")


def print_table(report: dict[str, Any]) -> None:
    ours, base = report["ours"], report.get("baseline")
    m = report["machine"]
    print(f"\n{m['nproc']} cores, {m['cpu']}, Python {m['python']}, client {report['client']}")
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_start"])
    print(f"load average before the run: {load} (other processes share these cores)")
    print(
        f"{'scenario':14s} {'metric':8s} {'ours':>10s} {'baseline':>10s} {'ratio':>8s} "
        f"{'target':>10s}  ok"
    )
    for name, *_ in SCENARIOS:
        for metric in ("p50_ms", "p99_ms", "rps"):
            mine = ours[name][metric]
            theirs = base[name][metric] if base else float("nan")
            ratio = (theirs / mine if metric != "rps" else mine / theirs) if base else float("nan")
            target = TARGETS[name].get(metric)
            ok = (
                ""
                if target is None
                else ("yes" if (mine >= target if metric == "rps" else mine <= target) else "NO")
            )
            tgt = (
                "" if target is None else (f">={target:g}" if metric == "rps" else f"<={target:g}")
            )
            print(
                f"{name:14s} {metric:8s} {mine:10.2f} {theirs:10.2f} {ratio:7.1f}x {tgt:>10s}  {ok}"
            )
    t = ours["start_to_ready_s"]
    tb = base["start_to_ready_s"] if base else float("nan")
    ok = "yes" if t <= TARGETS["start_to_ready_s"] else "NO"
    print(f"{'start→ready':14s} {'s':8s} {t:10.2f} {tb:10.2f} {'':>8s} {'<=5':>10s}  {ok}")


if __name__ == "__main__":
    main()
