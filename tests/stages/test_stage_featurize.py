"""Unit tests of the featurize stage's core: K by silhouette, greedy ablation, feature tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from housing.model import FeatureConfig
from stages.featurize import ablation, choose_k, feature_tables, featurizer, silhouette_curve

CANDIDATES = {
    "rotations": {"rotations": (45.0,)},
    "neighbors": {"neighbors": 5, "neighbor_folds": 3},
}
BASE = FeatureConfig(ratios=False, n_clusters=2)


def blobs(centers: list[tuple[float, float]], per_blob: int = 15) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(c, 0.05, size=(per_blob, 2)) for c in centers])


def test_silhouette_curve_finds_the_true_number_of_clusters():
    coords = blobs([(34.0, -118.0), (37.5, -122.0), (40.0, -121.0)])
    curve = silhouette_curve(coords, [2, 3, 4, 5], sample_size=1000, seed=0)
    assert curve["k"].tolist() == [2, 3, 4, 5]
    assert curve["silhouette"].between(-1, 1).all()
    assert choose_k(curve) == 3


def test_silhouette_curve_is_seeded():
    coords = blobs([(34.0, -118.0), (37.5, -122.0)], per_blob=20)
    a = silhouette_curve(coords, [2, 3], sample_size=10, seed=3)
    b = silhouette_curve(coords, [2, 3], sample_size=10, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_choose_k_takes_the_smallest_k_on_ties():
    curve = pd.DataFrame({"k": [4, 6, 8, 10], "silhouette": [0.5, 0.7, 0.7, 0.6]})
    assert choose_k(curve) == 6


def test_ablation_keeps_a_group_that_clearly_helps(make_districts):
    """Price set by one diagonal boundary: a 45° rotated coordinate splits it in one cut."""
    train = make_districts(300, seed=0)
    diagonal = train["longitude"] + train["latitude"]
    train["median_house_value"] = np.where(diagonal > diagonal.median(), 400_000.0, 100_000.0)

    config, steps = ablation(
        train, imputer="median", base=BASE, candidates=CANDIDATES, folds=2, seed=0, min_gain_pct=0.5
    )
    assert steps["step"].tolist() == ["ratios+clusters", "+rotations", "+neighbors"]
    base_rmse, rotated_rmse = steps["cv_rmse"].iloc[:2]
    assert rotated_rmse < base_rmse / 2
    assert steps["kept"].tolist()[:2] == [True, True]
    assert config.rotations == (45.0,)


def test_ablation_drops_groups_that_do_not_help(make_districts):
    """Price depends on income only: neither location group earns its place."""
    train = make_districts(300, seed=0)
    config, steps = ablation(
        train, imputer="median", base=BASE, candidates=CANDIDATES, folds=2, seed=0, min_gain_pct=0.5
    )
    assert steps["kept"].tolist() == [True, False, False]
    assert config == BASE


def test_ablation_gain_threshold_is_applied(make_districts):
    """Even a large gain is refused when it is below ``min_gain_pct``."""
    train = make_districts(300, seed=0)
    diagonal = train["longitude"] + train["latitude"]
    train["median_house_value"] = np.where(diagonal > diagonal.median(), 400_000.0, 100_000.0)
    config, steps = ablation(
        train,
        imputer="median",
        base=BASE,
        candidates={"rotations": CANDIDATES["rotations"]},
        folds=2,
        seed=0,
        min_gain_pct=90.0,
    )
    assert steps["kept"].tolist() == [True, False]
    assert config == BASE


def test_feature_tables_shapes_and_names(make_districts):
    train, test = make_districts(30, seed=1), make_districts(7, seed=2)
    config = FeatureConfig(
        ratios=True, n_clusters=3, rotations=(15.0, 30.0), neighbors=4, neighbor_folds=3
    )
    train_feat, test_feat, pipe = feature_tables(train, test, config, seed=0)

    n_categories = train["ocean_proximity"].nunique()
    expected_names = [
        "longitude",
        "latitude",
        "housing_median_age",
        "total_rooms",
        "total_bedrooms",
        "population",
        "households",
        "median_income",
        *[f"ocean_proximity={c}" for c in sorted(train["ocean_proximity"].unique())],
        "rooms_per_household",
        "bedrooms_per_room",
        "people_per_household",
        "cluster_0_similarity",
        "cluster_1_similarity",
        "cluster_2_similarity",
        "rotated_15deg",
        "rotated_30deg",
        "neighbor_4_mean_log_price",
        "median_house_value",
    ]
    assert len(expected_names) == 8 + n_categories + 3 + 3 + 2 + 1 + 1
    assert list(train_feat.columns) == expected_names
    assert list(test_feat.columns) == expected_names
    assert train_feat.shape == (30, len(expected_names))
    assert test_feat.shape == (7, len(expected_names))
    assert "impute" not in pipe.named_steps
    np.testing.assert_array_equal(test_feat["median_house_value"], test["median_house_value"])
    # Neighbour prices are log prices of training districts.
    log_prices = np.log(train["median_house_value"])
    feat = pd.concat([train_feat, test_feat])["neighbor_4_mean_log_price"]
    assert feat.between(log_prices.min(), log_prices.max()).all()


def test_featurizer_drops_only_the_imputer():
    pipe = featurizer(FeatureConfig(), seed=0)
    assert [name for name, _ in pipe.steps] == ["encode", "geo", "neighbors"]
