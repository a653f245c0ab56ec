"""Numpy feature code shared by the training transformers and the serving path.

:mod:`housing.features` (scikit-learn estimators) and :mod:`housing.serving` (plain arrays)
both compute features with these functions, so the two cannot drift apart. The imputer
functions re-apply a fitted scikit-learn imputer from its exported arrays with the same
numpy operations, in the same order, as scikit-learn 1.9's ``transform``.

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Column positions in the encoded matrix (numeric fields first, in contract order).
LON, LAT, AGE, ROOMS, BEDROOMS, POPULATION, HOUSEHOLDS, INCOME = range(8)


def rotations(lon: np.ndarray, lat: np.ndarray, angles: Sequence[float]) -> np.ndarray:
    """Coordinates projected on axes rotated by each angle (degrees): tree-friendly diagonals."""
    cols = []
    for angle in angles:
        theta = np.deg2rad(angle)
        cols.append(lon * np.cos(theta) + lat * np.sin(theta))
    return np.column_stack(cols) if cols else np.empty((len(lon), 0))


def ratios(X: np.ndarray) -> np.ndarray:
    """Rooms per household, bedrooms per room, people per household (NaN-safe)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.column_stack(
            [
                X[:, ROOMS] / X[:, HOUSEHOLDS],
                X[:, BEDROOMS] / X[:, ROOMS],
                X[:, POPULATION] / X[:, HOUSEHOLDS],
            ]
        )
    out[~np.isfinite(out)] = 0.0
    return out


def rbf(coords: np.ndarray, centers: np.ndarray, gamma: float) -> np.ndarray:
    """RBF similarity of each point to each centre."""
    sq = ((coords[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-gamma * sq)


def geo_coords(X: np.ndarray) -> np.ndarray:
    """(lat, lon * cos(lat)) so Euclidean distance approximates ground distance in California."""
    lat = X[:, LAT]
    return np.column_stack([lat, X[:, LON] * np.cos(np.deg2rad(lat))])


def geo_features(
    X: np.ndarray,
    *,
    with_ratios: bool,
    centers: np.ndarray,
    gamma: float,
    angles: Sequence[float],
) -> np.ndarray:
    """``GeoFeatures.transform``: append ratios, cluster similarities, rotated coordinates."""
    parts = [X]
    if with_ratios:
        parts.append(ratios(X))
    if len(centers):
        parts.append(rbf(X[:, [LAT, LON]], centers, gamma))
    if len(angles):
        parts.append(rotations(X[:, LON], X[:, LAT], angles))
    return np.hstack(parts)


def nan_euclidean(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """scikit-learn's ``nan_euclidean_distances(X, Y)`` (float64, NaN = missing), same ops."""
    X = np.array(X, dtype=np.float64)
    Y = np.array(Y, dtype=np.float64)
    missing_X, missing_Y = np.isnan(X), np.isnan(Y)
    X[missing_X] = 0
    Y[missing_Y] = 0
    XX_norm = np.einsum("ij,ij->i", X, X)[:, None]
    YY_norm = np.einsum("ij,ij->i", Y, Y)[None, :]
    distances = -2 * (X @ Y.T)
    distances += XX_norm
    distances += YY_norm
    np.maximum(distances, 0, out=distances)
    distances -= np.dot(X * X, missing_Y.T)
    distances -= np.dot(missing_X, (Y * Y).T)
    np.clip(distances, 0, None, out=distances)
    present_count = np.dot(1 - missing_X, (~missing_Y).T)
    distances[present_count == 0] = np.nan
    np.maximum(1, present_count, out=present_count)
    distances /= present_count
    distances *= X.shape[1]
    return np.sqrt(distances, out=distances)


def knn_impute(X: np.ndarray, fit_X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """``KNNImputer(weights="uniform", metric="nan_euclidean").transform`` from its fit data.

    Every column of the fitted data had values (no empty column), as the export checks.
    """
    X = np.array(X, dtype=np.float64)
    mask = np.isnan(X)
    if not mask.any():
        return X
    mask_fit = np.isnan(fit_X)
    rows = np.flatnonzero(mask.any(axis=1))
    dist = nan_euclidean(X[rows], fit_X)
    for col in range(X.shape[1]):
        col_mask = mask[rows, col]
        if not col_mask.any():
            continue
        donors = np.flatnonzero(~mask_fit[:, col])
        receivers = rows[col_mask]
        sub = dist[col_mask][:, donors]
        all_nan = np.isnan(sub).all(axis=1)
        if all_nan.any():
            X[receivers[all_nan], col] = np.ma.array(fit_X[:, col], mask=mask_fit[:, col]).mean()
            receivers, sub = receivers[~all_nan], sub[~all_nan]
            if not len(receivers):
                continue
        k = min(n_neighbors, len(donors))
        donors_idx = np.argpartition(sub, k - 1, axis=1)[:, :k]
        donors_dist = sub[np.arange(len(donors_idx))[:, None], donors_idx]
        weights = np.ones_like(donors_dist)
        weights[np.isnan(donors_dist)] = 0.0
        values = fit_X[donors, col].take(donors_idx)
        values = np.ma.array(values, mask=mask_fit[donors, col].take(donors_idx))
        X[receivers, col] = np.ma.average(values, axis=1, weights=weights).data
    return X


def iterative_impute(
    X: np.ndarray,
    *,
    initial_fill: np.ndarray,
    sequence: Sequence[tuple[int, np.ndarray, np.ndarray, float]],
    min_value: np.ndarray,
    max_value: np.ndarray,
) -> np.ndarray:
    """``IterativeImputer.transform`` (``sample_posterior=False``, linear estimators).

    ``sequence`` is the fitted imputation sequence as (feature, neighbour features, coef,
    intercept): each step predicts the missing entries of one feature from the current
    fill of its neighbour features, clipped to the fitted bounds.
    """
    X = np.asarray(X, dtype=np.float64)
    mask = np.isnan(X)
    if not mask.any():
        return X.copy()
    filled = np.where(mask, initial_fill[None, :], X)
    filled = np.asfortranarray(filled)
    for feat, neighbors, coef, intercept in sequence:
        missing = mask[:, feat]
        if not missing.any():
            continue
        X_test = filled[:, neighbors][missing, :]
        values = X_test @ coef + intercept
        filled[missing, feat] = np.clip(values, min_value[feat], max_value[feat])
    filled[~mask] = X[~mask]
    return filled
