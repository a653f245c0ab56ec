"""Stage ``sweep``: Bayesian search of the chosen family's hyperparameters by CV on train.

The search is declared in W&B sweep syntax in ``params.yaml``; the default engine is the
embedded, seeded Optuna one (W&B's service when ``sweep.engine: wandb`` and a key is set).
Each trial reports its running CV RMSE every ``resource_step`` boosting rounds, so Hyperband
prunes bad trials early. The test split is never read here.

By default the study lives in memory, in this process, and the outputs are a pure function
of the inputs. With ``sweep.storage`` set (a journal file or a database) or ``sweep.workers``
above 1, the stage creates a study named by its inputs, runs ``sweep.workers`` local
``python -m housing.sweep worker`` processes against it (workers on other machines may join;
with ``sweep.workers: 0`` only they run trials and the stage coordinates), waits at most
``sweep.timeout_s`` for ``n_trials`` finished trials, then writes the same outputs from the
study, with each trial's worker and the shared run's counts.

After the search, on the same folds, the stage chooses the seed bag (``sweep.bagging``): how
many boosters of the best params the served model averages, the fewest within one paired SE
of the best among the sizes the serving budget allows (``housing.tuning.choose_bag``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from housing import stage
from housing.io import write_csv, write_json, write_yaml
from housing.params.sweep import SweepParams
from housing.sweep import SweepConfigError, SweepResult, SweepRunError, SweepSpec, run_sweep
from housing.sweep.inputs import TRAIN, checkout_plan
from housing.sweep.launch import run_local_workers, wait_for_trials
from housing.sweep.shared import SharedSweep, create_study, study_result
from housing.sweep.storage import JOURNAL, Storage, open_storage, parse_storage
from housing.tuning import at_bounds, choice_folds, choose_bag, plan_sweep, rounds_fitted

logger = logging.getLogger(__name__)

BEST_PARAMS = Path("models/best_params.yaml")
TRIALS = Path("reports/sweep/trials.csv")
HISTORY = Path("reports/sweep/history.csv")
SUMMARY = Path("reports/sweep/summary.json")
# Several local workers and no storage set: a journal file here (gitignored, not an output).
DEFAULT_JOURNAL = Path(".sweep/journal.log")


def trial_table(result: SweepResult) -> pd.DataFrame:
    """Trial history without wall-clock durations (they would break byte-identical reruns)."""
    return result.history_frame().drop(columns=["duration_s"], errors="ignore")


def sweep_storage(p: dict[str, Any]) -> tuple[Storage, int]:
    """``sweep.storage`` parsed for ``sweep.workers`` workers; several workers without a
    storage share :data:`DEFAULT_JOURNAL`."""
    workers = p.get("workers", 1)
    storage = parse_storage(p.get("storage") or "", workers=workers)
    if p["engine"] != "optuna" and (storage.shared or workers > 1):
        raise stage.StageError(
            "sweep.storage and sweep.workers apply to engine: optuna (W&B runs its own agents)"
        )
    if not storage.shared and workers > 1:
        storage = Storage(JOURNAL, str(DEFAULT_JOURNAL))
    return storage, workers


def run_shared(
    p: dict[str, Any], storage: Storage, workers: int
) -> tuple[str, SweepSpec, SharedSweep]:
    """Create (or resume) the study of this checkout's inputs, run the local workers on it,
    and read it back: (family, spec, shared result)."""
    opened = open_storage(storage)  # fails here, before any data is read, on a bad storage
    plan = checkout_plan(p)
    n_trials = int(p["n_trials"])
    study = create_study(opened, plan, n_trials=n_trials)
    logger.info(
        "sweep: study %s on %s (%s); join from elsewhere with: python -m housing.sweep worker "
        "--storage %s --study %s",
        study.study_name, storage.kind, storage.shown, storage.shown, study.study_name,
    )  # fmt: skip
    if workers:
        run_local_workers(
            storage.target, study.study_name, workers=workers, timeout_s=float(p["timeout_s"])
        )
    else:
        wait_for_trials(study, n_trials=n_trials, timeout_s=float(p["timeout_s"]))
    shared = study_result(study, plan.spec, n_trials=n_trials)
    if shared.n_finished < shared.n_trials:
        raise SweepRunError(
            f"sweep: study {study.study_name} has {shared.n_finished} of {shared.n_trials} "
            "trials finished after its workers stopped"
        )
    if shared.unfinished:
        logger.warning(
            "study %s: trial(s) %s never finished (a worker killed without a heartbeat to "
            "notice it); they are not counted",
            study.study_name, ", ".join(map(str, shared.unfinished)),
        )  # fmt: skip
    return plan.label, plan.spec, shared


def main() -> None:
    # The sweep's modules (and its remote workers) take the section as a mapping.
    p = stage.params("sweep", SweepParams).model_dump()
    sizes, max_rounds = sorted(set(p["bagging"]["sizes"])), p["bagging"]["max_rounds"]
    storage, workers = sweep_storage(p)
    extra: dict[str, Any] = {}
    if storage.shared:
        family, spec, shared = run_shared(p, storage, workers)
        result = shared.result
        folds = choice_folds(
            pd.read_parquet(TRAIN), n_splits=int(p["cv_folds"]), seed=int(p["seed"])
        )
        extra = {
            "storage": storage.kind,
            "study": result.sweep_id,
            "workers": workers,
            **shared.summary(),
        }
    else:
        plan = plan_sweep(p, pd.read_parquet(TRAIN))
        family, spec, folds = plan.family, plan.spec, plan.folds
        result = run_sweep(
            plan.spec,
            plan.objective,
            n_trials=int(p["n_trials"]),
            seed=int(p["seed"]),
            engine=str(p["engine"]),
            wandb_mode=os.environ.get("WANDB_MODE", "offline"),
            wandb_project=str(p["wandb_project"]),
        )
    # Every choice before the first write: a failure leaves no output half-written.
    bag = choose_bag(
        folds,
        family,
        result.best_params,
        seed=int(p["seed"]),
        sizes=sizes,
        max_rounds=max_rounds,
    )
    logger.info("bagging: %s booster(s) averaged (1-SE rule on the sweep's folds)", bag.chosen)
    history = trial_table(result)
    write_csv(TRIALS, history)
    write_csv(HISTORY, history[["trial", "value", "best_so_far", "state"]])
    write_yaml(
        BEST_PARAMS, {"family": family, "params": dict(result.best_params), "bag": bag.chosen}
    )
    walls = at_bounds(spec, result.best_params)
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
            "bagging": bag.report,
            **cost,
            **extra,
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
