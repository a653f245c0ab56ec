"""Leak-free cross-validation on the training split, with the preprocessing cached per fold.

Preprocessing (imputer, clusters, neighbour prices) is refitted inside every fold, so no
validation row influences the features it is scored with. Model comparisons and sweep
trials reuse the cached fold matrices: only the regressor is fitted per trial.

Folds are independent, so they are fitted concurrently (:func:`map_folds`): one thread per
fold, each with single-threaded native pools, on as many cores as the process may use.
LightGBM, scikit-learn's tree builders, KMeans and BLAS release the GIL while they compute,
so two cores fit two folds at once; each fold's arithmetic is the same as when run alone, so
the results do not depend on the number of workers (``HOUSING_CV_WORKERS``, a test proves it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold

from housing.contract import TARGET
from housing.metrics import rmse


@dataclass(frozen=True)
class Fold:
    """One fold's features (preprocessing fitted on ``X_fit`` rows only) and log targets."""

    X_fit: np.ndarray
    y_fit_log: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray


T = TypeVar("T")
R = TypeVar("R")

WORKERS_ENV = "HOUSING_CV_WORKERS"


def cv_workers() -> int:
    """Folds fitted at once: ``HOUSING_CV_WORKERS``, else the cores this process may use."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {raw!r}")
        return int(raw)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_folds(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, in order, with up to :func:`cv_workers` threads."""
    items = list(items)
    workers = min(cv_workers(), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fold") as pool:
        return list(pool.map(fn, items))


_END = object()


def lockstep(iterators: Sequence[Iterator[T]]) -> Iterator[tuple[T, ...]]:
    """``zip(*iterators, strict=True)``, advancing the iterators concurrently at each step
    (:func:`map_folds`): the folds of one trial train side by side, checkpoint by checkpoint."""
    while True:
        step = map_folds(lambda it: next(it, _END), iterators)
        ended = [value is _END for value in step]
        if all(ended):
            return
        if any(ended):
            raise ValueError("lockstep: the iterators have different lengths")
        yield tuple(step)


def kfold(n_splits: int, seed: int) -> KFold:
    """The project's fold scheme: shuffled K-fold with a fixed seed."""
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def make_folds(
    train: pd.DataFrame, preprocessor: object, *, n_splits: int, seed: int
) -> list[Fold]:
    """Fit a clone of ``preprocessor`` on each fold's training rows and transform both sides."""
    X = train.drop(columns=[TARGET])
    y = train[TARGET].to_numpy(float)

    def one(split: tuple[np.ndarray, np.ndarray]) -> Fold:
        fit_idx, val_idx = split
        pre = clone(preprocessor)
        y_fit_log = np.log(y[fit_idx])
        X_fit = pre.fit_transform(X.iloc[fit_idx], y_fit_log)
        X_val = pre.transform(X.iloc[val_idx])
        return Fold(X_fit, y_fit_log, X_val, y[val_idx])

    return map_folds(one, kfold(n_splits, seed).split(X))


def fold_scores(folds: list[Fold], make_regressor: Callable[[], object]) -> Iterator[float]:
    """The validation RMSE (dollars) of a fresh regressor on each fold, in order."""

    def one(fold: Fold) -> float:
        reg = make_regressor()
        reg.fit(fold.X_fit, fold.y_fit_log)
        return rmse(fold.y_val, np.exp(reg.predict(fold.X_val)))

    yield from map_folds(one, folds)


def cv_rmse(folds: list[Fold], make_regressor: Callable[[], object]) -> tuple[float, float]:
    """Mean and standard deviation of the per-fold RMSE."""
    scores = np.array(list(fold_scores(folds, make_regressor)))
    return float(scores.mean()), float(scores.std())


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of the mean per-fold difference ``a - b`` (same folds, paired)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2:
        raise ValueError("a paired standard error needs at least two folds")
    return float(d.std(ddof=1) / np.sqrt(d.size))


def within_one_se(per_fold: Mapping[str, Sequence[float]]) -> list[str]:
    """The candidates whose CV RMSE is within one paired standard error of the best one.

    ``per_fold`` maps a candidate to its per-fold RMSE, every candidate on the same folds.
    Candidate ``c`` is within one SE of the best ``b`` when ``mean(c - b) <= SE(c - b)``:
    their difference is indistinguishable from fold noise. Order follows ``per_fold``.
    """
    if not per_fold:
        raise ValueError("no candidates to choose from")
    scores = {name: np.asarray(v, dtype=float) for name, v in per_fold.items()}
    sizes = {s.size for s in scores.values()}
    if len(sizes) != 1:
        raise ValueError(f"candidates were scored on different numbers of folds: {sorted(sizes)}")
    best = min(scores, key=lambda name: float(scores[name].mean()))
    return [
        name
        for name, s in scores.items()
        if name == best or float((s - scores[best]).mean()) <= paired_se(s, scores[best])
    ]


def one_se_choice(per_fold: Mapping[str, Sequence[float]]) -> str:
    """The simplest candidate within one paired SE of the best: ``per_fold`` is ordered
    simplest first (the 1-SE rule: prefer the simpler model unless the data say otherwise)."""
    return within_one_se(per_fold)[0]
