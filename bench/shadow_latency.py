"""The champion's latency with the shadow challenger on and off (issue 24, item 5).

One temporary SQLite registry: the benchmarked bundle registered and promoted as champion
(v1), then registered again and held by the gates as the signed challenger (v2). Two APIs
serve it as `make serve` does (registry source, feature log on, keys verified), one with
``SHADOW=true``. wrk measures single-instance requests on one connection against each in
turn, alternating which goes first, ``--runs`` times (at least 5); the verdict compares the
medians of the p50s: the shadow must cost the champion at most 5 %. The shadow API's
``shadow_scored_total`` must grow with the requests: the agreement is exported.

    python bench/shadow_latency.py [--model-dir models] [--runs 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report import write_json  # noqa: E402
from bench.servers import free_port, registry_env, running, serve_argv  # noqa: E402
from bench.wrk import require_wrk, run_wrk  # noqa: E402

logger = logging.getLogger("bench.shadow_latency")
PREDICT = "/api/v1/predict"
TARGET_RATIO = 1.05


def registry_with_challenger(model_dir: Path, root: Path, example: pd.DataFrame):
    """(tracking URI, public PEM): v1 champion, v2 the held, signed challenger."""
    from bench.registry_setup import register_challenger, register_champion

    uri, pem = register_champion(model_dir, root, example)
    register_challenger(model_dir, root, example, uri)
    return uri, pem


def shadow_scored(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("shadow_scored_total "):
            return float(line.split()[1])
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    default_data = ROOT.parent / "shared" / "data" / "housing.csv"
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", default_data))
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.runs < 5:
        parser.error("--runs must be at least 5 (the issue's median of interleaved runs)")
    if not (args.model_dir / "model.json").is_file():
        parser.error(f"{args.model_dir}: no model.json (run the pipeline first: make pipeline)")
    require_wrk()
    from bench.serve_load import candidate_rows, cpu_model, vet_rows

    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        rows = candidate_rows(args.model_dir, args.data, 50)
        uri, pem = registry_with_challenger(args.model_dir, work, pd.DataFrame(rows[:3]))
        servers = {}
        for mode in ("off", "on"):
            port = free_port()
            env = registry_env(
                uri,
                pem,
                port,
                work,
                FEATURE_LOG_DIR=str(work / f"features-{mode}"),
                SHADOW="true" if mode == "on" else "false",
                WANDB_MODE="disabled",
                ACCESS_LOG="false",
            )
            servers[mode] = stack.enter_context(
                running(serve_argv(), env=env, port=port, log=work / f"shadow-{mode}.log")
            )
        on_url = servers["on"].base_url
        monitoring = httpx.get(f"{on_url}/api/v1/monitoring", timeout=30).json()
        if not (monitoring["shadow"] or {}).get("loaded"):
            raise SystemExit(f"the shadow never loaded its challenger: {monitoring['shadow']}")
        rows = vet_rows(servers["off"].base_url, rows, 1)
        body = json.dumps({"instances": rows[:1]}).encode()
        p50: dict[str, list[float]] = {"off": [], "on": []}
        before = shadow_scored(on_url)
        requests_on = 0
        for run in range(args.runs):
            order = ("off", "on") if run % 2 == 0 else ("on", "off")
            for mode in order:
                url = servers[mode].base_url + PREDICT
                run_wrk(url, body=body, connections=1, duration_s=1.0, script_dir=work)  # warm
                result = run_wrk(
                    url, body=body, connections=1, duration_s=args.duration, script_dir=work
                )
                p50[mode].append(result.p50_ms)
                if mode == "on":
                    requests_on += result.requests
                logger.info("run %d shadow %-3s p50 %.3f ms", run + 1, mode, result.p50_ms)
        scored = shadow_scored(on_url) - before
        snap = httpx.get(f"{on_url}/api/v1/monitoring", timeout=30).json()["shadow"]
    median = {mode: statistics.median(values) for mode, values in p50.items()}
    ratio = median["on"] / median["off"]
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    result: dict[str, Any] = {
        "cpu": cpu_model(),
        "runs": args.runs,
        "duration_s": args.duration,
        "p50_ms": p50,
        "median_p50_ms": median,
        "ratio_on_off": ratio,
        "target_ratio": TARGET_RATIO,
        "verdict": verdict,
        "shadow_scored": scored,
        "shadow": snap,
    }
    print(
        f"| shadow | median p50 of {args.runs} interleaved runs |\n|---|---:|\n"
        f"| off | {median['off']:.3f} ms |\n| on | {median['on']:.3f} ms |\n"
        f"| on / off | {ratio:.3f} (target <= {TARGET_RATIO}: {verdict}) |\n\n"
        f"shadow_scored_total grew by {scored:.0f} during the shadow runs; "
        f"challenger v{snap['challenger_version']} inside the champion's interval "
        f"{snap['inside_interval_share']:.1%}, mean |difference| ${snap['mean_abs_diff']:,.2f}"
    )
    out = args.out or ROOT / "bench" / "results" / "shadow_latency.json"
    write_json(result, out)
    return 0 if verdict == "PASS" and scored > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
