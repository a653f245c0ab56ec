"""Stage ``featurize``: ratio, cluster-similarity and further spatial features.

K for the KMeans cluster similarity is chosen on the training split by silhouette. Beyond
the ratios and clusters, each further group (rotated coordinates, out-of-fold neighbour
prices) is kept only if it lowers cross-validated RMSE on train by at least
``min_gain_pct``. Everything is fitted on train only and then applied to both splits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline

from housing import stage
from housing.artifact import dumps_model
from housing.contract import TARGET
from housing.cv import cv_rmse, make_folds
from housing.io import read_json, write_bytes, write_csv, write_json, write_parquet
from housing.model import FeatureConfig, build_preprocessor

logger = logging.getLogger(__name__)

SPLIT_TRAIN = Path("data/split/train.parquet")
TRAIN_IN = Path("data/preprocessed/train.parquet")
TEST_IN = Path("data/preprocessed/test.parquet")
IMPUTATION = Path("reports/preprocess/imputation.json")
TRAIN_OUT, TEST_OUT = Path("data/features/train.parquet"), Path("data/features/test.parquet")
FEATURIZER = Path("models/featurizer.skops")
REPORT = Path("reports/featurize/features.json")
SILHOUETTE_PLOT = Path("reports/featurize/silhouette.csv")
ABLATION_PLOT = Path("reports/featurize/ablation.csv")

FURTHER_GROUPS = ("rotations", "neighbors")


def silhouette_curve(
    coords: np.ndarray, k_values: Sequence[int], *, sample_size: int, seed: int
) -> pd.DataFrame:
    """Silhouette score of KMeans on (lat, lon) for each K (sampled for speed, seeded)."""
    rows = []
    for k in k_values:
        labels = KMeans(int(k), n_init=10, random_state=seed).fit_predict(coords)
        score = silhouette_score(
            coords, labels, sample_size=min(sample_size, len(coords)), random_state=seed
        )
        rows.append({"k": int(k), "silhouette": float(score)})
    return pd.DataFrame(rows)


def choose_k(curve: pd.DataFrame) -> int:
    """The K with the highest silhouette (the smallest such K on ties)."""
    return int(curve.sort_values(["silhouette", "k"], ascending=[False, True]).iloc[0]["k"])


def ablation(
    train: pd.DataFrame,
    *,
    imputer: str,
    base: FeatureConfig,
    candidates: dict[str, dict],
    folds: int,
    seed: int,
    min_gain_pct: float,
) -> tuple[FeatureConfig, pd.DataFrame]:
    """Greedy forward selection of feature groups by CV RMSE on train (preprocessing per fold)."""
    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1, random_state=seed)

    def score(config: FeatureConfig) -> float:
        pre = build_preprocessor(imputer, config, seed=seed)
        return cv_rmse(make_folds(train, pre, n_splits=folds, seed=seed), lambda: clone(model))[0]

    current, best = base, score(base)
    rows = [{"step": "ratios+clusters", "cv_rmse": best, "kept": True}]
    logger.info("features ratios+clusters: cv_rmse %.0f", best)
    for group, change in candidates.items():
        trial = dataclasses.replace(current, **change)
        value = score(trial)
        kept = value < best * (1 - min_gain_pct / 100)
        rows.append({"step": f"+{group}", "cv_rmse": value, "kept": kept})
        logger.info("features +%s: cv_rmse %.0f (%s)", group, value, "kept" if kept else "dropped")
        if kept:
            current, best = trial, value
    return current, pd.DataFrame(rows)


def featurizer(config: FeatureConfig, *, seed: int) -> Pipeline:
    """The feature steps without the imputer (inputs are already imputed)."""
    steps = build_preprocessor("median", config, seed=seed).steps
    return Pipeline([s for s in steps if s[0] != "impute"])


def feature_tables(
    train: pd.DataFrame, test: pd.DataFrame, config: FeatureConfig, *, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, Pipeline]:
    """Fit the featurizer on train (neighbour prices out-of-fold) and transform both splits."""
    pipe = featurizer(config, seed=seed)
    X_train = pipe.fit_transform(train.drop(columns=[TARGET]), np.log(train[TARGET]))
    X_test = pipe.transform(test.drop(columns=[TARGET]))
    names = list(pipe.get_feature_names_out())
    out = []
    for X, frame in ((X_train, train), (X_test, test)):
        table = pd.DataFrame(X, columns=names)
        table[TARGET] = frame[TARGET].to_numpy()
        out.append(table)
    return out[0], out[1], pipe


def main() -> None:
    p = stage.params("featurize")
    seed = int(p["seed"])
    split_train = pd.read_parquet(SPLIT_TRAIN)
    train, test = pd.read_parquet(TRAIN_IN), pd.read_parquet(TEST_IN)
    imputer = read_json(IMPUTATION)["chosen"]

    k_values = range(int(p["k_min"]), int(p["k_max"]) + 1, int(p["k_step"]))
    if not len(k_values):
        raise stage.StageError("featurize: empty K range (check k_min <= k_max and k_step > 0)")
    curve = silhouette_curve(
        train[["latitude", "longitude"]].to_numpy(),
        k_values,
        sample_size=int(p["silhouette_sample"]),
        seed=seed,
    )
    k = choose_k(curve)
    logger.info("chose K=%d by silhouette", k)

    base = FeatureConfig(ratios=True, n_clusters=k, gamma=float(p["gamma"]))
    candidates = {
        "rotations": {"rotations": tuple(float(a) for a in p["rotations"])},
        "neighbors": {"neighbors": int(p["neighbors"]), "neighbor_folds": int(p["neighbor_folds"])},
    }
    config, steps = ablation(
        split_train,
        imputer=imputer,
        base=base,
        candidates=candidates,
        folds=int(p["cv_folds"]),
        seed=seed,
        min_gain_pct=float(p["min_gain_pct"]),
    )
    train_feat, test_feat, fitted = feature_tables(train, test, config, seed=seed)

    write_parquet(TRAIN_OUT, train_feat)
    write_parquet(TEST_OUT, test_feat)
    write_bytes(FEATURIZER, dumps_model(fitted))
    write_csv(SILHOUETTE_PLOT, curve)
    write_csv(ABLATION_PLOT, steps)
    write_json(
        REPORT,
        {
            "k": k,
            "silhouette": round(float(curve.silhouette.max()), 4),
            "config": config.to_dict(),
            "n_features": len(train_feat.columns) - 1,
            "ablation": {r.step: round(float(r.cv_rmse), 2) for r in steps.itertuples()},
        },
    )


if __name__ == "__main__":
    stage.run(main)
