"""Folds fitted one at a time against side by side (``HOUSING_CV_WORKERS``), same run.

The same work three ways, each with 1 and with 2 workers: building the sweep's folds
(preprocessing refitted per fold), one sweep trial (LightGBM on every fold in lockstep,
reported every ``resource_step`` rounds) and one select-stage random forest trial. Each
result is checked equal across worker counts: the speed-up must cost no bits.

    .venv/bin/python bench/cv_workers.py            # needs data/split/train.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from housing import stage
from housing.tuning import choice_folds, make_objective

logger = logging.getLogger("bench.cv_workers")

TRAIN = Path("data/split/train.parquet")
RESULTS = Path("bench/results")

# A mid-sized trial of each family's space (params.yaml sweep.spaces).
TRIALS = {
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 90,
        "min_child_samples": 50,
        "subsample": 0.9,
        "subsample_freq": 1,
        "colsample_bytree": 0.6,
        "reg_lambda": 0.01,
    },
    "random_forest": {"n_estimators": 100, "max_features": 0.4, "min_samples_leaf": 2},
}


class _Keep:
    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def measure(train: pd.DataFrame, *, folds: int, seed: int, step: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    built: dict[str, Any] = {}
    for workers in ("1", "2"):
        os.environ["HOUSING_CV_WORKERS"] = workers
        seconds, cv = timed(lambda: choice_folds(train, n_splits=folds, seed=seed))
        built[workers] = cv
        rows.setdefault("folds", {})[workers] = seconds
        for family, params in TRIALS.items():
            keep = _Keep()
            objective = make_objective(cv, family, seed=seed, step=step)
            seconds, _ = timed(lambda: objective(dict(params), keep))  # noqa: B023
            rows.setdefault(family, {})[workers] = seconds
            rows.setdefault(f"{family}_reports", {})[workers] = keep.reports
    out = {}
    for name in ("folds", *TRIALS):
        one, two = rows[name]["1"], rows[name]["2"]
        same = (
            rows[f"{name}_reports"]["1"] == rows[f"{name}_reports"]["2"]
            if name in TRIALS
            else all(
                (a.X_fit == b.X_fit).all() and (a.X_val == b.X_val).all()
                for a, b in zip(built["1"], built["2"], strict=True)
            )
        )
        out[name] = {"1_worker_s": one, "2_workers_s": two, "speedup": one / two, "same": same}
        logger.info(
            "%-14s 1 worker %6.1f s  2 workers %6.1f s  x%.2f  identical: %s",
            name,
            one,
            two,
            one / two,
            same,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step", type=int, default=100)
    args = parser.parse_args()
    stage.pin_threads()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        "results": measure(
            pd.read_parquet(TRAIN), folds=args.folds, seed=args.seed, step=args.step
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"cv_workers-{int(time.time())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", path)


if __name__ == "__main__":
    main()
