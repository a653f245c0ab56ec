"""Load benchmark of the prediction API against issue 25's targets (item 2), in one run.

One uvicorn worker each unless said, 127.0.0.1 only, wrk for every latency figure:

- ours, as shipped: `python -m serve` on a signed local champion carrying the compiled
  predictor when this machine can compile (else LightGBM scores: /api/v1/model says which),
  the feature log on, the shadow off, W&B prediction logging off (the image leaves wandb
  out unless built with WITH_WANDB=1);
- (a) the stack floor: FastAPI + our request schema and response model answering a
  constant, importing the same web stack (bench/apps.py);
- (b) the model's own time: the champion's ``housing.serving`` path in this process
  (whole path and the booster alone, median after warm-up, 1 and 100 rows);
- ours under `uvicorn --workers 2` at 8 connections, with wrk's own CPU share of the cores;
- `make serve`'s configuration (registry on SQLite) and, beside ours, the same with the
  shadow challenger on (SHADOW=true, a held signed challenger in that registry);
- start to ready of ours, the floor and `make serve` (median of interleaved starts) and
  what each start imports (``-X importtime``, a start of its own).

Prints a markdown table with ratios to the floors, PASS/MISS per target and, per MISS, by
how much and a cause line; writes JSON to bench/results/.

    python bench/serve_load.py [--model-dir models] [--duration 5] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/serve_load.py` puts bench/, not the root, first
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.model_time import model_time_or_reason  # noqa: E402
from bench.report import (  # noqa: E402
    cpu_model,
    evaluate,
    git_commit,
    import_summary,
    markdown,
    write_json,
)
from bench.servers import (  # noqa: E402
    PREDICT,
    Server,
    ServerError,
    candidate_rows,
    free_port,
    local_env,
    pinned_env,
    registry_env,
    running,
    serve_argv,
    uvicorn_argv,
    uvicorn_factory_argv,
    vet_rows,
)
from bench.wrk import (  # noqa: E402
    BATCH100_1C,
    SCENARIOS,
    SINGLE_1C,
    SINGLE_8C,
    Scenario,
    WrkError,
    body_of,
    require_wrk,
    run_wrk,
)

# model_time.py and shadow_latency.py import these from here.
__all__ = ["candidate_rows", "cpu_model", "main", "vet_rows"]

logger = logging.getLogger("bench.serve_load")

FLOOR_FACTORY = "bench.apps:make_floor_app"
AS_SHIPPED = {"WANDB_MODE": "disabled", "SHADOW": "false"}  # + FEATURE_LOG_DIR per server
# Not measured, only waited for: the API's drain after SIGTERM (5 s as shipped) would add
# seconds to every stop.
QUICK_STOP = {"SHUTDOWN_GRACE_S": "0"}


@dataclass(frozen=True)
class RunConfig:
    """What one run measures and for how long."""

    model_dir: Path
    data: Path
    work: Path
    duration_s: float
    warmup_s: float
    repeats: int
    start_rounds: int
    with_registry: bool
    with_skops: bool


# --- inputs ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    default_data = ROOT.parent / "shared" / "data" / "housing.csv"
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", default_data))
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--starts", type=int, default=3, help="timed starts of each server")
    parser.add_argument("--quick", action="store_true", help="1 s runs: proves the harness")
    parser.add_argument(
        "--skip-registry", action="store_true", help="no `make serve` start, no shadow figures"
    )
    parser.add_argument(
        "--skops", action="store_true", help="also (c) the skops pipeline (slow to start)"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (bench/results/)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace, work: Path) -> RunConfig:
    if not (args.model_dir / "model.json").is_file():
        raise SystemExit(f"no model bundle in {args.model_dir}; run the pipeline or --model-dir")
    if not args.data.is_file():
        raise SystemExit(f"data mirror not found at {args.data}; set HOUSING_DATA_MIRROR or --data")
    return RunConfig(
        model_dir=args.model_dir.resolve(),
        data=args.data,
        work=work,
        duration_s=1.0 if args.quick else args.duration,
        warmup_s=0.0 if args.quick else 2.0,
        repeats=50 if args.quick else 2000,
        start_rounds=1 if args.quick else max(args.starts, 1),
        with_registry=not args.skip_registry,
        with_skops=args.skops,
    )


# --- the champions -------------------------------------------------------------------------


def local_champion(model_dir: Path, work: Path) -> tuple[Path, str]:
    """``model_dir`` promoted and signed as a champion directory, with ``compiled/`` when the
    bundle has one or this machine can compile it: (the directory, the public PEM)."""
    from bench.registry_setup import signed_champion

    start = time.perf_counter()
    dest, pem = signed_champion(model_dir, work)
    logger.info(
        "local champion in %.1f s, %s",
        time.perf_counter() - start,
        "compiled predictor included" if (dest / "compiled").is_dir() else "no compiled predictor",
    )
    return dest, pem


def registry(cfg: RunConfig, rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """A SQLite registry: the bundle as champion v1 and, held, as signed challenger v2."""
    import pandas as pd

    from bench.shadow_latency import registry_with_challenger

    root = cfg.work / "registry"
    root.mkdir()
    start = time.perf_counter()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Promotions here compile the booster, as by default, whatever the shell says.
    with mock.patch.dict(os.environ, {"HOUSING_COMPILE_PREDICTOR": "1"}):
        uri, pem = registry_with_challenger(cfg.model_dir, root, pd.DataFrame(rows[:3]))
    logger.info("registry with champion and challenger in %.1f s", time.perf_counter() - start)
    return uri, pem


# --- the servers ---------------------------------------------------------------------------

# A server to start: port -> (argv, env)
Launch = Callable[[int], tuple[list[str], dict[str, str]]]


def launches(cfg: RunConfig, champion: Path, pem: str, reg: tuple[str, str] | None) -> dict:
    """How to start each server this run measures, by label."""
    work = cfg.work

    def shipped(label: str) -> dict[str, str]:
        return {**AS_SHIPPED, **QUICK_STOP, "FEATURE_LOG_DIR": str(work / f"features-{label}")}

    out: dict[str, Launch] = {
        "floor": lambda port: (uvicorn_factory_argv(FLOOR_FACTORY, port), pinned_env({})),
        "ours": lambda port: (
            serve_argv(),
            local_env(champion, pem, port, work, **shipped("ours")),
        ),
        "ours_2w": lambda port: (
            uvicorn_argv("serve.main:app", port, workers=2),
            local_env(champion, pem, port, work, **shipped("ours_2w")),
        ),
    }
    if reg is not None:
        uri, reg_pem = reg
        state = str(work / "replay-state")
        out["make_serve"] = lambda port: (
            serve_argv(),
            registry_env(uri, reg_pem, port, work, REPLAY_STATE_DIR=state, **shipped("make")),
        )
        out["shadow"] = lambda port: (
            serve_argv(),
            registry_env(uri, reg_pem, port, work, **{**shipped("shadow"), "SHADOW": "true"}),
        )
    if cfg.with_skops:
        out["skops"] = lambda port: (
            uvicorn_factory_argv("bench.apps:make_skops_app", port),
            pinned_env({"BENCH_MODEL_DIR": str(cfg.model_dir)}),
        )
    return out


WORKERS = {"ours_2w": 2}  # uvicorn processes per label (else 1)


@contextmanager
def start(label: str, launch: Launch, work: Path, **extra_env: str) -> Iterator[Server]:
    port = free_port()
    argv, env = launch(port)
    log = work / f"{label}-{port}.log"
    workers = WORKERS.get(label, 1)
    with running(argv, env={**env, **extra_env}, port=port, log=log, workers=workers) as s:
        yield s


def time_starts(labels: Sequence[str], runs: dict[str, Launch], cfg: RunConfig) -> dict:
    """Seconds from exec to the first 200 /ready, ``start_rounds`` starts of each server,
    interleaved (the order turned each round) so a change of load falls on all; and what
    /api/v1/model said after each server's first start (the floor has none)."""
    samples: dict[str, list[float]] = {label: [] for label in labels}
    models: dict[str, dict[str, Any]] = {}
    for r in range(cfg.start_rounds):
        order = list(labels[r % len(labels) :]) + list(labels[: r % len(labels)])
        for label in order:
            with start(label, runs[label], cfg.work) as server:
                samples[label].append(server.start_to_ready_s)
                if label != "floor" and label not in models:
                    url = f"{server.base_url}/api/v1/model"
                    models[label] = httpx.get(url, timeout=30).json()
    for label, values in samples.items():
        logger.info("start to ready %-10s %s s", label, " ".join(f"{v:.2f}" for v in values))
    return {
        label: {
            "start_samples_s": values,
            "start_to_ready_s": statistics.median(values),
            **({"model": models[label]} if label in models else {}),
        }
        for label, values in samples.items()
    }


def import_times(labels: Sequence[str], runs: dict[str, Launch], cfg: RunConfig) -> dict:
    """What each server imports from exec to ready, from a start under -X importtime."""
    logs = {}
    for label in labels:
        with start(f"imports-{label}", runs[label], cfg.work, PYTHONPROFILEIMPORTTIME="1") as s:
            pass
        logs[label] = s.log.read_text(errors="replace")
    baseline = {"ours": "floor", "make_serve": "ours"}
    return {
        label: import_summary(text, logs.get(baseline.get(label, "")))
        for label, text in logs.items()
    }


def load(
    server: Server, rows: Sequence[dict[str, Any]], scenarios: Sequence[Scenario], cfg: RunConfig
) -> dict[str, Any]:
    """The scenarios against one server (a few sequential requests first, then warm-up runs)."""
    url = f"{server.base_url}{PREDICT}"
    with httpx.Client(timeout=60) as client:
        for _ in range(10):
            client.post(url, json={"instances": list(rows[:1])}).raise_for_status()
    results: dict[str, Any] = {}
    for scenario in scenarios:
        body = body_of(rows[: scenario.batch])
        if cfg.warmup_s:
            run_wrk(url, body=body, connections=scenario.connections, duration_s=cfg.warmup_s,
                    script_dir=cfg.work)  # fmt: skip
        cpu0 = server.cpu_s()
        result = run_wrk(url, body=body, connections=scenario.connections,
                         duration_s=cfg.duration_s, script_dir=cfg.work)  # fmt: skip
        results[scenario.name] = result.to_dict() | {"server_cpu_s": server.cpu_s() - cpu0}
        logger.info(
            "  %-12s p50 %7.2f ms  p99 %7.2f ms  %8.1f req/s  failed %d  CPU of 2 cores: "
            "server %.0f %%, wrk %.0f %%",
            scenario.name,
            result.p50_ms,
            result.p99_ms,
            result.rps,
            result.failed,
            50 * results[scenario.name]["server_cpu_s"] / result.wall_s,
            100 * result.cpu_share(2),
        )
    return results


def measure_server(
    label: str,
    runs: dict[str, Launch],
    rows: Sequence[dict[str, Any]],
    scenarios: Sequence[Scenario],
    cfg: RunConfig,
    *,
    vet: bool = False,
) -> dict[str, Any]:
    """One server under load: the scenarios, its peak RSS, and what /api/v1/model says
    (``vet``: first keep the rows it accepts, under ``rows`` in the result)."""
    logger.info("%s: under load", label)
    with start(label, runs[label], cfg.work) as server:
        result: dict[str, Any] = {"load_start_s": server.start_to_ready_s}
        if label == "shadow":  # the challenger loads after /ready: measure with it loaded
            result["shadow_wait_s"] = wait_for_shadow(server.base_url)
        if vet:
            rows = vet_rows(server.base_url, list(rows), BATCH100_1C.batch)
            result["rows"] = rows
        result |= load(server, rows, scenarios, cfg)
        if label != "ours_2w":  # there, the process is uvicorn's supervisor, not a worker
            result["peak_rss_mib"] = server.peak_rss_mib()
        if label != "floor" and label != "skops":
            result["model"] = httpx.get(f"{server.base_url}/api/v1/model", timeout=30).json()
            result["scorer"] = result["model"].get("scorer")
        if label == "shadow":
            snap = httpx.get(f"{server.base_url}/api/v1/monitoring", timeout=30).json()["shadow"]
            result["loaded"] = bool((snap or {}).get("loaded"))
    features = cfg.work / f"features-{label}"
    if features.is_dir():
        result["feature_log_bytes"] = sum(p.stat().st_size for p in features.glob("features*"))
    return result


def wait_for_shadow(base_url: str, timeout_s: float = 120.0) -> float:
    """Seconds until /api/v1/monitoring says the shadow challenger is loaded (or timeout_s:
    the report's ``loaded`` then says it never was). It loads in the background after the
    champion makes the API ready, so figures taken before would be of an idle shadow."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        snap = httpx.get(f"{base_url}/api/v1/monitoring", timeout=30).json()["shadow"]
        if (snap or {}).get("loaded"):
            break
        time.sleep(0.2)
    return time.monotonic() - start


def model_time(champion: Path, pem: str, rows: Sequence[dict[str, Any]], cfg: RunConfig) -> dict:
    """(b) in this process, on the champion the API serves, with the scorer it loaded: the
    loader verifies with ``pem`` as the API does, so the compiled predictor is used exactly
    when the API uses it."""
    with mock.patch.dict(os.environ, {"HOUSING_VERIFY_KEYS": pem}):
        result = model_time_or_reason(champion, rows, repeats=cfg.repeats)
        if result.get("available"):
            from housing.serving import load_serving

            result["scorer"] = load_serving(champion).scorer
    return result


# --- the run ---------------------------------------------------------------------------------


def new_report(cfg: RunConfig) -> dict[str, Any]:
    import json

    meta = json.loads((cfg.model_dir / "model.json").read_text())
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "cpu": cpu_model(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "duration_s": cfg.duration_s,
        "client": "wrk",
        "as_shipped": {**AS_SHIPPED, "FEATURE_LOG_DIR": "set", "workers": 1},
        "model": {k: meta.get(k) for k in ("name", "sha256", "serving_sha256", "spec")},
    }


def compile_sources() -> None:
    """Byte-compile the code first, so no start-up timing pays a fresh checkout's .pyc cost."""
    import compileall

    for folder in ("serve", "src", "bench"):
        compileall.compile_dir(ROOT / folder, quiet=1, workers=1)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Every measurement of one run, in a fixed order."""
    began = time.perf_counter()
    compile_sources()
    report = new_report(cfg)
    champion, pem = local_champion(cfg.model_dir, cfg.work)
    reg = registry(cfg, candidate_rows(cfg.model_dir, cfg.data, 10)) if cfg.with_registry else None
    runs = launches(cfg, champion, pem, reg)
    timed = ["floor", "ours", *(["make_serve"] if reg else [])]
    starts = time_starts(timed, runs, cfg)
    report["imports"] = import_times(timed, runs, cfg)
    candidates = candidate_rows(cfg.model_dir, cfg.data, 300)
    report["ours"] = measure_server("ours", runs, candidates, SCENARIOS, cfg, vet=True)
    rows = report["ours"].pop("rows")
    report["model_time"] = model_time(champion, pem, rows, cfg)
    # Next to ours' 8-connection run: the ratio of the two is a target.
    report["ours_2w"] = measure_server("ours_2w", runs, rows, [SINGLE_8C], cfg)
    report["floor"] = measure_server("floor", runs, rows, SCENARIOS, cfg)
    if reg is not None:
        report["shadow"] = measure_server("shadow", runs, rows, [SINGLE_1C, SINGLE_8C], cfg)
    if cfg.with_skops:
        report["skops"] = measure_server("skops", runs, rows, [SINGLE_1C, BATCH100_1C], cfg)
    for label, timing in starts.items():
        report.setdefault(label, {}).update(timing)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["machine"]["loadavg_end_1m"] = report["machine"]["loadavg_end"][0]
    report["wall_s"] = time.perf_counter() - began
    report["targets"] = [t.to_dict() for t in evaluate(report)]
    return report


LOAD_SIDES = ("ours", "floor", "ours_2w", "shadow", "skops")


def failed_requests(report: dict[str, Any]) -> dict[str, int]:
    """Non-2xx answers or socket errors seen in any load run."""
    failed = {}
    for side in LOAD_SIDES:
        for scenario in SCENARIOS:
            result = (report.get(side) or {}).get(scenario.name)
            if result and result["failed"]:
                failed[f"{side}/{scenario.name}"] = result["failed"]
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args(argv)
    try:
        require_wrk()
    except WrkError as exc:
        raise SystemExit(str(exc)) from None
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        cfg = make_config(args, work)
        report = run(cfg)
    except (ServerError, WrkError) as exc:
        raise SystemExit(f"benchmark stopped: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or ROOT / "bench" / "results" / f"serve_load-{int(time.time())}.json"
    write_json(report, out)
    sys.stdout.write(markdown(report) + "\n")
    logger.info("wrote %s (the run took %.0f s)", out, report["wall_s"])
    failed = failed_requests(report)
    if failed:
        logger.error("non-200 answers during the load: %s", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
