"""Scikit-learn transformers that turn the nine raw district fields into model features.

The chain is ``RawEncoder`` (frame -> float matrix) -> an imputer -> ``GeoFeatures``
(ratios, cluster similarity, rotated coordinates) -> ``NeighborPrice`` (out-of-fold mean
target of nearby training districts). Each follows the scikit-learn estimator contract,
works on numpy arrays, and shares its numpy arithmetic with the serving path
(:mod:`housing.serving`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted, validate_data

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, normalize_category
from housing.serving.neighbors import build_tree, mean_targets
from housing.serving.transforms import (  # noqa: F401  (re-exported names)
    AGE,
    BEDROOMS,
    HOUSEHOLDS,
    INCOME,
    LAT,
    LON,
    POPULATION,
    ROOMS,
    geo_features,
)
from housing.serving.transforms import geo_coords as _geo_coords


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
        return geo_features(
            X,
            with_ratios=self.ratios,
            centers=self.cluster_centers_,
            gamma=self.gamma,
            angles=self.rotations,
        )

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


def _finite_coords(X: np.ndarray) -> np.ndarray:
    coords = _geo_coords(X)
    if not np.isfinite(coords).all():
        raise ValueError("Input contains NaN or infinity in longitude or latitude")
    return coords


class NeighborPrice(TransformerMixin, BaseEstimator):
    """Append the mean target of the ``n_neighbors`` nearest training districts, and of
    the ``scales`` nearest for each further count in ``scales`` (several neighbourhood
    sizes: a wider one averages more of the market around a district).

    Target-derived, so leak-free by construction: ``fit_transform`` on training rows
    returns out-of-fold values (each row sees only neighbours from other folds), while
    ``transform`` on new rows uses every training district. ``n_neighbors=0`` is a no-op.
    Neighbours are ordered by distance, then training-row index
    (:func:`housing.serving.neighbors.nearest`), the rule the serving path uses too. The
    KD-tree is a cache rebuilt from ``train_coords_``, never serialised.
    """

    def __init__(
        self,
        n_neighbors: int = 8,
        n_folds: int = 5,
        random_state: int = 42,
        scales: Sequence[int] = (),
    ) -> None:
        self.n_neighbors = n_neighbors
        self.n_folds = n_folds
        self.random_state = random_state
        self.scales = scales

    def _ks(self) -> tuple[int, ...]:
        return (int(self.n_neighbors), *(int(k) for k in self.scales))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def fit(self, X: np.ndarray, y: np.ndarray) -> NeighborPrice:
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        self.train_coords_ = _finite_coords(X)
        self.train_target_ = np.asarray(y, dtype=np.float64)
        self._build_tree()
        return self

    def _build_tree(self) -> None:
        """The KD-tree over ``train_coords_``: a cache, rebuilt on load, never serialised."""
        self.__dict__["_tree_cache"] = build_tree(self.train_coords_) if self.n_neighbors else None

    def _tree(self):
        if self.__dict__.get("_tree_cache") is None:
            self._build_tree()
        return self.__dict__["_tree_cache"]

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: object's is the live __dict__
        state.pop("_tree_cache", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "train_coords_" in self.__dict__:
            self._build_tree()

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "train_coords_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        if not self.n_neighbors:
            return X
        feat = mean_targets(self._tree(), self.train_target_, _finite_coords(X), self._ks())
        return np.column_stack([X, feat])

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, **_: object) -> np.ndarray:
        if y is None:
            raise ValueError("NeighborPrice needs the target to fit")
        self.fit(X, y)
        X = np.asarray(X, dtype=np.float64)
        if not self.n_neighbors:
            return X
        oof = np.empty((len(X), len(self._ks())))
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for fit_idx, out_idx in folds.split(X):
            # Ascending, so a tie broken by local index is broken by training-row index.
            fit_idx = np.sort(fit_idx)
            tree = build_tree(self.train_coords_[fit_idx])
            oof[out_idx] = mean_targets(
                tree, self.train_target_[fit_idx], self.train_coords_[out_idx], self._ks()
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
            names += [f"neighbor_{k}_mean_log_price" for k in self._ks()]
        return np.array(names, dtype=object)
