"""Where one `POST /api/v1/predict` spends its time (issue 25, item 1).

Serves the model exactly as `python -m serve` does (local signed champion, W&B offline,
drift gauges on: the shipped defaults), loads it with wrk (one instance per request, 1
connection by default), samples the server with py-spy (``record --nonblocking --threads``:
the process is never paused), and folds each sampled stack into one piece of the request
path: read, parse, validate, features, booster, interval, response, our middleware,
metrics, logs, feature log, prediction log, the framework (Starlette/FastAPI) and the
server (uvicorn, httptools, uvloop). Shares become microseconds with the CPU time each
thread used over the same window (``/proc/<pid>/task/<tid>/stat``) divided by the requests
the API counted (its own `/metrics`), so the table reads "µs of CPU per request".

A second wrk run of the same length without the profiler gives the throughput py-spy
costs; compare pieces within one run (shares), not absolute figures across machines.

    python bench/request_profile.py [--model-dir models] [--duration 20] [--rate 400]
    python bench/request_profile.py --fold RAW --cpu JSON   # re-fold a kept profile
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/request_profile.py` puts bench/ first
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.report import cpu_model, git_commit  # noqa: E402
from bench.servers import (  # noqa: E402
    CLK_TCK,
    PREDICT,
    Server,
    candidate_rows,
    cpu_snapshot,
    free_port,
    local_env,
    process_ticks,
    start_api,
    vet_rows,
)
from bench.wrk import (  # noqa: E402
    WrkError,
    body_of,
    finish_wrk,
    require_wrk,
    run_wrk,
    start_wrk,
)

logger = logging.getLogger("bench.request_profile")

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")

# A stack's piece: the first rule (in this order) with a frame that matches it. Specific
# pieces come first, so a log line written from the middleware counts as "logs", and the
# booster call made by the interval counts as "interval".
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("feature log", ("serve/feature_log.py",)),
    ("prediction log (W&B)", ("serve/prediction_log.py",)),
    ("metrics", ("serve/metrics.py", "prometheus_client/")),
    ("logs: W&B stderr hook", ("wandb/sdk/lib/console_capture.py",)),
    ("logs", ("serve/logs.py", "logging/__init__.py")),
    ("interval", ("housing/intervals.py",)),
    ("features", ("ServingModel.features", "housing/serving/transforms.py")),
    ("features", ("housing/serving/neighbors.py",)),
    ("booster", ("ServingModel.predict", "housing/serving/lgbm.py")),
    ("validate", ("serve/validation.py", "housing/contract.py")),
    ("parse", ("serve/body.py",)),
    ("read", ("Request.body", "Request.stream")),
    ("response", ("serve/responses.py", "orjson")),
)
# Otherwise the deepest frame from one of these decides (self time of that layer).
LAYERS: tuple[tuple[str, str], ...] = (
    ("serve/middleware.py", "middleware (ours)"),
    ("serve/routes/", "response"),  # the handler's own lines: rounding, the answer dict
    ("serve/", "response"),
    ("starlette/", "framework (Starlette, FastAPI)"),
    ("fastapi/", "framework (Starlette, FastAPI)"),
    ("uvicorn/", "server (uvicorn, httptools, socket I/O)"),
    ("granian", "server (granian)"),
    ("contextlib.py", "framework (Starlette, FastAPI)"),  # FastAPI's AsyncExitStacks
    ("asyncio/", "server (event loop, in C)"),
)
TORN = "torn samples (no root frame)"
ORDER = (
    "read",
    "parse",
    "validate",
    "features",
    "booster",
    "interval",
    "response",
    "middleware (ours)",
    "metrics",
    "logs",
    "logs: W&B stderr hook",
    "feature log",
    "prediction log (W&B)",
    "framework (Starlette, FastAPI)",
    "server (uvicorn, httptools, socket I/O)",
    "server (event loop, in C)",
    "other",
    TORN,
)


# --- folding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    tid: int
    thread: str
    frames: tuple[str, ...]  # "func (file)" root first
    count: int


def parse_raw(text: str) -> list[Sample]:
    """py-spy's ``--format raw --threads`` output (folded stacks, one per line)."""
    out = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        match = re.match(r"thread \((?:0x)?(\w+)\):?\s*(.*)", head)
        if match is None:
            continue
        tid = int(match.group(1), 16 if head.startswith("thread (0x") else 10)
        out.append(Sample(tid, match.group(2).strip() or "?", tuple(frames), int(count)))
    return out


def piece(frames: Sequence[str]) -> str:
    """The request-path piece one main-thread stack belongs to."""
    for name, needles in RULES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    for frame in reversed(frames):
        for needle, name in LAYERS:
            if needle in frame:
                return name
    if not frames or "<frozen runpy>" not in frames[0]:
        return TORN  # read while the interpreter changed it (--nonblocking): no root
    return "other"


def fold(samples: Sequence[Sample], main_tid: int) -> tuple[Counter[str], Counter[str]]:
    """Samples per piece on the event-loop thread, and per thread name elsewhere."""
    loop: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for sample in samples:
        if sample.tid == main_tid:
            loop[piece(sample.frames)] += sample.count
        else:
            threads[sample.thread] += sample.count
    return loop, threads


def table(loop: Counter[str], cpu: dict[str, Any]) -> str:
    """Markdown: per piece, samples, share of the loop thread and µs of CPU per request."""
    requests = cpu["requests"]
    loop_us = cpu["main_cpu_s"] / requests * 1e6
    total = sum(loop.values()) or 1
    rows = [
        "| piece | samples | share of the loop | µs/request |",
        "|---|---:|---:|---:|",
    ]
    for name in [*ORDER, *sorted(set(loop) - set(ORDER))]:
        if loop.get(name):
            share = loop[name] / total
            rows.append(f"| {name} | {loop[name]} | {share:.1%} | {share * loop_us:.0f} |")
    rows.append(f"| **event-loop thread, all** | {total} | 100% | **{loop_us:.0f}** |")
    for name, seconds in sorted(cpu["other_threads_cpu_s"].items()):
        rows.append(f"| off the loop: thread {name} | | | {seconds / requests * 1e6:.0f} |")
    if cpu.get("children_cpu_s"):
        rows.append(
            f"| off the loop: child processes (wandb-core) | | | "
            f"{cpu['children_cpu_s'] / requests * 1e6:.0f} |"
        )
    return "\n".join(rows)


# --- measuring --------------------------------------------------------------------------------


def predictions_served(base_url: str) -> float:
    """The API's own count of predict requests (every status) from /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    pattern = r'^http_requests_total\{[^}]*route="/api/v1/predict"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: `uv sync --all-extras` (it is a dev extra)")
    return found


@dataclass(frozen=True)
class Options:
    duration_s: float
    rate: int
    connections: int
    batch: int
    work: Path
    gil: bool = False


def profile_once(server: Server, body: bytes, opts: Options) -> dict[str, Any]:
    """wrk on the server; py-spy and the CPU counters over the same window inside it."""
    pid = server.process.pid
    url = f"{server.base_url}{PREDICT}"
    load = start_wrk(
        url,
        body=body,
        connections=opts.connections,
        duration_s=opts.duration_s + 3,
        script_dir=opts.work,
    )
    time.sleep(1.0)
    served0, cpu0 = predictions_served(server.base_url), cpu_snapshot(pid)
    raw = opts.work / "profile.raw"
    spy = subprocess.run(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(opts.rate),
            "--duration",
            str(int(opts.duration_s)),
            "--nonblocking",
            "--threads",
            *(["--gil"] if opts.gil else []),
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu1, served1 = cpu_snapshot(pid), predictions_served(server.base_url)
    wrk = finish_wrk(load)
    if spy.returncode != 0 or not raw.exists():
        raise SystemExit(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()[-600:]}")
    summary = re.search(r"Samples: (\d+) Errors: (\d+)", spy.stdout + spy.stderr)
    requests = served1 - served0
    threads = {
        tid: (cpu1["threads"].get(tid, 0) - ticks) / CLK_TCK
        for tid, ticks in cpu0["threads"].items()
    }
    children = sum(
        cpu1["children"].get(kid, ticks) - ticks for kid, ticks in cpu0["children"].items()
    )
    new_kids = set(cpu1["children"]) - set(cpu0["children"])
    children += sum(cpu1["children"][kid] for kid in new_kids)
    return {
        "raw": raw.read_text(),
        "wrk": wrk.to_dict(),
        "samples": int(summary.group(1)) if summary else None,
        "sample_errors": int(summary.group(2)) if summary else None,
        "cpu": {
            "requests": requests,
            "main_tid": pid,
            "main_cpu_s": threads.get(pid, 0.0),
            "threads_cpu_s": {str(k): v for k, v in threads.items()},
            "children_cpu_s": children / CLK_TCK,
        },
    }


def name_threads(cpu: dict[str, Any], samples: Sequence[Sample]) -> dict[str, Any]:
    """Off-loop CPU keyed by the Python thread names py-spy saw (else "tid N")."""
    names = {s.tid: s.thread for s in samples}
    other: Counter[str] = Counter()
    for tid, seconds in cpu["threads_cpu_s"].items():
        if int(tid) != cpu["main_tid"] and seconds > 0:
            other[names.get(int(tid), f"tid {tid}")] += seconds
    return {**cpu, "other_threads_cpu_s": dict(other)}


# What each switchable piece costs, measured by turning it off (settings only, same code).
ABLATIONS: dict[str, dict[str, str]] = {
    "as shipped": {},
    "no access log": {"ACCESS_LOG": "false"},
    "no drift gauges (so no feature-log thread)": {"DRIFT_WINDOW": "0"},
    "no W&B prediction log": {"WANDB_MODE": "disabled"},
    "none of the three": {"ACCESS_LOG": "false", "DRIFT_WINDOW": "0", "WANDB_MODE": "disabled"},
}


def ablate(servers: dict[str, Server], body: bytes, opts: Options, rounds: int) -> dict:
    """Interleaved wrk runs on every configuration: p50, req/s and server CPU per request."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for name in order:
            server = servers[name]
            url = f"{server.base_url}{PREDICT}"
            run_wrk(
                url, body=body, connections=opts.connections, duration_s=1, script_dir=opts.work
            )
            served0, ticks0 = predictions_served(server.base_url), process_ticks(server.process.pid)
            result = run_wrk(
                url,
                body=body,
                connections=opts.connections,
                duration_s=opts.duration_s,
                script_dir=opts.work,
            )
            ticks1, served1 = process_ticks(server.process.pid), predictions_served(server.base_url)
            runs[name].append(
                {
                    "p50_ms": result.p50_ms,
                    "rps": result.rps,
                    "cpu_us": (ticks1 - ticks0) / CLK_TCK / (served1 - served0) * 1e6,
                    "loadavg": os.getloadavg()[0],
                }
            )
            logger.info("round %d %-45s %s", r + 1, name, runs[name][-1])
    return runs


def ablation_table(runs: dict[str, list[dict[str, float]]]) -> str:
    """Medians per configuration and the median paired ratio to "as shipped"."""
    base = runs["as shipped"]
    rows = [
        "| configuration | server CPU µs/request | ratio | p50 ms | ratio | req/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():

        def med(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)

        def ratio(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] / b[key] for r, b in zip(results, base, strict=True))

        rows.append(
            f"| {name} | {med('cpu_us'):.0f} | {ratio('cpu_us'):.2f} | {med('p50_ms'):.2f} | "
            f"{ratio('p50_ms'):.2f} | {med('rps'):.0f} |"
        )
    return "\n".join(rows)


def run_ablation(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.registry_setup import signed_champion

    model_dir = args.model_dir.resolve()
    champion, pem = signed_champion(model_dir, work)
    opts = Options(args.duration, args.rate, args.connections, args.batch, work)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": cpu_model(),
        "loadavg_start": list(os.getloadavg()),
    }
    with ExitStack() as stack:
        servers = {}
        for name, extra in ABLATIONS.items():
            port = free_port()
            env = local_env(champion, pem, port, work, **{"WANDB_MODE": args.wandb_mode, **extra})
            servers[name] = stack.enter_context(start_api(env, work, "ablation"))
        rows = candidate_rows(model_dir, args.data, max(args.batch, 1) + 50)
        body = body_of(vet_rows(servers["as shipped"].base_url, rows, args.batch))
        for server in servers.values():  # past the prediction log's first flush (W&B import)
            run_wrk(
                f"{server.base_url}{PREDICT}",
                body=body,
                connections=1,
                duration_s=3,
                script_dir=work,
            )
        time.sleep(max(0.0, 11 - 3 * len(servers)))
        report["runs"] = ablate(servers, body, opts, args.rounds)
    report["loadavg_end"] = list(os.getloadavg())
    return report


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.registry_setup import signed_champion

    model_dir = args.model_dir.resolve()
    champion, pem = signed_champion(model_dir, work)
    port = free_port()
    env = local_env(champion, pem, port, work, **{"WANDB_MODE": args.wandb_mode, **dict(args.env)})
    opts = Options(args.duration, args.rate, args.connections, args.batch, work, args.gil)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": cpu_model(),
        "loadavg_start": list(os.getloadavg()),
        "options": {k: str(v) for k, v in vars(args).items()},
    }
    with start_api(env, work, "server") as server:
        rows = candidate_rows(model_dir, args.data, max(args.batch, 1) + 50)
        body = body_of(vet_rows(server.base_url, rows, args.batch))
        url = f"{server.base_url}{PREDICT}"
        # Warm up past the prediction log's first flush (W&B is imported then, and it hooks
        # stderr: a request before that does not pay for the hook).
        run_wrk(url, body=body, connections=opts.connections, duration_s=12, script_dir=work)
        report["wrk_without_profiler"] = run_wrk(
            url, body=body, connections=opts.connections, duration_s=args.duration, script_dir=work
        ).to_dict()
        profiled = profile_once(server, body, opts)
    report["loadavg_end"] = list(os.getloadavg())
    samples = parse_raw(profiled.pop("raw"))
    report |= profiled
    report["cpu"] = name_threads(report["cpu"], samples)
    loop, threads = fold(samples, report["cpu"]["main_tid"])
    report["loop_samples"] = dict(loop)
    report["thread_samples"] = dict(threads)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "profile.raw", args.keep / "profile.raw")
        (args.keep / "cpu.json").write_text(json.dumps(report["cpu"], indent=1))
    return report


def describe(report: dict[str, Any]) -> str:
    cpu = report["cpu"]
    bare, spied = report["wrk_without_profiler"], report["wrk"]
    lines = [
        f"{report['when']} commit {report['commit']}, {report['machine']}, "
        f"load average {report['loadavg_start'][0]:.2f} -> {report['loadavg_end'][0]:.2f}",
        f"wrk without the profiler: {bare['rps']:.0f} req/s, p50 {bare['p50_ms']:.2f} ms; "
        f"with it: {spied['rps']:.0f} req/s, p50 {spied['p50_ms']:.2f} ms",
        f"{cpu['requests']:.0f} requests profiled, {report['samples']} samples "
        f"({report['sample_errors']} unreadable), event-loop thread "
        f"{cpu['main_cpu_s']:.2f} s CPU",
        "",
        table(Counter(report["loop_samples"]), cpu),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    default_data = ROOT.parent / "shared" / "data" / "housing.csv"
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", default_data))
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds profiled")
    parser.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="instances per request")
    parser.add_argument("--wandb-mode", default="offline", choices=["offline", "disabled"])
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="KEY=VALUE",
        help="a setting for the profiled server (e.g. DRIFT_WINDOW=0); repeatable",
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="only samples holding the GIL (drops GIL waits, and C code that releases it)",
    )
    parser.add_argument("--keep", type=Path, help="keep profile.raw and cpu.json here")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/)")
    parser.add_argument(
        "--ablate", action="store_true", help="turn switchable pieces off instead of profiling"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (--ablate)")
    parser.add_argument("--fold", type=Path, help="re-fold a kept profile.raw (with --cpu)")
    parser.add_argument("--cpu", type=Path, help="the cpu.json kept beside it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    if args.fold:
        cpu = json.loads(args.cpu.read_text())
        loop, _ = fold(parse_raw(args.fold.read_text()), cpu["main_tid"])
        sys.stdout.write(table(loop, cpu) + "\n")
        return 0
    if not (args.model_dir / "model.json").is_file():
        raise SystemExit(f"no model bundle in {args.model_dir}; run the pipeline or --model-dir")
    try:
        require_wrk()
    except WrkError as exc:
        raise SystemExit(str(exc)) from None
    py_spy()
    work = Path(tempfile.mkdtemp(prefix="request-profile-"))
    if args.ablate:
        try:
            report = run_ablation(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        sys.stdout.write(
            f"{report['when']} commit {report['commit']}, {report['machine']}, load average "
            f"{report['loadavg_start'][0]:.2f} -> {report['loadavg_end'][0]:.2f}\n\n"
            + ablation_table(report["runs"])
            + "\n"
        )
        out = args.out or ROOT / "bench" / "results" / f"request_ablation-{int(time.time())}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
        return 0
    try:
        report = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or ROOT / "bench" / "results" / f"request_profile-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    sys.stdout.write(describe(report) + "\n")
    logger.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
