"""Stage ``select``: compare model families by K-fold CV on the training split only.

Preprocessing (imputer, geo and neighbour features) is fitted inside each fold and cached,
so every family is scored on identical, leak-free fold matrices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import choices, stage
from housing.cv import Fold, fold_scores, make_folds
from housing.io import write_csv, write_json
from housing.model import FAMILIES, build_preprocessor, build_regressor

logger = logging.getLogger(__name__)

TRAIN = Path("data/split/train.parquet")
LEADERBOARD = Path("reports/select/leaderboard.json")
PLOT = Path("reports/select/leaderboard.csv")


def leaderboard(
    folds: list[Fold], families: Mapping[str, Mapping[str, Any]], *, seed: int
) -> pd.DataFrame:
    """CV RMSE (mean, std) of each family with its params, best first."""
    rows = []
    for family, params in families.items():
        if family not in FAMILIES:
            raise stage.StageError(
                f"select.families: unknown family {family!r}; choose from {', '.join(FAMILIES)}"
            )
        start = time.perf_counter()
        scores = np.array(
            list(fold_scores(folds, lambda f=family, p=params: build_regressor(f, p, seed=seed)))
        )
        rows.append(
            {
                "family": family,
                "cv_rmse": float(scores.mean()),
                "cv_rmse_std": float(scores.std()),
            }
        )
        logger.info(
            "%-22s cv_rmse %.0f ± %.0f (%.0fs)",
            family,
            scores.mean(),
            scores.std(),
            time.perf_counter() - start,
        )
    return pd.DataFrame(rows).sort_values("cv_rmse", kind="stable").reset_index(drop=True)


def main() -> None:
    p = stage.params("select")
    seed = int(p["seed"])
    train = pd.read_parquet(TRAIN)
    pre = build_preprocessor(choices.imputer(), choices.features(), seed=seed)
    folds = make_folds(train, pre, n_splits=int(p["cv_folds"]), seed=seed)
    board = leaderboard(folds, p["families"], seed=seed)
    chosen = str(board.iloc[0]["family"])
    write_csv(PLOT, board)
    write_json(
        LEADERBOARD,
        {
            "chosen": chosen,
            "cv_folds": int(p["cv_folds"]),
            "families": {
                r.family: {"cv_rmse": round(r.cv_rmse, 2), "cv_rmse_std": round(r.cv_rmse_std, 2)}
                for r in board.itertuples()
            },
        },
    )
    logger.info("chose %s", chosen)


if __name__ == "__main__":
    stage.run(main)
