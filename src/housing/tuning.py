"""Hyperparameter search objectives, built from a params section and the training split.

One place builds them, so the select stage (a short search of every family), the sweep
stage (the winner's long search) and a ``housing-sweep worker`` on another machine (same
repository, same data) search the same functions. The test split is never read here.

The objective trains every CV fold in lockstep and reports the running mean validation RMSE
after every ``resource_step`` boosting rounds (trees for a random forest), so a trial that
Hyperband prunes really stops training: its remaining rounds are never fitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from housing import choices
from housing.cv import Fold, lockstep, make_folds, map_folds, paired_se, within_one_se
from housing.metrics import rmse
from housing.model import build_preprocessor, build_regressor
from housing.sweep import Objective, Reporter, SweepConfigError, SweepSpec, parse_sweep_config

# The parameter that counts each family's rounds (its Hyperband resource).
RESOURCE = {
    "lightgbm": "n_estimators",
    "hist_gradient_boosting": "max_iter",
    "random_forest": "n_estimators",
}


def sweep_declaration(
    config: Mapping[str, Any], spaces: Mapping[str, Any], family: str
) -> dict[str, Any]:
    """The W&B sweep dict for ``family``: shared keys plus that family's parameter space."""
    if family not in spaces:
        raise SweepConfigError(f"sweep.spaces has no search space for the family {family!r}")
    return {**config, "parameters": spaces[family]}


def _checkpoints(total: int, step: int) -> list[int]:
    if total < 1 or step < 1:
        raise ValueError(f"rounds and resource_step must be positive, got {total} and {step}")
    return sorted({*range(step, total, step), total})


def _set_thread_verbosity(lgb: Any, verbose: int) -> None:
    """Give the calling thread LightGBM's log level ``verbose``.

    LightGBM keeps its log level per thread, set where a Dataset or Booster is built.
    :func:`~housing.cv.lockstep` runs each step of the folds on new pool threads, so the
    rounds of a booster built with ``verbose=-1`` on another thread logged at the default
    level ("No further splits with positive gain": 258 lines in one sweep). Building a
    one-value Dataset sets the level of this thread (0.08 ms) and touches no booster.
    """
    lgb.Dataset(np.zeros((1, 1)), params={"verbose": verbose}).construct()


def _lightgbm_stages(
    params: Mapping[str, Any], fold: Fold, *, seed: int, step: int
) -> Iterator[tuple[int, np.ndarray]]:
    import lightgbm as lgb

    reg = build_regressor("lightgbm", params, seed=seed)
    raw = reg.get_params()
    total = int(raw.pop("n_estimators"))
    for key in ("importance_type", "class_weight"):
        raw.pop(key, None)
    raw["objective"] = raw.get("objective") or "regression"
    train = lgb.Dataset(fold.X_fit, label=fold.y_fit_log, params=raw)
    booster = lgb.Booster(params=raw, train_set=train)
    done = 0
    for checkpoint in _checkpoints(total, step):
        _set_thread_verbosity(lgb, raw["verbose"])
        while done < checkpoint:
            booster.update()
            done += 1
        yield checkpoint, booster.predict(fold.X_val)


def _warm_start_stages(
    family: str, params: Mapping[str, Any], fold: Fold, *, seed: int, step: int
) -> Iterator[tuple[int, np.ndarray]]:
    key = RESOURCE[family]
    total = int(params[key])
    reg = build_regressor(family, {**params, key: min(step, total)}, seed=seed)
    reg.set_params(warm_start=True)
    for checkpoint in _checkpoints(total, step):
        reg.set_params(**{key: checkpoint})
        reg.fit(fold.X_fit, fold.y_fit_log)
        yield checkpoint, reg.predict(fold.X_val)


def staged_predictions(
    family: str, params: Mapping[str, Any], fold: Fold, *, seed: int, step: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(rounds, log-price predictions on fold.X_val)`` every ``step`` rounds and at
    the last; the last equals a one-shot fit of ``build_regressor(family, params)``."""
    if family == "lightgbm":
        return _lightgbm_stages(params, fold, seed=seed, step=step)
    if family in RESOURCE:
        return _warm_start_stages(family, params, fold, seed=seed, step=step)
    reg = build_regressor(family, params, seed=seed).fit(fold.X_fit, fold.y_fit_log)
    return iter([(1, reg.predict(fold.X_val))])


def params_key(params: Mapping[str, Any]) -> str:
    """A stable key for one configuration (its params as sorted JSON)."""
    return json.dumps(dict(params), sort_keys=True, default=repr)


def make_objective(
    folds: Sequence[Fold],
    family: str,
    *,
    seed: int,
    step: int,
    per_fold: dict[str, list[float]] | None = None,
) -> Objective:
    """Objective: mean validation RMSE over the folds, trained in lockstep and reported to
    the pruner after every ``step`` rounds (the step number is the rounds trained).

    With ``per_fold``, each completed trial's per-fold RMSE is kept there under
    :func:`params_key` of its params (for rules that compare folds, like the 1-SE rule).
    """

    def objective(params: dict[str, Any], reporter: Reporter) -> float:
        stages = [staged_predictions(family, params, f, seed=seed, step=step) for f in folds]
        scores: list[float] = []
        for checkpoint in lockstep(stages):
            rounds = checkpoint[0][0]
            scores = [
                float(rmse(f.y_val, np.exp(pred)))
                for f, (_, pred) in zip(folds, checkpoint, strict=True)
            ]
            reporter.report(int(rounds), float(np.mean(scores)))
        if per_fold is not None:
            per_fold[params_key(params)] = scores
        return float(np.mean(scores))

    return objective


def fold_rmse(
    folds: Sequence[Fold], family: str, params: Mapping[str, Any], *, seed: int
) -> list[float]:
    """Per-fold validation RMSE (dollars) of one configuration, fitted in one shot."""

    def one(fold: Fold) -> float:
        reg = build_regressor(family, params, seed=seed).fit(fold.X_fit, fold.y_fit_log)
        return float(rmse(fold.y_val, np.exp(reg.predict(fold.X_val))))

    return map_folds(one, folds)


def bag_scores(
    folds: Sequence[Fold],
    family: str,
    params: Mapping[str, Any],
    *,
    seed: int,
    sizes: Sequence[int],
) -> dict[int, list[float]]:
    """Per-fold validation RMSE (dollars) of the mean log price of the first ``n`` boosters
    of seeds ``seed, seed + 1, ...`` for each ``n`` in ``sizes`` (the model
    ``build_regressor(..., bag=n)`` fits): the largest bag is fitted once per fold and the
    smaller ones are its prefixes, so every size is scored on the same members and folds."""
    top = max(sizes)

    def one(fold: Fold) -> list[float]:
        members = [
            build_regressor(family, params, seed=seed + i)
            .fit(fold.X_fit, fold.y_fit_log)
            .predict(fold.X_val)
            for i in range(top)
        ]
        return [float(rmse(fold.y_val, np.exp(np.mean(members[:n], axis=0)))) for n in sizes]

    rows = map_folds(one, folds)
    return {n: [row[j] for row in rows] for j, n in enumerate(sizes)}


@dataclass(frozen=True)
class BagChoice:
    """The number of boosters the served model averages, chosen by the 1-SE rule."""

    chosen: int
    report: dict[str, Any]


def choose_bag(
    folds: Sequence[Fold],
    family: str,
    params: Mapping[str, Any],
    *,
    seed: int,
    sizes: Sequence[int],
    max_rounds: int,
) -> BagChoice:
    """How many boosters of ``params`` to average: the fewest within one paired SE of the
    best (:func:`housing.cv.one_se_choice`), among the ``sizes`` whose total rounds
    (size x ``n_estimators``) stay within ``max_rounds`` (the serving latency budget).
    Families other than LightGBM are not averaged (the bundle serves one LightGBM)."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] != 1:
        raise ValueError(f"sweep.bagging.sizes must start at 1 (one booster); got {sizes}")
    if family != "lightgbm":
        return BagChoice(1, {"chosen": 1, "reason": f"{family} is not averaged"})
    rounds = int(params["n_estimators"])
    fits = [n for n in sizes if n * rounds <= max_rounds] or [1]
    scores = bag_scores(folds, family, params, seed=seed, sizes=fits)
    per_fold = {str(n): scores[n] for n in fits}
    within = within_one_se(per_fold)
    chosen = int(within[0])
    single = np.asarray(scores[1])
    candidates: dict[str, Any] = {}
    for n in sizes:
        row: dict[str, Any] = {"total_rounds": n * rounds, "within_budget": n in fits}
        if n in fits:
            values = np.asarray(scores[n])
            row |= {
                "cv_rmse": round(float(values.mean()), 2),
                "cv_rmse_std": round(float(values.std()), 2),
                "cv_rmse_folds": [round(float(v), 2) for v in values],
                "within_one_se": str(n) in within,
            }
            if n > 1:
                row |= {
                    "minus_one": round(float((values - single).mean()), 2),
                    "paired_se": round(paired_se(values, single), 2),
                }
        candidates[str(n)] = row
    report = {"chosen": chosen, "max_rounds": int(max_rounds), "candidates": candidates}
    return BagChoice(chosen, report)


def choice_folds(train: pd.DataFrame, *, n_splits: int, seed: int) -> list[Fold]:
    """CV folds of ``train`` with the upstream choices' preprocessing refitted in each."""
    pre = build_preprocessor(choices.imputer(), choices.features(), seed=seed)
    return make_folds(train, pre, n_splits=n_splits, seed=seed)


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep searches: the family, its declared space and the objective."""

    family: str
    spec: SweepSpec
    objective: Objective
    folds: list[Fold]


def plan_sweep(p: Mapping[str, Any], train: pd.DataFrame) -> SweepPlan:
    """The sweep of the ``sweep`` params section ``p`` over ``train`` (the split's train rows):
    the family the select stage chose, on folds seeded ``p["seed"]``, which must differ from
    the select stage's so the sweep's best score is not measured on the folds that chose it.

    Reads the upstream choices from their reports (relative to the working directory).
    """
    seed = int(p["seed"])
    family = choices.family()
    spec = parse_sweep_config(sweep_declaration(p["config"], p["spaces"], family))
    folds = choice_folds(train, n_splits=int(p["cv_folds"]), seed=seed)
    objective = make_objective(folds, family, seed=seed, step=int(p["resource_step"]))
    return SweepPlan(family=family, spec=spec, objective=objective, folds=folds)


def at_bounds(
    spec: SweepSpec, params: Mapping[str, Any], *, within: float = 0.02
) -> dict[str, str]:
    """The parameters whose value in ``params`` lies within ``within`` (a share of the
    searched range, measured on the log scale for log distributions) of a bound of its
    range: ``{"n_estimators": "max"}``. A search whose optimum sits on a wall has not
    found the optimum; widen the range there."""
    flags = {}
    for name, p in spec.parameters.items():
        dist = p.to_optuna()
        low, high = getattr(dist, "low", None), getattr(dist, "high", None)
        if low is None or high is None or name not in params or high <= low:
            continue
        value = float(params[name])
        if getattr(dist, "log", False):
            low, high, value = np.log(low), np.log(high), np.log(value)
        share = (value - low) / (high - low)
        if share <= within:
            flags[name] = "min"
        elif share >= 1 - within:
            flags[name] = "max"
    return flags


def rounds_fitted(
    trials: Sequence[Any], family: str, *, step: int, n_folds: int
) -> dict[str, int | float]:
    """Boosting rounds (trees) fitted across all trials and folds, against the rounds the
    same trials would have fitted without pruning: training time is proportional to them."""
    key = RESOURCE.get(family)
    if key is None:
        return {}
    fitted = planned = 0
    for t in trials:
        total = int(t.params[key])
        planned += total
        fitted += total if t.state == "complete" else min(total, len(t.intermediate) * step)
    return {
        "rounds_fitted": fitted * n_folds,
        "rounds_without_pruning": planned * n_folds,
        "rounds_saved_share": round(1 - fitted / planned, 4) if planned else 0.0,
    }
