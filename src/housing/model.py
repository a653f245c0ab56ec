"""Assemble the one model object that maps the nine raw fields to a price.

``build_model`` returns ``TransformedTargetRegressor(Pipeline([encode, impute, geo,
neighbours, regressor]), log/exp)``: preprocessing lives inside the artifact, so nothing
downstream re-implements it, and the regressor learns log prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor, VotingRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from housing.features import GeoFeatures, NeighborPrice, RawEncoder
from housing.names import FAMILIES, IMPUTERS


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature groups the featurize stage kept, and their settings."""

    ratios: bool = True
    n_clusters: int = 10
    gamma: float = 1.0
    rotations: tuple[float, ...] = ()
    neighbors: int = 0
    neighbor_folds: int = 5
    neighbor_scales: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        data = dict(data)
        data["rotations"] = tuple(float(a) for a in data.get("rotations", ()))
        data["neighbor_scales"] = tuple(int(k) for k in data.get("neighbor_scales", ()))
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratios": self.ratios,
            "n_clusters": int(self.n_clusters),
            "gamma": float(self.gamma),
            "rotations": [float(a) for a in self.rotations],
            "neighbors": int(self.neighbors),
            "neighbor_folds": int(self.neighbor_folds),
            "neighbor_scales": [int(k) for k in self.neighbor_scales],
        }


def build_imputer(strategy: str, *, seed: int) -> Any:
    """An imputer for the encoded matrix; only ``total_bedrooms`` is ever missing."""
    if strategy in ("median", "mean"):
        return SimpleImputer(strategy=strategy)
    if strategy == "knn":
        return KNNImputer(n_neighbors=5)
    if strategy == "iterative":
        return IterativeImputer(random_state=seed, max_iter=10)
    raise ValueError(f"unknown imputer {strategy!r}; choose one of {', '.join(IMPUTERS)}")


def build_preprocessor(
    imputer: str,
    features: FeatureConfig,
    *,
    seed: int,
    categories: tuple[str, ...] | None = None,
) -> Pipeline:
    """Raw frame -> feature matrix, with every statistic fitted on the rows given to ``fit``."""
    return Pipeline(
        [
            ("encode", RawEncoder(categories=categories)),
            ("impute", build_imputer(imputer, seed=seed)),
            (
                "geo",
                GeoFeatures(
                    ratios=features.ratios,
                    n_clusters=features.n_clusters,
                    gamma=features.gamma,
                    rotations=features.rotations,
                    random_state=seed,
                ),
            ),
            (
                "neighbors",
                NeighborPrice(
                    n_neighbors=features.neighbors,
                    n_folds=features.neighbor_folds,
                    random_state=seed,
                    scales=features.neighbor_scales,
                ),
            ),
        ]
    )


def build_regressor(
    family: str, params: Mapping[str, Any], *, seed: int, bag: int = 1
) -> RegressorMixin:
    """A regressor of ``family`` with ``params``, single-threaded and seeded for determinism.

    ``bag`` > 1 (LightGBM only: the serving bundle averages boosters exactly, see
    housing.serving.export) averages that many boosters of seeds ``seed .. seed + bag - 1``:
    a ``VotingRegressor``, whose prediction is the members' mean (of log prices here).
    """
    if isinstance(bag, bool) or not isinstance(bag, int) or bag < 1:
        raise ValueError(f"bag must be a positive integer, got {bag!r}")
    if bag > 1:
        if family != "lightgbm":
            raise ValueError(f"only lightgbm boosters are averaged (bag > 1), not {family!r}")
        members = [
            (f"seed_{seed + i}", build_regressor(family, params, seed=seed + i)) for i in range(bag)
        ]
        return VotingRegressor(members)
    params = dict(params)
    if family == "linear":
        return Pipeline([("scale", StandardScaler()), ("ridge", Ridge(**params))])
    if family == "random_forest":
        return RandomForestRegressor(random_state=seed, n_jobs=1, **params)
    if family == "hist_gradient_boosting":
        # No internal early stopping: the number of rounds is a tuned choice (its CV resource).
        return HistGradientBoostingRegressor(random_state=seed, early_stopping=False, **params)
    if family == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            random_state=seed,
            n_jobs=1,
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
            **params,
        )
    raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")


def log_target(regressor: Any) -> TransformedTargetRegressor:
    """Wrap ``regressor`` so it learns log prices and predicts dollars."""
    return TransformedTargetRegressor(
        regressor=regressor, func=np.log, inverse_func=np.exp, check_inverse=False
    )


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the unfitted model: the pipeline's choices and params."""

    imputer: str
    features: FeatureConfig
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 42
    bag: int = 1


def build_model(spec: ModelSpec, *, categories: tuple[str, ...] | None = None) -> Any:
    """The full, unfitted raw-fields-to-price estimator."""
    pipe = Pipeline(
        [
            *build_preprocessor(
                spec.imputer, spec.features, seed=spec.seed, categories=categories
            ).steps,
            ("regressor", build_regressor(spec.family, spec.params, seed=spec.seed, bag=spec.bag)),
        ]
    )
    return log_target(pipe)
