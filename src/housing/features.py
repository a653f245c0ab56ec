"""Scikit-learn transformers that turn the nine raw district fields into model features.

The chain is ``RawEncoder`` (frame -> float matrix) -> an imputer -> ``GeoFeatures``
(ratios, cluster similarity, rotated coordinates) -> ``NeighborPrice`` (out-of-fold mean
target of nearby training districts). Each follows the scikit-learn estimator contract,
works on numpy arrays, and has a matching numpy fast path in :mod:`housing.fastpath`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.model_selection import KFold
from sklearn.neighbors import KDTree
from sklearn.utils.validation import check_is_fitted, validate_data

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, normalize_category

# Column positions in the encoded matrix (numeric fields first, in contract order).
LON, LAT, AGE, ROOMS, BEDROOMS, POPULATION, HOUSEHOLDS, INCOME = range(8)


class RawEncoder(TransformerMixin, BaseEstimator):
    """Turn a frame of the nine raw fields into floats: eight numbers then a one-hot category.

    Category spelling is normalised (case, surrounding and repeated spaces), so
    ``" near bay"`` and ``"NEAR BAY"`` encode alike; unseen categories encode as all zeros.
    """

    def __init__(self, categories: Sequence[str] | None = None) -> None:
        self.categories = categories

    def fit(self, X: pd.DataFrame, y: object = None) -> RawEncoder:
        if self.categories is not None:
            cats = [normalize_category(c) for c in self.categories]
        else:
            cats = sorted({normalize_category(c) for c in X[CATEGORICAL_FEATURE].dropna()})
        self.categories_ = np.array(cats, dtype=object)
        self.feature_names_in_ = np.array([*NUMERIC_FEATURES, CATEGORICAL_FEATURE], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "categories_")
        numeric = X[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan)
        cats = X[CATEGORICAL_FEATURE].map(normalize_category).to_numpy(dtype=object)
        onehot = (cats[:, None] == self.categories_[None, :]).astype(np.float64)
        return np.hstack([numeric, onehot])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "categories_")
        cats = [f"{CATEGORICAL_FEATURE}={c}" for c in self.categories_]
        return np.array([*NUMERIC_FEATURES, *cats], dtype=object)


def _rotations(lon: np.ndarray, lat: np.ndarray, angles: Sequence[float]) -> np.ndarray:
    """Coordinates projected on axes rotated by each angle (degrees): tree-friendly diagonals."""
    cols = []
    for angle in angles:
        theta = np.deg2rad(angle)
        cols.append(lon * np.cos(theta) + lat * np.sin(theta))
    return np.column_stack(cols) if cols else np.empty((len(lon), 0))


def _ratios(X: np.ndarray) -> np.ndarray:
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


def _rbf(coords: np.ndarray, centers: np.ndarray, gamma: float) -> np.ndarray:
    """RBF similarity of each point to each centre."""
    sq = ((coords[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-gamma * sq)


class GeoFeatures(TransformerMixin, BaseEstimator):
    """Append ratio, cluster-similarity and rotated-coordinate features to encoded rows.

    Unsupervised: KMeans on (latitude, longitude) of the training rows only, RBF similarity
    to each centre. ``n_clusters=0`` or an empty ``rotations`` turn a group off.
    """

    def __init__(
        self,
        ratios: bool = True,
        n_clusters: int = 10,
        gamma: float = 1.0,
        rotations: Sequence[float] = (),
        random_state: int = 42,
    ) -> None:
        self.ratios = ratios
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.rotations = rotations
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None) -> GeoFeatures:
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        if self.n_clusters:
            km = KMeans(self.n_clusters, n_init=10, random_state=self.random_state)
            km.fit(X[:, [LAT, LON]])
            self.cluster_centers_ = km.cluster_centers_
        else:
            self.cluster_centers_ = np.empty((0, 2))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        parts = [X]
        if self.ratios:
            parts.append(_ratios(X))
        if len(self.cluster_centers_):
            parts.append(_rbf(X[:, [LAT, LON]], self.cluster_centers_, self.gamma))
        if len(self.rotations):
            parts.append(_rotations(X[:, LON], X[:, LAT], self.rotations))
        return np.hstack(parts)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "cluster_centers_")
        names = (
            list(input_features)
            if input_features is not None
            else [f"x{i}" for i in range(self.n_features_in_)]
        )
        if self.ratios:
            names += ["rooms_per_household", "bedrooms_per_room", "people_per_household"]
        names += [f"cluster_{i}_similarity" for i in range(len(self.cluster_centers_))]
        names += [f"rotated_{a:g}deg" for a in self.rotations]
        return np.array(names, dtype=object)


def _geo_coords(X: np.ndarray) -> np.ndarray:
    """(lat, lon * cos(lat)) so Euclidean distance approximates ground distance in California."""
    lat = X[:, LAT]
    return np.column_stack([lat, X[:, LON] * np.cos(np.deg2rad(lat))])


class NeighborPrice(TransformerMixin, BaseEstimator):
    """Append the mean target of the ``n_neighbors`` nearest training districts.

    Target-derived, so leak-free by construction: ``fit_transform`` on training rows
    returns out-of-fold values (each row sees only neighbours from other folds), while
    ``transform`` on new rows uses every training district. ``n_neighbors=0`` is a no-op.
    """

    def __init__(self, n_neighbors: int = 8, n_folds: int = 5, random_state: int = 42) -> None:
        self.n_neighbors = n_neighbors
        self.n_folds = n_folds
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def fit(self, X: np.ndarray, y: np.ndarray) -> NeighborPrice:
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        self.train_coords_ = _geo_coords(X)
        self.train_target_ = np.asarray(y, dtype=np.float64)
        self.tree_ = KDTree(self.train_coords_) if self.n_neighbors else None
        return self

    def _mean_target(self, tree: KDTree, target: np.ndarray, coords: np.ndarray) -> np.ndarray:
        k = min(self.n_neighbors, len(target))
        idx = tree.query(coords, k=k, return_distance=False)
        return target[idx].mean(axis=1)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "train_coords_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        if not self.n_neighbors:
            return X
        feat = self._mean_target(self.tree_, self.train_target_, _geo_coords(X))
        return np.column_stack([X, feat])

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, **_: object) -> np.ndarray:
        if y is None:
            raise ValueError("NeighborPrice needs the target to fit")
        self.fit(X, y)
        X = np.asarray(X, dtype=np.float64)
        if not self.n_neighbors:
            return X
        oof = np.empty(len(X))
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for fit_idx, out_idx in folds.split(X):
            tree = KDTree(self.train_coords_[fit_idx])
            oof[out_idx] = self._mean_target(
                tree, self.train_target_[fit_idx], self.train_coords_[out_idx]
            )
        return np.column_stack([X, oof])

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "train_coords_")
        names = (
            list(input_features)
            if input_features is not None
            else [f"x{i}" for i in range(self.n_features_in_)]
        )
        if self.n_neighbors:
            names.append(f"neighbor_{self.n_neighbors}_mean_log_price")
        return np.array(names, dtype=object)
