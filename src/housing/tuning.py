"""The sweep's objective, built from the sweep's params section and the training split.

One place builds it, so the sweep stage and a ``housing-sweep worker`` on another machine
(same repository, same data) search the same function: the chosen family's space, the
upstream choices (imputer, features) read from their reports, and leak-free CV folds on
train. The test split is never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from housing import choices
from housing.cv import Fold, make_folds
from housing.metrics import rmse
from housing.model import build_preprocessor, build_regressor
from housing.sweep import Objective, Reporter, SweepConfigError, SweepSpec, parse_sweep_config


def sweep_declaration(p: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The W&B sweep dict for ``family``: shared keys plus that family's parameter space."""
    spaces = p["spaces"]
    if family not in spaces:
        raise SweepConfigError(f"sweep.spaces has no search space for the chosen family {family!r}")
    return {**p["config"], "parameters": spaces[family]}


def make_objective(folds: list[Fold], family: str, *, seed: int) -> Objective:
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


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep searches: the family, its declared space and the objective."""

    family: str
    spec: SweepSpec
    objective: Objective


def plan_sweep(p: Mapping[str, Any], train: pd.DataFrame) -> SweepPlan:
    """The sweep of the ``sweep`` params section ``p`` over ``train`` (the split's train rows).

    Reads the upstream choices from their reports (relative to the working directory).
    """
    seed = int(p["seed"])
    family = choices.family()
    spec = parse_sweep_config(sweep_declaration(p, family))
    pre = build_preprocessor(choices.imputer(), choices.features(), seed=seed)
    folds = make_folds(train, pre, n_splits=int(p["cv_folds"]), seed=seed)
    return SweepPlan(family=family, spec=spec, objective=make_objective(folds, family, seed=seed))
