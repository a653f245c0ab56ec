"""Experiment (issue 11, item 4): do averaged boosters or blends beat the chosen model by CV?

On the committed choices (imputer, features, family, ``models/best_params.yaml``), the fold
matrices are built once per fold scheme and every candidate is fitted on the same folds:

- ``single``: the chosen LightGBM, the model the register stage fits (its seed);
- ``seed_bag_<n>``: the mean log price of ``n`` such boosters with seeds ``seed .. seed+n-1``
  (servable when ``n`` times the rounds stays within the rounds cap of the serving budget);
- ``blend_<family>``: the mean log price of the LightGBM and the select stage's best
  configuration of another family (for reference: the serving bundle has LightGBM only).

Candidates are judged by the pipeline's rule (``housing.cv.within_one_se``): adopt one only
if it beats ``single`` by more than one standard error of the paired per-fold difference.
Two fold schemes: the sweep's (the choice would be made there) and the register stage's
honest folds (the score that would be reported). Train split only; the test split is not read.

    python bench/ensembles.py [--bag 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from pipeline import machine  # noqa: E402

from housing import choices  # noqa: E402
from housing.cv import Fold, make_folds, map_folds, paired_se  # noqa: E402
from housing.metrics import rmse  # noqa: E402
from housing.model import build_preprocessor, build_regressor  # noqa: E402

logger = logging.getLogger("bench.ensembles")


def fold_log_predictions(folds: list[Fold], family: str, params: dict, seed: int) -> list:
    """Each fold's validation log-price predictions of one regressor."""

    def one(fold: Fold) -> np.ndarray:
        reg = build_regressor(family, params, seed=seed)
        reg.fit(fold.X_fit, fold.y_fit_log)
        return reg.predict(fold.X_val)

    return map_folds(one, folds)


def scores(folds: list[Fold], log_preds: list[np.ndarray]) -> list[float]:
    return [rmse(f.y_val, np.exp(p)) for f, p in zip(folds, log_preds, strict=True)]


def judge(per_fold: dict[str, list[float]], baseline: str) -> dict[str, Any]:
    """Mean, SD, and the paired difference to ``baseline`` with its SE and the verdict."""
    base = np.asarray(per_fold[baseline])
    out: dict[str, Any] = {}
    for name, values in per_fold.items():
        v = np.asarray(values)
        row: dict[str, Any] = {
            "cv_rmse": round(float(v.mean()), 1),
            "cv_rmse_std": round(float(v.std()), 1),
            "folds": [round(float(x), 1) for x in v],
        }
        if name != baseline:
            diff = float((v - base).mean())
            se = paired_se(v, base)
            row |= {
                "minus_single": round(diff, 1),
                "paired_se": round(se, 1),
                "beats_single_by_1se": bool(-diff > se),
            }
        out[name] = row
    return out


def run(bag: int) -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    best = yaml.safe_load((ROOT / "models/best_params.yaml").read_text())
    leaderboard = json.loads((ROOT / choices.LEADERBOARD).read_text())["families"]
    seed = int(params["register"]["seed"])
    train = pd.read_parquet(ROOT / "data/split/train.parquet")
    pre = build_preprocessor(
        choices.imputer(ROOT / choices.IMPUTATION_REPORT),
        choices.features(ROOT / choices.FEATURES_REPORT),
        seed=seed,
    )
    schemes = {
        "sweep": (int(params["sweep"]["cv_folds"]), int(params["sweep"]["seed"])),
        "register": (int(params["register"]["cv_folds"]), int(params["register"]["cv_seed"])),
    }
    result: dict[str, Any] = {"family": best["family"], "bag": bag, "schemes": {}}
    for scheme, (n_splits, fold_seed) in schemes.items():
        start = time.perf_counter()
        folds = make_folds(train, pre, n_splits=n_splits, seed=fold_seed)
        logger.info("%s folds (%d, seed %d) built in %.0f s", scheme, n_splits, fold_seed,
                    time.perf_counter() - start)  # fmt: skip
        members = []
        for s in range(seed, seed + bag):
            start = time.perf_counter()
            members.append(fold_log_predictions(folds, best["family"], best["params"], s))
            logger.info("%s: booster seed %d in %.0f s", scheme, s, time.perf_counter() - start)
        per_fold = {"single": scores(folds, members[0])}
        for n in range(2, bag + 1):
            mean = [np.mean([m[i] for m in members[:n]], axis=0) for i in range(len(folds))]
            per_fold[f"seed_bag_{n}"] = scores(folds, mean)
        for other in ("random_forest", "hist_gradient_boosting"):
            start = time.perf_counter()
            preds = fold_log_predictions(folds, other, leaderboard[other]["params"], seed)
            blend = [(a + b) / 2 for a, b in zip(members[0], preds, strict=True)]
            per_fold[f"blend_{other}"] = scores(folds, blend)
            logger.info("%s: %s in %.0f s", scheme, other, time.perf_counter() - start)
        result["schemes"][scheme] = {
            "cv_folds": n_splits,
            "fold_seed": fold_seed,
            "candidates": judge(per_fold, "single"),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=int, default=3, help="largest seed bag (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ensembles.json")
    args = parser.parse_args()
    if args.bag < 2:
        raise SystemExit("--bag must be at least 2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    result = run(args.bag)
    result |= {
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    for scheme, block in result["schemes"].items():
        for name, row in block["candidates"].items():
            extra = ""
            if "minus_single" in row:
                extra = f"  diff {row['minus_single']:+.0f} (SE {row['paired_se']:.0f})"
            logger.info("%-8s %-30s %8.0f ± %4.0f%s", scheme, name, row["cv_rmse"],
                        row["cv_rmse_std"], extra)  # fmt: skip
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
