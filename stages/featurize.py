"""Stage ``featurize``: choose the feature groups and their settings by CV RMSE on train.

Every choice here is made the same way: by the cross-validated RMSE of a fixed probe model
(histogram gradient boosting) on the training split, with the preprocessing refitted inside
each fold, and by the one-standard-error rule toward the simpler option
(:func:`housing.cv.one_se_choice`). In order:

1. each further group beyond ratios and clusters (rotated coordinates, out-of-fold
   neighbour prices) is kept only if it lowers CV RMSE by more than one paired SE;
2. the neighbour count, if that group is kept, fewest neighbours first, and then wider
   neighbourhoods as a further group (the mean price of the 16 and 64 nearest as well),
   kept by the same rule as in 1;
3. K, the number of KMeans clusters on (lat, lon), fewest clusters first (0 = none), with
   the groups kept.

The outputs are the decisions and their scores (``reports/featurize/``): downstream stages
rebuild the same unfitted preprocessing from them and refit it inside their own folds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor

from housing import stage
from housing.cv import fold_scores, make_folds, one_se_choice, within_one_se
from housing.io import read_json, write_csv, write_json
from housing.model import FeatureConfig, build_preprocessor
from housing.params.featurize import FeaturizeParams

logger = logging.getLogger(__name__)

TRAIN = Path("data/split/train.parquet")
IMPUTATION = Path("reports/preprocess/imputation.json")
REPORT = Path("reports/featurize/features.json")
K_PLOT = Path("reports/featurize/clusters.csv")
NEIGHBORS_PLOT = Path("reports/featurize/neighbors.csv")
ABLATION_PLOT = Path("reports/featurize/ablation.csv")


class Scorer:
    """Per-fold CV RMSE of the probe model for a feature configuration, on fixed folds
    (each configuration scored once: later steps reuse earlier scores)."""

    def __init__(self, train: pd.DataFrame, *, imputer: str, folds: int, seed: int) -> None:
        self.train, self.imputer, self.folds, self.seed = train, imputer, folds, seed
        self.model = HistGradientBoostingRegressor(
            max_iter=300, learning_rate=0.1, random_state=seed
        )
        self._done: dict[FeatureConfig, list[float]] = {}

    def __call__(self, config: FeatureConfig) -> list[float]:
        if config not in self._done:
            pre = build_preprocessor(self.imputer, config, seed=self.seed)
            folds = make_folds(self.train, pre, n_splits=self.folds, seed=self.seed)
            self._done[config] = [float(s) for s in fold_scores(folds, lambda: clone(self.model))]
        return list(self._done[config])


def ablation(
    score: Scorer,
    base: FeatureConfig,
    candidates: Mapping[str, Mapping[str, Any]],
    *,
    base_step: str | None = "ratios+clusters",
) -> tuple[FeatureConfig, pd.DataFrame]:
    """Greedy forward selection: keep a group only if the configuration without it is not
    within one paired SE of the one with it (the simpler wins ties). ``base_step`` names
    the base configuration's row of the table (None: no row for it)."""
    current, current_scores = base, score(base)
    rows = [] if base_step is None else [_row(base_step, current_scores, kept=True)]
    logger.info("features %s: cv_rmse %.0f", base_step or "base", np.mean(current_scores))
    for group, change in candidates.items():
        trial = dataclasses.replace(current, **change)
        trial_scores = score(trial)
        kept = one_se_choice({"without": current_scores, "with": trial_scores}) == "with"
        rows.append(_row(f"+{group}", trial_scores, kept=kept))
        logger.info(
            "features +%s: cv_rmse %.0f (%s)",
            group,
            np.mean(trial_scores),
            "kept" if kept else "dropped",
        )
        if kept:
            current, current_scores = trial, trial_scores
    return current, pd.DataFrame(rows)


def choose_setting(
    score: Scorer, base: FeatureConfig, field: str, values: Sequence[int]
) -> tuple[int, pd.DataFrame]:
    """The simplest value of ``field`` (``values`` ordered simplest first) within one paired
    SE of the best, each scored by CV with the rest of ``base`` unchanged."""
    if not values:
        raise stage.StageError(f"featurize: no candidate values for {field}")
    per_fold = {int(v): score(dataclasses.replace(base, **{field: int(v)})) for v in values}
    chosen = one_se_choice(per_fold)
    within = set(within_one_se(per_fold))
    table = pd.DataFrame(
        [
            {field: v, **_scores(s), "within_one_se": v in within, "chosen": v == chosen}
            for v, s in per_fold.items()
        ]
    )
    for row in table.itertuples():
        logger.info(
            "%s=%-3d cv_rmse %.0f%s", field, getattr(row, field), row.cv_rmse, " *" * row.chosen
        )
    if chosen == max(per_fold) and len(per_fold) > 1:
        logger.warning("%s=%d is the largest candidate: widen the range", field, chosen)
    return chosen, table


def _scores(per_fold: Sequence[float]) -> dict[str, float]:
    s = np.asarray(per_fold)
    return {"cv_rmse": float(s.mean()), "cv_rmse_std": float(s.std())}


def _row(step: str, per_fold: Sequence[float], *, kept: bool) -> dict[str, Any]:
    return {"step": step, **_scores(per_fold), "kept": kept}


def main() -> None:
    p = stage.params("featurize", FeaturizeParams)
    train = pd.read_parquet(TRAIN)
    imputer = read_json(IMPUTATION)["chosen"]
    score = Scorer(train, imputer=imputer, folds=p.cv_folds, seed=p.seed)
    k_values, neighbor_values = list(p.k_values), list(p.neighbor_values)

    base = FeatureConfig(ratios=True, n_clusters=p.k_start, gamma=p.gamma)
    candidates = {
        "rotations": {"rotations": tuple(p.rotations)},
        "neighbors": {"neighbors": neighbor_values[0], "neighbor_folds": p.neighbor_folds},
    }
    config, steps = ablation(score, base, candidates)
    neighbors_table = None
    if config.neighbors:
        n, neighbors_table = choose_setting(score, config, "neighbors", neighbor_values)
        config = dataclasses.replace(config, neighbors=n)
        wider = tuple(k for k in p.neighbor_scales if k > n)
        if wider:
            config, more = ablation(
                score, config, {"neighbor_scales": {"neighbor_scales": wider}}, base_step=None
            )
            steps = pd.concat([steps, more], ignore_index=True)
    k, k_table = choose_setting(score, config, "n_clusters", k_values)
    config = dataclasses.replace(config, n_clusters=k)
    logger.info("chose K=%d, neighbours=%d, rotations=%s", k, config.neighbors, config.rotations)

    write_csv(ABLATION_PLOT, steps)
    write_csv(K_PLOT, k_table.rename(columns={"n_clusters": "k"}))
    # Header only when the group was dropped: the plot exists either way.
    empty = pd.DataFrame(columns=["neighbors", "cv_rmse", "cv_rmse_std", "within_one_se", "chosen"])
    write_csv(NEIGHBORS_PLOT, empty if neighbors_table is None else neighbors_table)
    write_json(
        REPORT,
        {
            "config": config.to_dict(),
            "probe": "HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1)",
            "cv_folds": p.cv_folds,
            "rule": "one paired standard error, toward the simpler",
            "k": k,
            "k_search": _table_dict(k_table, "n_clusters"),
            "neighbors_search": (
                None if neighbors_table is None else _table_dict(neighbors_table, "neighbors")
            ),
            "ablation": {
                r.step: {"cv_rmse": round(r.cv_rmse, 2), "kept": bool(r.kept)}
                for r in steps.itertuples()
            },
        },
    )


def _table_dict(table: pd.DataFrame, field: str) -> dict[str, dict[str, Any]]:
    return {
        str(getattr(r, field)): {
            "cv_rmse": round(r.cv_rmse, 2),
            "cv_rmse_std": round(r.cv_rmse_std, 2),
            "within_one_se": bool(r.within_one_se),
        }
        for r in table.itertuples()
    }


if __name__ == "__main__":
    stage.run(main)
