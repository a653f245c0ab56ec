"""Benchmark: the same sweep with 1 and with 2 local workers on a journal file.

In a throw-away directory: the download and split stages make the real train split from
the mirror, then ``python -m stages.sweep`` runs the default sweep (the chosen family, its
space, 5 folds, the real LightGBM objective) with ``n_trials`` trials, once with
``sweep.workers: 1`` and once with ``2``, each on a fresh journal file (no resumed study).
Reports each run's wall time, the speed-up, and the per-trial time read from the study.

Different workers sample different trials (and Hyperband prunes different ones), so the
work is not identical: the boosting rounds each run fitted are reported too, and the
speed-up per fitted round beside the plain one.

    python bench/sweep_workers.py [--n-trials 12] [--mirror PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import DEFAULT_MIRROR, machine  # noqa: E402

REPORTS = (
    "reports/preprocess/imputation.json",
    "reports/featurize/features.json",
    "reports/select/leaderboard.json",
)


def stage_env(mirror: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOUSING_DATA_MIRROR": str(mirror)}
    env.update(WANDB_MODE="disabled", TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    return env


def run_stage(workdir: Path, name: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.{name}"], cwd=workdir, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"stages.{name} failed:\n{proc.stderr[-3000:]}")
    return seconds


def prepare(workdir: Path, env: dict[str, str]) -> None:
    shutil.copy2(ROOT / "params.yaml", workdir / "params.yaml")
    for report in REPORTS:
        (workdir / report).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / report, workdir / report)
    for name in ("download", "split"):
        run_stage(workdir, name, env)


def set_sweep(workdir: Path, **values: Any) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["sweep"].update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def trial_times(journal: Path, study: str) -> dict[str, Any]:
    """Durations of the finished trials, read back from the journal."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    loaded = optuna.load_study(
        study_name=study, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    done = [t for t in loaded.trials if t.state.is_finished() and t.duration is not None]
    seconds = [t.duration.total_seconds() for t in done]
    return {
        "trials_ended": len(done),
        "trial_seconds_mean": round(sum(seconds) / len(seconds), 2),
        "trial_seconds_sum": round(sum(seconds), 1),
    }


def measure(workdir: Path, env: dict[str, str], workers: int, n_trials: int) -> dict[str, Any]:
    journal = workdir / f"journal-{workers}.log"
    set_sweep(workdir, workers=workers, storage=str(journal), n_trials=n_trials)
    seconds = run_stage(workdir, "sweep", env)
    summary = json.loads((workdir / "reports/sweep/summary.json").read_text())
    out = {
        "workers": workers,
        "wall_seconds": round(seconds, 1),
        "n_finished": summary["n_finished"],
        "overshoot": summary["overshoot"],
        "duplicates": summary["duplicates"],
        "n_pruned": summary["n_pruned"],
        "best_value": round(summary["best_value"], 1),
        "rounds_fitted": summary.get("rounds_fitted"),
        "per_worker": summary["per_worker"],
        **trial_times(journal, summary["study"]),
    }
    print(f"  workers={workers}: {seconds:.1f} s, {summary['n_finished']} finished", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument(
        "--mirror", type=Path, default=Path(os.environ.get("HOUSING_DATA_MIRROR", DEFAULT_MIRROR))
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.mirror.is_file():
        raise SystemExit(f"data mirror not found at {args.mirror}; pass --mirror")

    results: dict[str, Any] = {
        "machine": machine(),
        "n_trials": args.n_trials,
        # Folds fitted at once inside each worker (unset: one per core, housing.cv).
        "cv_workers": os.environ.get("HOUSING_CV_WORKERS", "") or "one per core",
        "runs": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-workers-"))
    try:
        env = stage_env(args.mirror)
        prepare(workdir, env)
        for workers in (1, 2):
            results["runs"][str(workers)] = measure(workdir, env, workers, args.n_trials)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    one, two = results["runs"]["1"], results["runs"]["2"]
    results["speedup"] = round(one["wall_seconds"] / two["wall_seconds"], 2)
    if one["rounds_fitted"] and two["rounds_fitted"]:
        per_round = (one["wall_seconds"] / one["rounds_fitted"]) / (
            two["wall_seconds"] / two["rounds_fitted"]
        )
        results["speedup_per_fitted_round"] = round(per_round, 2)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    out = args.out or ROOT / "bench" / "results" / f"sweep-workers-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
