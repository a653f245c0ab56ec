"""Load benchmark of the prediction API beside its floor and the skops pipeline (issue 10).

One run, one uvicorn worker each, 127.0.0.1 only, wrk for every latency figure:

- ours: `python -m serve` on the local bundle, W&B prediction logging on as shipped (offline);
- (a) the stack floor: FastAPI + our request schema and response model, constant answer;
- (b) the model's own time: ``housing.serving`` in this process (whole numpy path and the
  booster alone, median after warm-up, 1 and 100 rows);
- (c) the same model through the skops pipeline's ``model.predict(DataFrame)`` in FastAPI;
- `make serve`'s configuration (registry on SQLite) timed from exec to the first 200 /ready.

Prints a markdown table with ratios and PASS/MISS per target, writes JSON to bench/results/.

    python bench/serve_load.py [--model-dir models] [--duration 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/serve_load.py` puts bench/, not the root, first
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pandas as pd  # noqa: E402

from bench.model_time import model_time_or_reason  # noqa: E402
from bench.report import evaluate, markdown, write_json  # noqa: E402
from bench.servers import (  # noqa: E402
    Server,
    ServerError,
    free_port,
    pinned_env,
    running,
    serve_argv,
    uvicorn_factory_argv,
)
from bench.wrk import WrkError, finish_wrk, require_wrk, run_wrk, start_wrk  # noqa: E402
from housing.contract import RAW_FEATURES  # noqa: E402

logger = logging.getLogger("bench.serve_load")

PREDICT = "/api/v1/predict"
SCENARIOS = (("single_1c", 1, 1), ("single_8c", 1, 8), ("batch100_1c", 100, 1))
BIG_BATCH = 1000


@dataclass(frozen=True)
class RunConfig:
    """What one run measures and for how long."""

    model_dir: Path
    data: Path
    work: Path
    duration_s: float
    warmup_s: float
    repeats: int
    wandb_mode: str
    with_registry: bool


# --- inputs ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    default_data = ROOT.parent / "shared" / "data" / "housing.csv"
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", default_data))
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="1 s runs: proves the harness")
    parser.add_argument("--skip-registry", action="store_true", help="no `make serve` timing")
    parser.add_argument("--wandb-mode", default="offline", choices=["offline", "disabled"])
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
        wandb_mode=args.wandb_mode,
        with_registry=not args.skip_registry,
    )


def candidate_rows(model_dir: Path, data: Path, n: int) -> list[dict[str, Any]]:
    """``n`` real districts inside the served model's bounds (the API still has the last word)."""
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


# --- measuring one server ------------------------------------------------------------------


def body_of(rows: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"instances": list(rows)}).encode()


def warm_up(server: Server, body: bytes, connections: int, cfg: RunConfig) -> None:
    """A few sequential requests, then (full runs) a short wrk run at the same concurrency."""
    with httpx.Client(timeout=60) as client:
        for _ in range(10):
            client.post(
                f"{server.base_url}{PREDICT}",
                content=body,
                headers={"Content-Type": "application/json"},
            ).raise_for_status()
    if cfg.warmup_s:
        run_wrk(
            f"{server.base_url}{PREDICT}",
            body=body,
            connections=connections,
            duration_s=cfg.warmup_s,
            script_dir=cfg.work,
        )


def load_suite(server: Server, rows: Sequence[dict[str, Any]], cfg: RunConfig) -> dict[str, Any]:
    """The three load scenarios against one server."""
    results: dict[str, Any] = {}
    for name, batch, connections in SCENARIOS:
        body = body_of(rows[:batch])
        warm_up(server, body, connections, cfg)
        result = run_wrk(
            f"{server.base_url}{PREDICT}",
            body=body,
            connections=connections,
            duration_s=cfg.duration_s,
            script_dir=cfg.work,
        )
        results[name] = result.to_dict()
        logger.info(
            "  %-12s p50 %7.2f ms  p99 %7.2f ms  %8.1f req/s  failed %d",
            name,
            result.p50_ms,
            result.p99_ms,
            result.rps,
            result.failed,
        )
    return results


def probes_during_batch(
    server: Server, rows: Sequence[dict[str, Any]], cfg: RunConfig
) -> dict[str, Any]:
    """/health and /ready latency (wrk, 1 connection) while 1,000-instance batches are scored."""
    body = body_of(rows[:BIG_BATCH])
    out: dict[str, Any] = {}
    for probe in ("health", "ready"):
        batches = start_wrk(
            f"{server.base_url}{PREDICT}",
            body=body,
            connections=1,
            duration_s=cfg.duration_s + 1,
            script_dir=cfg.work,
        )
        time.sleep(0.5)  # let the first batch start
        probed = run_wrk(
            f"{server.base_url}/{probe}",
            body=None,
            connections=1,
            duration_s=cfg.duration_s,
            script_dir=cfg.work,
        )
        scored = finish_wrk(batches)
        out[probe] = probed.to_dict()
        out[f"batch1000_while_{probe}"] = scored.to_dict()
        logger.info(
            "  /%s during 1,000-batches: p50 %.2f ms p99 %.2f ms max %.2f ms (batch p50 %.1f ms)",
            probe,
            probed.p50_ms,
            probed.p99_ms,
            probed.max_ms,
            scored.p50_ms,
        )
    return out


def measure_ours(
    cfg: RunConfig, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Our API from the local champion (signed, verified at start-up): start to ready, load,
    probes, peak RSS."""
    from bench.registry_setup import signed_champion

    champion, pem = signed_champion(cfg.model_dir, cfg.work)
    port = free_port()
    env = pinned_env(
        {
            "MODEL_SOURCES": "local",
            "LOCAL_MODEL_DIR": str(champion),
            "HOUSING_VERIFY_KEYS": pem,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WANDB_MODE": cfg.wandb_mode,
            "WANDB_DIR": str(cfg.work),
        }
    )
    logger.info("ours: python -m serve on 127.0.0.1:%d (local bundle)", port)
    with running(serve_argv(), env=env, port=port, log=cfg.work / "ours.log") as server:
        logger.info("  start to ready %.2f s", server.start_to_ready_s)
        rows = vet_rows(server.base_url, rows, BIG_BATCH)
        result: dict[str, Any] = {"start_to_ready_s": server.start_to_ready_s}
        result |= load_suite(server, rows, cfg)
        result["during_batch1000"] = probes_during_batch(server, rows, cfg)
        result["peak_rss_mib"] = server.peak_rss_mib()
        result["model"] = httpx.get(f"{server.base_url}/api/v1/model", timeout=30).json()
    return result, rows


def measure_app(
    label: str,
    factory: str,
    cfg: RunConfig,
    rows: Sequence[dict[str, Any]],
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """A comparison app (bench/apps.py) on the same uvicorn configuration."""
    port = free_port()
    argv = uvicorn_factory_argv(factory, port)
    logger.info("%s: uvicorn %s on 127.0.0.1:%d", label, factory, port)
    with running(
        argv, env=pinned_env(extra_env), port=port, log=cfg.work / f"{label}.log"
    ) as server:
        result: dict[str, Any] = {"start_to_ready_s": server.start_to_ready_s}
        result |= load_suite(server, rows, cfg)
        result["peak_rss_mib"] = server.peak_rss_mib()
    return result


def measure_make_serve(cfg: RunConfig, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`make serve`'s configuration (registry on SQLite) against a temporary registry."""
    from bench.registry_setup import register_champion

    root = cfg.work / "registry"
    root.mkdir()
    logger.info("make serve: registering the bundle as champion in %s", root)
    uri, pem = register_champion(cfg.model_dir, root, pd.DataFrame(rows[:3]))
    port = free_port()
    env = pinned_env(
        {
            "MLFLOW_TRACKING_URI": uri,
            "HOUSING_VERIFY_KEYS": pem,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            # no local fallback: only the registry's champion can make it ready
            "LOCAL_MODEL_DIR": str(root / "no-local-bundle"),
            "WANDB_MODE": cfg.wandb_mode,
            "WANDB_DIR": str(cfg.work),
        }
    )
    env.pop("MODEL_SOURCES", None)
    env.pop("GCS_BUCKET", None)
    with running(serve_argv(), env=env, port=port, log=cfg.work / "make_serve.log") as server:
        model = httpx.get(f"{server.base_url}/api/v1/model", timeout=30).json()
        logger.info(
            "  start to ready %.2f s (source %s, version %s)",
            server.start_to_ready_s,
            model.get("source"),
            model.get("version"),
        )
        return {
            "start_to_ready_s": server.start_to_ready_s,
            "source": model.get("source"),
            "version": model.get("version"),
            "alias": model.get("alias"),
        }


# --- the run ---------------------------------------------------------------------------------


def cpu_model() -> str:
    """`lscpu`'s model name (what the README quotes), else /proc/cpuinfo's."""
    lscpu = shutil.which("lscpu")
    if lscpu:
        out = subprocess.run([lscpu], capture_output=True, text=True, check=False).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def new_report(cfg: RunConfig) -> dict[str, Any]:
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
        "wandb_mode": cfg.wandb_mode,
        "model": {k: meta.get(k) for k in ("name", "sha256", "serving_sha256", "spec")},
    }


def compile_sources() -> None:
    """Byte-compile the code first, so no start-up timing pays a fresh checkout's .pyc cost."""
    import compileall

    for folder in ("serve", "src", "bench"):
        compileall.compile_dir(ROOT / folder, quiet=1, workers=1)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Every measurement of one run, in a fixed order."""
    compile_sources()
    report = new_report(cfg)
    rows = candidate_rows(cfg.model_dir, cfg.data, BIG_BATCH + 300)
    report["ours"], rows = measure_ours(cfg, rows)
    report["model_time"] = model_time_or_reason(cfg.model_dir, rows, repeats=cfg.repeats)
    report["floor"] = measure_app("floor", "bench.apps:make_floor_app", cfg, rows, {})
    report["skops"] = measure_app(
        "skops", "bench.apps:make_skops_app", cfg, rows, {"BENCH_MODEL_DIR": str(cfg.model_dir)}
    )
    if cfg.with_registry:
        report["make_serve"] = measure_make_serve(cfg, rows)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["targets"] = [t.to_dict() for t in evaluate(report)]
    return report


def failed_requests(report: dict[str, Any]) -> dict[str, int]:
    """Non-2xx answers or socket errors seen in any load run."""
    failed = {}
    for side in ("ours", "floor", "skops"):
        for name, *_ in SCENARIOS:
            if report[side][name]["failed"]:
                failed[f"{side}/{name}"] = report[side][name]["failed"]
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    logger.info("wrote %s", out)
    failed = failed_requests(report)
    if failed:
        logger.error("non-200 answers during the load: %s", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
