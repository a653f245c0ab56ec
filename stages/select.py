"""Stage ``select``: choose the model family by a search of equal budget for every family.

Each family gets the same search on the same CV folds of the training split: ``n_trials``
trials of the sweep's declared method and pruner (``sweep.config``: TPE and Hyperband, whose
resource is boosting rounds or trees) over its space in ``sweep.spaces``. Each family's best
configuration is then refitted on every fold, and the winner is the simplest family (order
of ``select.families``) whose per-fold RMSE is within one paired standard error of the best
(:func:`housing.cv.one_se_choice`). The sweep stage searches the winner again, longer and
on folds of another seed, so its score is not measured on the folds that chose it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import stage
from housing.cv import Fold, one_se_choice, within_one_se
from housing.io import write_csv, write_json
from housing.model import FAMILIES
from housing.params.select import SelectParams
from housing.params.sweep import SearchParams
from housing.sweep import SweepConfigError, SweepRunError, parse_sweep_config, run_sweep
from housing.tuning import choice_folds, make_objective, params_key, sweep_declaration

logger = logging.getLogger(__name__)

TRAIN = Path("data/split/train.parquet")
LEADERBOARD = Path("reports/select/leaderboard.json")
PLOT = Path("reports/select/leaderboard.csv")


def search_families(
    folds: Sequence[Fold],
    families: Sequence[str],
    *,
    config: Mapping[str, Any],
    spaces: Mapping[str, Any],
    n_trials: int,
    seed: int,
    step: int,
) -> dict[str, dict[str, Any]]:
    """For each family: its best params after ``n_trials``, their per-fold RMSE, and the
    search's cost (trials pruned, rounds fitted)."""
    out = {}
    for family in families:
        if family not in FAMILIES:
            raise stage.StageError(
                f"select.families: unknown family {family!r}; choose from {', '.join(FAMILIES)}"
            )
        spec = parse_sweep_config(sweep_declaration(config, spaces, family))
        start = time.perf_counter()
        scores: dict[str, list[float]] = {}
        result = run_sweep(
            spec,
            make_objective(folds, family, seed=seed, step=step, per_fold=scores),
            n_trials=n_trials,
            seed=seed,
            wandb_mode="disabled",
            show_progress=False,
        )
        per_fold = scores[params_key(result.best_params)]
        out[family] = {
            "params": dict(result.best_params),
            "per_fold": per_fold,
            "trials": len(result.trials),
            "pruned": result.n_pruned,
            "seconds": time.perf_counter() - start,
        }
        logger.info(
            "%-22s best cv_rmse %.0f ± %.0f after %d trials (%d pruned, %.0fs)",
            family,
            np.mean(per_fold),
            np.std(per_fold),
            len(result.trials),
            result.n_pruned,
            out[family]["seconds"],
        )
    return out


def leaderboard(searched: Mapping[str, Mapping[str, Any]]) -> tuple[str, pd.DataFrame]:
    """The chosen family (1-SE rule toward the first listed) and the board, best first."""
    per_fold = {family: s["per_fold"] for family, s in searched.items()}
    chosen, within = one_se_choice(per_fold), set(within_one_se(per_fold))
    rows = [
        {
            "family": family,
            "cv_rmse": float(np.mean(s["per_fold"])),
            "cv_rmse_std": float(np.std(s["per_fold"])),
            "within_one_se": family in within,
            "chosen": family == chosen,
            "trials": int(s["trials"]),
            "pruned": int(s["pruned"]),
        }
        for family, s in searched.items()
    ]
    board = pd.DataFrame(rows).sort_values("cv_rmse", kind="stable").reset_index(drop=True)
    return chosen, board


def main() -> None:
    p = stage.params("select", SelectParams)
    # Only the declaration this stage searches with; select.seed != sweep.seed is a rule
    # across sections, checked by `housing-params check` (housing.params.file).
    search = stage.params("sweep", SearchParams).model_dump()
    folds = choice_folds(pd.read_parquet(TRAIN), n_splits=p.cv_folds, seed=p.seed)
    searched = search_families(
        folds,
        list(p.families),
        config=search["config"],
        spaces=search["spaces"],
        n_trials=p.n_trials,
        seed=p.seed,
        step=search["resource_step"],
    )
    chosen, board = leaderboard(searched)
    within = board.loc[board["within_one_se"], "family"].tolist()
    write_csv(PLOT, board)
    write_json(
        LEADERBOARD,
        {
            "chosen": chosen,
            "rule": "simplest family within one paired SE of the best (order of select.families)",
            "cv_folds": p.cv_folds,
            "n_trials": p.n_trials,
            "families": {
                r.family: {
                    "cv_rmse": round(r.cv_rmse, 2),
                    "cv_rmse_std": round(r.cv_rmse_std, 2),
                    "within_one_se": bool(r.within_one_se),
                    "pruned": int(r.pruned),
                    "params": searched[r.family]["params"],
                }
                for r in board.itertuples()
            },
        },
    )
    logger.info("chose %s (within one SE of the best: %s)", chosen, ", ".join(within))


if __name__ == "__main__":
    stage.run(main, expected=(SweepConfigError, SweepRunError))
