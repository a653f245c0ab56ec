"""Leak-free cross-validation on the training split, with the preprocessing cached per fold.

Preprocessing (imputer, clusters, neighbour prices) is refitted inside every fold, so no
validation row influences the features it is scored with. Model comparisons and sweep
trials reuse the cached fold matrices: only the regressor is fitted per trial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

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


def kfold(n_splits: int, seed: int) -> KFold:
    """The project's fold scheme: shuffled K-fold with a fixed seed."""
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def make_folds(
    train: pd.DataFrame, preprocessor: object, *, n_splits: int, seed: int
) -> list[Fold]:
    """Fit a clone of ``preprocessor`` on each fold's training rows and transform both sides."""
    X = train.drop(columns=[TARGET])
    y = train[TARGET].to_numpy(float)
    folds = []
    for fit_idx, val_idx in kfold(n_splits, seed).split(X):
        pre = clone(preprocessor)
        y_fit_log = np.log(y[fit_idx])
        X_fit = pre.fit_transform(X.iloc[fit_idx], y_fit_log)
        X_val = pre.transform(X.iloc[val_idx])
        folds.append(Fold(X_fit, y_fit_log, X_val, y[val_idx]))
    return folds


def fold_scores(folds: list[Fold], make_regressor: Callable[[], object]) -> Iterator[float]:
    """Yield the validation RMSE (dollars) of a fresh regressor on each fold, in order."""
    for fold in folds:
        reg = make_regressor()
        reg.fit(fold.X_fit, fold.y_fit_log)
        yield rmse(fold.y_val, np.exp(reg.predict(fold.X_val)))


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
