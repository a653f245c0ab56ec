"""Stage ``sweep``: Bayesian search of the chosen family's hyperparameters by CV on train.

The search is declared in W&B sweep syntax in ``params.yaml``; the default engine is the
embedded, seeded Optuna one (W&B's service when ``sweep.engine: wandb`` and a key is set).
Each trial reports its running CV RMSE after every fold, so Hyperband prunes bad trials
early. The test split is never read here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from housing import stage
from housing.io import write_csv, write_json, write_yaml
from housing.sweep import SweepConfigError, SweepResult, SweepRunError, run_sweep
from housing.tuning import at_bounds, plan_sweep, rounds_fitted

logger = logging.getLogger(__name__)

TRAIN = Path("data/split/train.parquet")
BEST_PARAMS = Path("models/best_params.yaml")
TRIALS = Path("reports/sweep/trials.csv")
HISTORY = Path("reports/sweep/history.csv")
SUMMARY = Path("reports/sweep/summary.json")


def trial_table(result: SweepResult) -> pd.DataFrame:
    """Trial history without wall-clock durations (they would break byte-identical reruns)."""
    return result.history_frame().drop(columns=["duration_s"], errors="ignore")


def main() -> None:
    p = stage.params("sweep")
    seed = int(p["seed"])
    plan = plan_sweep(p, pd.read_parquet(TRAIN))
    family = plan.family
    engine = str(p["engine"])
    result = run_sweep(
        plan.spec,
        plan.objective,
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
    walls = at_bounds(plan.spec, result.best_params)
    for name, side in walls.items():
        logger.warning(
            "best %s=%s is at the %s of its range: widen it", name, result.best_params[name], side
        )
    cost = rounds_fitted(
        result.trials, family, step=int(p["resource_step"]), n_folds=int(p["cv_folds"])
    )
    if cost:
        logger.info(
            "pruning: %d of %d boosting rounds fitted (%.0f%% saved)",
            cost["rounds_fitted"],
            cost["rounds_without_pruning"],
            100 * cost["rounds_saved_share"],
        )
    write_json(
        SUMMARY,
        {
            **result.summary(),
            "family": family,
            "cv_folds": int(p["cv_folds"]),
            "fold_seed": int(p["seed"]),
            "at_bound": walls,
            **cost,
        },
    )
    logger.info(
        "sweep %s: best cv_rmse %.0f after %d trials (%d pruned)",
        result.sweep_id,
        result.best_value,
        len(result.trials),
        result.n_pruned,
    )


if __name__ == "__main__":
    stage.run(main, expected=(SweepConfigError, SweepRunError))
