"""The API under uvicorn and under granian, measured side by side (issue 25, item 4).

Both servers run the same app (`serve.main:app`, the local signed champion, W&B offline,
everything else as shipped), one worker each on 127.0.0.1: uvicorn exactly as `python -m
serve` starts it (uvloop, httptools), granian with ``--interface asgi --loop uvloop
--http 1 --no-ws``. Both stay up for the whole run and the wrk scenarios of
bench/serve_load.py (one instance at 1 and at 8 connections, 100-instance batches at 1)
are interleaved: each round measures every scenario on both servers, the order swapped
from round to round, so a change in the machine's load falls on both. Prints each
figure's median over the rounds and the median of the paired ratios granian / uvicorn.

Then checks what the project needs from its server, on each: lifespan start-up and
shutdown, the access log (our middleware's line with the request id), the 413 that reaches
a client writing its whole body first (the lingering close), and the SIGTERM drain
(/ready 503 during the grace period, a new request and an in-flight one still served).

    python bench/asgi_servers.py [--model-dir models] [--rounds 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/asgi_servers.py` puts bench/, not the root, first
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.report import cpu_model, git_commit  # noqa: E402
from bench.servers import (  # noqa: E402
    PREDICT,
    Server,
    candidate_rows,
    free_port,
    local_env,
    serve_argv,
    start_api,
    vet_rows,
)
from bench.wrk import SCENARIOS, WrkError, body_of, require_wrk, run_scenario  # noqa: E402

logger = logging.getLogger("bench.asgi_servers")

SERVERS = ("uvicorn", "granian")
LIMIT = 1_048_576  # MAX_BODY_BYTES for the checks
GRACE_S = 1.5


def granian_argv(port: int) -> list[str]:
    """Granian on the same terms as our uvicorn: one worker, uvloop, HTTP/1.1, no access log
    of its own (the middleware writes one line per request)."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "serve.main:app",
    ]


def argv_for(name: str, port: int) -> list[str]:
    return serve_argv() if name == "uvicorn" else granian_argv(port)


@contextmanager
def start(name: str, champion: Path, pem: str, work: Path, **extra: str) -> Iterator[Server]:
    port = free_port()
    env = local_env(champion, pem, port, work, WANDB_MODE="offline", **extra)
    with start_api(env, work, name, argv_for(name, port)) as server:
        yield server


# --- load ----------------------------------------------------------------------------------


def measure(
    servers: dict[str, Server], bodies: dict[int, bytes], rounds: int, duration: float, work: Path
) -> dict[str, Any]:
    """Every scenario on every server, ``rounds`` times, interleaved (order swapped each round)."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {s.name: [] for s in SCENARIOS} for name in servers
    }
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for scenario in SCENARIOS:
            for name in order:
                url = f"{servers[name].base_url}{PREDICT}"
                body = bodies[scenario.batch]
                result = run_scenario(
                    url, body, scenario, duration_s=duration, warmup_s=1, work=work
                ).to_dict()
                result["loadavg"] = os.getloadavg()[0]
                runs[name][scenario.name].append(result)
                logger.info(
                    "round %d %-12s %-8s p50 %6.2f ms p99 %6.2f ms %7.0f req/s "
                    "failed %d (load %.2f)",
                    r + 1,
                    scenario.name,
                    name,
                    result["p50_ms"],
                    result["p99_ms"],
                    result["rps"],
                    result["failed"],
                    result["loadavg"],
                )
    return runs


FIGURES = (
    ("single_1c", "p50_ms", "single, 1 conn, p50 (ms)"),
    ("single_1c", "p99_ms", "single, 1 conn, p99 (ms)"),
    ("single_8c", "rps", "single, 8 conn, req/s"),
    ("single_8c", "p99_ms", "single, 8 conn, p99 (ms)"),
    ("batch100_1c", "p50_ms", "100-instance batch, 1 conn, p50 (ms)"),
)


def summary(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """Per figure: each server's median over the rounds, and the median paired ratio."""
    out = []
    for scenario, key, label in FIGURES:
        a = [r[key] for r in runs["uvicorn"][scenario]]
        b = [r[key] for r in runs["granian"][scenario]]
        ratios = [y / x for x, y in zip(a, b, strict=True) if x]
        out.append(
            {
                "figure": label,
                "uvicorn": statistics.median(a),
                "granian": statistics.median(b),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
            }
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | uvicorn | granian | granian / uvicorn (median of paired ratios) |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        spread = f"{min(row['ratios']):.2f} to {max(row['ratios']):.2f}"
        lines.append(
            f"| {row['figure']} | {row['uvicorn']:.2f} | {row['granian']:.2f} | "
            f"{row['ratio']:.2f} ({spread}) |"
        )
    return "\n".join(lines)


# --- what the project needs from its server ----------------------------------------------


def check_access_log(server: Server, body: bytes) -> str:
    rid = f"asgi-check-{time.time_ns()}"
    answer = httpx.post(
        f"{server.base_url}{PREDICT}",
        content=body,
        headers={"Content-Type": "application/json", "X-Request-ID": rid},
        timeout=30,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in server.log.read_text(errors="replace").splitlines():
            if rid in line and '"route":"/api/v1/predict"' in line:
                echoed = answer.headers.get("x-request-id") == rid
                return "ok" if echoed else "line logged but X-Request-ID not echoed"
        time.sleep(0.1)
    return "no access line with the request id"


def _post_oversized(port: int, body: bytes, chunked: bool) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    try:
        if chunked:
            step = 256 * 1024
            parts = (body[i : i + step] for i in range(0, len(body), step))
            conn.request("POST", PREDICT, body=parts, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", PREDICT, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()
    return str(response.status)


def check_413(server: Server) -> str:
    """http.client writes the whole body before reading: 5 MB, plain and chunked."""
    body = b'{"instances": [' + b" " * (5 * LIMIT) + b"]}"
    got = [_post_oversized(server.port, body, chunked) for chunked in (False,) * 10 + (True,) * 5]
    bad = [g for g in got if g != "413"]
    return "ok (15 of 15)" if not bad else f"{len(got) - len(bad)} of {len(got)} got 413; {bad}"


def check_drain(server: Server, body: bytes) -> str:
    """SIGTERM with a request in flight: /ready 503 in the grace period, a new request and the
    in-flight one served, the listener closed, the lifespan's shutdown logged."""
    problems = []
    inflight = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    inflight.sendall(
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:20]
    )
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    ready = None
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{server.base_url}/ready", timeout=2).status_code
        except httpx.HTTPError as exc:
            ready = type(exc).__name__
        if ready != 200:
            break
        time.sleep(0.05)
    if ready != 503:
        problems.append(f"/ready said {ready} after SIGTERM (want 503)")
    try:
        served = httpx.post(
            f"{server.base_url}{PREDICT}",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        ).status_code
    except httpx.HTTPError as exc:
        served = type(exc).__name__
    if served != 200:
        problems.append(f"a new request in the grace period got {served}")
    time.sleep(GRACE_S + 0.5)
    try:
        inflight.sendall(body[20:])
        head = inflight.recv(65536)
        status = head.split(b" ", 2)[1].decode() if head else "connection closed"
    except OSError as exc:
        status = type(exc).__name__
    inflight.close()
    if status != "200":
        problems.append(f"the in-flight request got {status}")
    try:
        server.process.wait(30)
    except Exception:
        problems.append("did not exit within 30 s")
    logs = server.log.read_text(errors="replace")
    if "SIGTERM: readiness off" not in logs:
        problems.append("the app's SIGTERM handler never ran")
    if "API stopped" not in logs:
        problems.append("no lifespan shutdown")
    return "ok" if not problems else "; ".join(problems)


def checks(name: str, champion: Path, pem: str, work: Path, body: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    env = {"MAX_BODY_BYTES": str(LIMIT), "SHUTDOWN_GRACE_S": str(GRACE_S)}
    with start(name, champion, pem, work, **env) as server:
        out["lifespan start-up (model loaded, /ready 200)"] = "ok"
        out["access log with request id"] = check_access_log(server, body)
        out["413 to a client writing its whole body first"] = check_413(server)
        out["SIGTERM drain"] = check_drain(server, body)
    return out


# --- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.registry_setup import signed_champion

    model_dir = args.model_dir.resolve()
    champion, pem = signed_champion(model_dir, work)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": cpu_model(),
        "loadavg_start": list(os.getloadavg()),
        "rounds": args.rounds,
        "duration_s": args.duration,
    }
    with ExitStack() as stack:
        servers = {name: stack.enter_context(start(name, champion, pem, work)) for name in SERVERS}
        rows = candidate_rows(model_dir, args.data, 150)
        rows = vet_rows(servers["uvicorn"].base_url, rows, 100)
        bodies = {1: body_of(rows[:1]), 100: body_of(rows[:100])}
        if args.rounds:
            report["runs"] = measure(servers, bodies, args.rounds, args.duration, work)
    report["loadavg_end"] = list(os.getloadavg())
    if args.rounds:
        report["summary"] = summary(report["runs"])
    if not args.skip_checks:
        report["checks"] = {name: checks(name, champion, pem, work, bodies[1]) for name in SERVERS}
    return report


def describe(report: dict[str, Any]) -> str:
    lines = [
        f"{report['when']} commit {report['commit']}, {report['machine']}, "
        f"{report['rounds']} rounds of {report['duration_s']:g} s, load average "
        f"{report['loadavg_start'][0]:.2f} -> {report['loadavg_end'][0]:.2f}",
    ]
    if "summary" in report:
        lines += ["", markdown(report["summary"])]
    for name, found in report.get("checks", {}).items():
        lines += ["", f"{name}:"] + [f"- {what}: {verdict}" for what, verdict in found.items()]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    default_data = ROOT.parent / "shared" / "data" / "housing.csv"
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", default_data))
    )
    parser.add_argument("--rounds", type=int, default=5, help="0: the checks only")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--skip-checks", action="store_true")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    if not (args.model_dir / "model.json").is_file():
        raise SystemExit(f"no model bundle in {args.model_dir}; run the pipeline or --model-dir")
    try:
        require_wrk()
    except WrkError as exc:
        raise SystemExit(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="asgi-servers-") as tmp:
        report = run(args, Path(tmp))
    out = args.out or ROOT / "bench" / "results" / f"asgi_servers-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    sys.stdout.write(describe(report) + "\n")
    logger.info("wrote %s", out)
    failed = {
        f"{name}/{s}": sum(r["failed"] for r in rs)
        for name, by in report.get("runs", {}).items()
        for s, rs in by.items()
    }
    return 1 if any(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
