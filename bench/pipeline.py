"""Benchmark of the DVC pipeline in a throw-away copy of the project (default params).

Measures (a) a cold ``dvc repro --force featurize`` (download, split, preprocess,
featurize), (b) a no-op ``dvc repro featurize`` right after, (c) the peak memory (max RSS)
of the processes each command started, and with ``--all`` (d) a cold ``dvc repro --force``
of all seven stages (forced: a copy already holds the committed uncached reports, so a
plain repro would skip ``select`` and ``sweep``).
``--per-stage`` adds a breakdown: each data stage alone (``dvc repro -s``) in a fresh copy.
Prints a table against the targets and writes JSON to bench/results/.

    python bench/pipeline.py [--all] [--per-stage] [--mirror PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_support import VENV_BIN, make_pipeline_repo, pipeline_env, ran_stages  # noqa: E402

DEFAULT_MIRROR = ROOT.parent / "shared" / "data" / "housing.csv"
DATA_STAGES = ("download", "split", "preprocess", "featurize")
TARGETS = {"noop_s": 3.0, "data_stages_cold_s": 60.0, "all_stages_cold_s": 600.0}

# Runs one command and reports its wall time and the max RSS of everything it started
# (RUSAGE_CHILDREN covers every waited-for descendant), so each phase gets its own peak.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(proc.stderr)
print(json.dumps({"rc": proc.returncode, "seconds": seconds, "peak_kib": peak_kib,
                  "stdout": proc.stdout}))
"""


def measure(repo: Path, mirror: Path, *args: str) -> dict[str, Any]:
    """Run ``dvc *args`` in ``repo``; return seconds, peak RSS (MiB) and the stages it ran."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(VENV_BIN / "dvc"), *args],
        cwd=repo,
        env=pipeline_env(repo, mirror),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measuring dvc {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(
            f"dvc {' '.join(args)} exited {result['rc']}:\n{result['stdout'][-2000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return {
        "command": f"dvc {' '.join(args)}",
        "seconds": round(result["seconds"], 2),
        "peak_rss_mib": round(result["peak_kib"] / 1024, 1),
        "stages": ran_stages(result["stdout"]),
    }


def machine() -> dict[str, Any]:
    """CPU model, core count and load, for reading the figures (a shared 2-core machine)."""
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "targets": TARGETS, "phases": {}}
    phases = results["phases"]

    repo = make_pipeline_repo(workdir / "data-stages", params=None)
    # --force: a copy already holds the committed uncached reports; every stage must run.
    phases["data_stages_cold"] = measure(repo, args.mirror, "repro", "--force", "featurize")
    phases["noop"] = measure(repo, args.mirror, "repro", "featurize")
    print_phase("data_stages_cold", phases["data_stages_cold"])
    print_phase("noop", phases["noop"])

    if args.per_stage:
        repo = make_pipeline_repo(workdir / "per-stage", params=None)
        for stage in DATA_STAGES:
            phases[f"stage_{stage}"] = measure(repo, args.mirror, "repro", "-s", stage)
            print_phase(f"stage_{stage}", phases[f"stage_{stage}"])

    if args.all:
        repo = make_pipeline_repo(workdir / "all-stages", params=None)
        phases["all_stages_cold"] = measure(repo, args.mirror, "repro", "--force")
        print_phase("all_stages_cold", phases["all_stages_cold"])
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    return results


def print_phase(name: str, phase: dict[str, Any]) -> None:
    print(f"  done {name}: {phase['seconds']:.1f} s", flush=True)


def table(results: dict[str, Any]) -> str:
    rows = [f"{'phase':22s} {'seconds':>9s} {'target':>8s} {'peak RSS':>10s}  stages run"]
    for name, phase in results["phases"].items():
        target = TARGETS.get(f"{name}_s")
        verdict = "" if target is None else ("ok" if phase["seconds"] <= target else "OVER")
        target_txt = "" if target is None else f"<= {target:g}"
        rows.append(
            f"{name:22s} {phase['seconds']:9.1f} {target_txt:>8s} "
            f"{phase['peak_rss_mib']:7.0f} MiB  {','.join(phase['stages']) or '-'} {verdict}"
        )
    m = results["machine"]
    rows.append(
        f"machine: {m['cpu_model']}, {m['nproc']} CPUs, load at start {m['loadavg_at_start']}"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="also time all seven stages cold")
    parser.add_argument("--per-stage", action="store_true", help="time each data stage alone")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=Path(os.environ.get("HOUSING_DATA_MIRROR", DEFAULT_MIRROR)),
        help="local copy of the data set (the download stage reads it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the throw-away copies")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.mirror.is_file():
        raise SystemExit(f"data mirror not found at {args.mirror}; pass --mirror")

    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        results = run(args, workdir)
    finally:
        if args.keep:
            print(f"copies kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(table(results))
    out = args.out or ROOT / "bench" / "results" / f"pipeline-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
