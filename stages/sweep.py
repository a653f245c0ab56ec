"""Stage ``sweep``: Bayesian search of the chosen family's hyperparameters by CV on train.

The search is declared in W&B sweep syntax in ``params.yaml``; the default engine is the
embedded, seeded Optuna one (W&B's service when ``sweep.engine: wandb`` and a key is set).
Each trial reports its running CV RMSE after every fold, so Hyperband prunes bad trials
early. The test split is never read here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import choices, stage
from housing.cv import Fold, make_folds
from housing.io import write_csv, write_json, write_yaml
from housing.metrics import rmse
from housing.model import build_preprocessor, build_regressor
from housing.sweep import (
    Reporter,
    SweepConfigError,
    SweepResult,
    SweepRunError,
    parse_sweep_config,
    run_sweep,
)

logger = logging.getLogger(__name__)

TRAIN = Path("data/split/train.parquet")
BEST_PARAMS = Path("models/best_params.yaml")
TRIALS = Path("reports/sweep/trials.csv")
HISTORY = Path("reports/sweep/history.csv")
SUMMARY = Path("reports/sweep/summary.json")


def sweep_declaration(p: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The W&B sweep dict for ``family``: shared keys plus that family's parameter space."""
    spaces = p["spaces"]
    if family not in spaces:
        raise SweepConfigError(f"sweep.spaces has no search space for the chosen family {family!r}")
    return {**p["config"], "parameters": spaces[family]}


def make_objective(folds: list[Fold], family: str, *, seed: int):
    """Objective: mean validation RMSE over folds, reported after each fold for pruning."""

    def objective(params: dict[str, Any], reporter: Reporter) -> float:
        scores = []
        for step, fold in enumerate(folds):
            reg = build_regressor(family, params, seed=seed)
            reg.fit(fold.X_fit, fold.y_fit_log)
            scores.append(rmse(fold.y_val, np.exp(reg.predict(fold.X_val))))
            reporter.report(step, float(np.mean(scores)))
        return float(np.mean(scores))

    return objective


def trial_table(result: SweepResult) -> pd.DataFrame:
    """Trial history without wall-clock durations (they would break byte-identical reruns)."""
    return result.history_frame().drop(columns=["duration_s"], errors="ignore")


def main() -> None:
    p = stage.params("sweep")
    seed = int(p["seed"])
    family = choices.family()
    spec = parse_sweep_config(sweep_declaration(p, family))
    train = pd.read_parquet(TRAIN)
    pre = build_preprocessor(choices.imputer(), choices.features(), seed=seed)
    folds = make_folds(train, pre, n_splits=int(p["cv_folds"]), seed=seed)
    engine = str(p["engine"])
    result = run_sweep(
        spec,
        make_objective(folds, family, seed=seed),
        n_trials=int(p["n_trials"]),
        seed=seed,
        engine=engine,
        wandb_mode=os.environ.get("WANDB_MODE", "offline"),
        wandb_project=str(p["wandb_project"]),
    )
    history = trial_table(result)
    write_csv(TRIALS, history)
    write_csv(HISTORY, history[["trial", "value", "best_so_far", "state"]])
    write_yaml(BEST_PARAMS, {"family": family, "params": dict(result.best_params)})
    write_json(SUMMARY, {**result.summary(), "family": family, "cv_folds": int(p["cv_folds"])})
    logger.info(
        "sweep %s: best cv_rmse %.0f after %d trials (%d pruned)",
        result.sweep_id,
        result.best_value,
        len(result.trials),
        result.n_pruned,
    )


if __name__ == "__main__":
    stage.run(main, expected=(SweepConfigError, SweepRunError))
