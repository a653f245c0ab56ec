"""Leak-free cross-validation on the training split, with the preprocessing cached per fold.

Preprocessing (imputer, clusters, neighbour prices) is refitted inside every fold, so no
validation row influences the features it is scored with. Model comparisons and sweep
trials reuse the cached fold matrices: only the regressor is fitted per trial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
