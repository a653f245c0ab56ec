"""The serving bundle: same prices as the skops pipeline, a defined kNN tie rule, tamper-proof.

Equality runs on the real stratified test split (20 %, seed 42, as stages/split.py cuts it),
rows without total_bedrooms included, for every imputer and every feature group the
pipeline can choose, with small fast LightGBM settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing.contract import NUMERIC_FEATURES, TARGET, derive_contract, normalize_category
from housing.features import NeighborPrice, _geo_coords
from housing.intervals import Interval
from housing.model import IMPUTERS, FeatureConfig, ModelSpec, build_model
from housing.serving import BundleError, load_serving
from housing.serving import loader as serving_loader
from housing.serving.export import ExportError, serving_files, write_serving
from housing.serving.neighbors import build_tree, mean_target, nearest

SMALL = {"n_estimators": 60, "num_leaves": 15}
# The bundle carries any calibrated interval; its calibration is tested in test_housing_intervals.
INTERVAL = Interval(level=0.9, log_low=-0.2513, log_high=0.2261, n_calibration=16_512)
ALL_GROUPS = FeatureConfig(n_clusters=6, gamma=1.0, rotations=(15.0, 45.0), neighbors=8)
FEATURE_VARIANTS = {
    "no-ratios": FeatureConfig(ratios=False, n_clusters=6, rotations=(30.0,), neighbors=8),
    "no-clusters": FeatureConfig(n_clusters=0, rotations=(30.0,), neighbors=8),
    "no-rotations": FeatureConfig(n_clusters=6, neighbors=8),
    "wider-neighbourhoods": FeatureConfig(n_clusters=6, neighbors=4, neighbor_scales=(16, 64)),
    "no-neighbours": FeatureConfig(n_clusters=6, rotations=(30.0,), neighbors=0),
    "bare": FeatureConfig(ratios=False, n_clusters=0, neighbors=0),
}


def _drop_from_manifest(bundle: Path, name: str) -> str:
    """Remove ``name`` from the bundle's manifest (a hand-made bundle); the new manifest sha."""
    manifest_path = bundle / "serving" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["files"][name]
    manifest_path.write_text(json.dumps(manifest))
    return serving_loader.sha256_hex(manifest_path.read_bytes())


@pytest.fixture(scope="module")
def contract(housing_df: pd.DataFrame) -> dict:
    return derive_contract(housing_df, margin=0.25).to_dict()


def _bundle(tmp: Path, model, contract: dict) -> Path:
    sha = write_serving(tmp / "serving", model, contract=contract, interval=INTERVAL)
    meta = {"name": "t", "serving_sha256": sha, "contract": contract}
    (tmp / "model.json").write_text(json.dumps(meta))
    return tmp


def _arrays(serving, frame: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    numeric = frame[list(NUMERIC_FEATURES)].to_numpy(float)
    return numeric, [serving.category_index(c) for c in frame["ocean_proximity"]]


def _assert_same_prices(model, real_split, tmp_path: Path) -> None:
    _, test = real_split
    X = test.drop(columns=[TARGET])
    contract = derive_contract(real_split[0], margin=0.25).to_dict()
    serving = load_serving(_bundle(tmp_path, model, contract))
    numeric, cats = _arrays(serving, X)
    assert np.isnan(numeric[:, 4]).sum() > 30, "the real test split lacks bedrooms in ~40 rows"
    expected = model.predict(X)
    got = serving.predict(numeric, cats)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
    # The model matrix itself, column by column (the booster's input).
    np.testing.assert_allclose(
        serving.features(numeric, cats), model.regressor_[:-1].transform(X), rtol=1e-12, atol=0
    )
    # Single rows (the API's inline path), with and without bedrooms.
    missing = np.flatnonzero(np.isnan(numeric[:, 4]))[:3]
    for i in [0, 1, *missing.tolist()]:
        one = serving.predict(numeric[i : i + 1], cats[i : i + 1])
        np.testing.assert_allclose(one, expected[[i]], rtol=1e-12, atol=0)


@pytest.mark.parametrize("imputer", IMPUTERS)
def test_bundle_prices_equal_the_pipeline_for_every_imputer(imputer, real_split, tmp_path):
    train, _ = real_split
    model = build_model(ModelSpec(imputer, ALL_GROUPS, "lightgbm", SMALL, seed=0))
    model.fit(train.drop(columns=[TARGET]), train[TARGET])
    _assert_same_prices(model, real_split, tmp_path)


@pytest.mark.parametrize("variant", sorted(FEATURE_VARIANTS))
def test_bundle_prices_equal_the_pipeline_for_every_feature_group(variant, real_split, tmp_path):
    train, _ = real_split
    spec = ModelSpec("median", FEATURE_VARIANTS[variant], "lightgbm", SMALL, seed=0)
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    _assert_same_prices(model, real_split, tmp_path)


def test_a_bag_of_boosters_is_served_as_their_mean(real_split, tmp_path):
    """A seed bag (VotingRegressor of LightGBMs) is exported as one booster of every member's
    trees with leaves divided by the bag size: the bundle's prices equal the bag's, across
    tree blocks, single rows and missing bedrooms."""
    from housing.serving import lgbm

    train, _ = real_split
    spec = ModelSpec("median", ALL_GROUPS, "lightgbm", {**SMALL, "subsample": 0.8,
                     "subsample_freq": 1, "colsample_bytree": 0.6}, seed=0, bag=3)  # fmt: skip
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    members = model.regressor_.named_steps["regressor"].estimators_
    assert [m.random_state for m in members] == [0, 1, 2]
    assert len({m.booster_.model_to_string() for m in members}) == 3, "seeds must differ"
    _assert_same_prices(model, real_split, tmp_path)
    serving = load_serving(tmp_path)
    assert serving._booster.num_trees == 3 * SMALL["n_estimators"] > lgbm.TREE_BLOCK
    config = json.loads((tmp_path / "serving" / "config.json").read_text())
    assert config["booster"] == {
        "family": "lightgbm", "num_trees": 180, "members": 3, "output": "raw"
    }  # fmt: skip


def test_averaging_refuses_boosters_of_other_features():
    import lightgbm

    from housing.serving.export import averaged_booster_text

    rng = np.random.default_rng(0)
    texts = []
    for n_features in (3, 4):
        X = rng.normal(size=(300, n_features))
        model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, X[:, 0])
        texts.append(model.booster_.model_to_string())
    with pytest.raises(ExportError, match="different features"):
        averaged_booster_text(texts)
    assert averaged_booster_text(texts[:1]) == texts[0]


@pytest.fixture(scope="module")
def small_model(small_train: pd.DataFrame):
    spec = ModelSpec("iterative", ALL_GROUPS, "lightgbm", {"n_estimators": 250}, seed=0)
    return build_model(spec).fit(small_train.drop(columns=[TARGET]), small_train[TARGET])


def test_batches_scored_in_tree_blocks_equal_the_pipeline(
    small_model, contract, housing_df, tmp_path
):
    from housing.serving import lgbm

    serving = load_serving(_bundle(tmp_path, small_model, contract))
    assert serving._booster.num_trees > lgbm.TREE_BLOCK
    X = housing_df.drop(columns=[TARGET]).iloc[5000:5200]
    np.testing.assert_allclose(
        serving.predict(*_arrays(serving, X)), small_model.predict(X), rtol=1e-12, atol=0
    )
    # A single row after block predictions still scores with every tree.
    one = X.iloc[[3]]
    np.testing.assert_allclose(
        serving.predict(*_arrays(serving, one)), small_model.predict(one), rtol=1e-12
    )


def test_bundle_bytes_are_deterministic_and_survive_the_skops_round_trip(small_model, contract):
    from housing.artifact import dumps_model, loads_model
    from housing.io import sha256_bytes

    first = serving_files(small_model, contract, INTERVAL)
    assert serving_files(small_model, contract, INTERVAL) == first
    data = dumps_model(small_model)
    reloaded = loads_model(data, expected_sha256=sha256_bytes(data))
    assert serving_files(reloaded, contract, INTERVAL) == first
    manifest = json.loads(first["manifest.json"])
    assert manifest["format"] == "housing-serving" and manifest["format_version"] == 3
    assert json.loads(first["contract.json"]) == contract
    assert json.loads(first["interval.json"]) == INTERVAL.to_dict()
    assert set(manifest["files"]) == set(first) - {"manifest.json"}
    assert not any(name.endswith(".pkl") for name in first)


def test_categories_normalise_like_the_contract(small_model, contract, tmp_path):
    serving = load_serving(_bundle(tmp_path, small_model, contract))
    for label in (" near  bay", "NEAR BAY", "<1h ocean", "\tInland "):
        assert serving_loader.normalize_category(label) == normalize_category(label)
    assert serving.category_index(" near  bay") == serving.category_index("NEAR BAY")
    with pytest.raises(KeyError):
        serving.category_index("ON THE MOON")


@pytest.mark.parametrize(
    "name",
    [
        "booster.txt",
        "config.json",
        "contract.json",
        "interval.json",
        "neighbor_target.npy",
        "iterative_coef.npy",
    ],
)
def test_one_flipped_byte_is_refused_naming_the_file(name, small_model, contract, tmp_path):
    bundle = _bundle(tmp_path, small_model, contract)
    path = bundle / "serving" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"serving file .*{name}: sha256 mismatch"):
        load_serving(bundle)


def test_tampered_manifest_missing_file_and_wrong_expected_sha(small_model, contract, tmp_path):
    bundle = _bundle(tmp_path, small_model, contract)
    with pytest.raises(BundleError, match=r"manifest\.json sha256 mismatch"):
        load_serving(bundle, expected_sha256="0" * 64)
    (bundle / "serving" / "cluster_centers.npy").unlink()
    with pytest.raises(BundleError, match=r"cluster_centers\.npy not found"):
        load_serving(bundle)
    (bundle / "model.json").write_text(json.dumps({"name": "t"}))
    with pytest.raises(BundleError, match="records no serving_sha256"):
        load_serving(bundle)


@pytest.mark.parametrize("version", [1, 2, 4])
def test_another_format_version_is_refused(version, small_model, contract, tmp_path):
    # 1 = before contract.json; 2 = before interval.json; 4 = a future layout.
    bundle = _bundle(tmp_path, small_model, contract)
    manifest_path = bundle / "serving" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = version
    manifest_path.write_text(json.dumps(manifest))
    sha = serving_loader.sha256_hex(manifest_path.read_bytes())
    with pytest.raises(
        serving_loader.FormatVersionError,
        match=rf"format version {version}; this code reads version 3",
    ):
        load_serving(bundle, expected_sha256=sha)


def test_the_contract_comes_from_the_hashed_bundle_not_model_json(small_model, contract, tmp_path):
    bundle = _bundle(tmp_path, small_model, contract)
    meta = json.loads((bundle / "model.json").read_text())
    forged = json.loads(json.dumps(contract))
    name = next(iter(forged["features"]))
    forged["features"][name]["max"] = 1e12
    meta["contract"] = forged
    (bundle / "model.json").write_text(json.dumps(meta))
    serving = load_serving(bundle)
    assert serving.contract == contract  # the verified copy; model.json's is not read
    assert serving.contract["features"][name]["max"] != 1e12
    # A manifest without contract.json (a hand-made bundle) is refused.
    sha = _drop_from_manifest(bundle, "contract.json")
    with pytest.raises(BundleError, match=r"lists no config\.json, .*contract\.json.*required"):
        load_serving(bundle, expected_sha256=sha)


def test_a_contract_is_required_to_export(small_model):
    with pytest.raises(ExportError, match="data contract"):
        serving_files(small_model, {}, INTERVAL)


def test_an_interval_is_required_to_export(small_model, contract):
    with pytest.raises(ExportError, match="prediction interval"):
        serving_files(small_model, contract, None)
    with pytest.raises(ExportError, match="prediction interval"):
        serving_files(small_model, contract, INTERVAL.to_dict())


def test_the_interval_round_trips_exactly_and_is_applied_vectorised(
    small_model, contract, housing_df, tmp_path
):
    serving = load_serving(_bundle(tmp_path, small_model, contract))
    assert serving.interval == INTERVAL  # floats survive JSON exactly
    X = housing_df.drop(columns=[TARGET]).iloc[:300]
    prices, low, high = serving.predict_interval(*_arrays(serving, X))
    np.testing.assert_array_equal(prices, serving.predict(*_arrays(serving, X)))
    np.testing.assert_allclose(low, prices * np.exp(INTERVAL.log_low), rtol=1e-15)
    np.testing.assert_allclose(high, prices * np.exp(INTERVAL.log_high), rtol=1e-15)
    assert (low <= prices).all() and (prices <= high).all()
    assert np.all(np.diff(high - low)[np.diff(prices) > 0] > 0)  # width grows with price


def _rehashed(bundle: Path, edit) -> str:
    """Rewrite interval.json with ``edit`` and re-hash the manifest (a consistent forgery)."""
    path = bundle / "serving" / "interval.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    manifest_path = bundle / "serving" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    raw = path.read_bytes()
    manifest["files"]["interval.json"] = {
        "sha256": serving_loader.sha256_hex(raw),
        "bytes": len(raw),
    }
    manifest_path.write_text(json.dumps(manifest))
    return serving_loader.sha256_hex(manifest_path.read_bytes())


def test_a_tampered_interval_is_refused(small_model, contract, tmp_path):
    bundle = _bundle(tmp_path, small_model, contract)
    # Narrowed and the manifest re-hashed: it no longer matches model.json's serving_sha256
    # (the registry's tag, or the champion's signature, which covers model.json too:
    # tests/serve/test_signed_champion.py).
    _rehashed(bundle, lambda d: d.update(log_low=-0.01, log_high=0.01))
    with pytest.raises(BundleError, match=r"manifest\.json sha256 mismatch"):
        load_serving(bundle)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d.update(level=1.5), "strictly between 0 and 1"),
        (lambda d: d.update(level="0.9"), "must be a number"),
        (lambda d: d.update(log_low=0.1), "log_low <= 0 <= log_high"),
        (lambda d: d.pop("log_high"), r"lacks field\(s\): \['log_high'\]"),
        (lambda d: d.update(extra=1), "unknown interval field"),
        (lambda d: d.update(n_calibration=0), "positive count"),
    ],
)
def test_a_malformed_interval_is_refused_with_one_line(
    edit, reason, small_model, contract, tmp_path
):
    bundle = _bundle(tmp_path, small_model, contract)
    sha = _rehashed(bundle, edit)
    with pytest.raises(BundleError, match=rf"unusable interval\.json .*{reason}"):
        load_serving(bundle, expected_sha256=sha)


def test_a_manifest_without_the_interval_is_refused(small_model, contract, tmp_path):
    bundle = _bundle(tmp_path, small_model, contract)
    sha = _drop_from_manifest(bundle, "interval.json")
    with pytest.raises(BundleError, match=r"lists no .*interval\.json \(all required\)"):
        load_serving(bundle, expected_sha256=sha)


def test_only_lightgbm_is_exported(small_train):
    spec = ModelSpec("median", FeatureConfig(n_clusters=0), "linear", {"alpha": 1.0}, seed=0)
    model = build_model(spec).fit(small_train.drop(columns=[TARGET]), small_train[TARGET])
    with pytest.raises(ExportError, match="LightGBM models only"):
        serving_files(model, derive_contract(small_train, margin=0.25).to_dict(), INTERVAL)


def test_the_serving_loader_imports_no_sklearn_pandas_or_lightgbm_package(tmp_path):
    import subprocess

    code = (
        "import sys; import housing.serving as s; s.load_serving; "
        "from housing.serving import loader, lgbm; lgbm.library(); "
        "bad = [m for m in ('sklearn', 'pandas', 'skops', 'mlflow', 'lightgbm', "
        "'scipy.optimize') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# --- the tie rule: distance, then training-row index --------------------------------------


def _brute(train: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Reference: exact distances, ordered by (distance, index), first k."""
    d = np.sqrt(((query[:, None, :] - train[None, :, :]) ** 2).sum(axis=2))
    idx = np.broadcast_to(np.arange(len(train)), d.shape)
    return np.lexsort((idx, d), axis=-1)[:, :k]


def test_nearest_orders_by_distance_then_index_on_real_coordinates(real_split):
    train, test = real_split
    tc = _geo_coords(train[list(NUMERIC_FEATURES)].to_numpy(float))
    qc = _geo_coords(test[list(NUMERIC_FEATURES)].to_numpy(float))[:600]
    got = nearest(build_tree(tc), qc, 8)
    expected = _brute(tc, qc, 8)
    # Distances of the chosen sets agree exactly, and ties resolve to the same rows.
    d_got = np.sqrt(((qc[:, None, :] - tc[got]) ** 2).sum(axis=2))
    d_exp = np.sqrt(((qc[:, None, :] - tc[expected]) ** 2).sum(axis=2))
    np.testing.assert_allclose(d_got, d_exp, rtol=1e-12)
    same_set = [set(a) == set(b) for a, b in zip(got, expected, strict=True)]
    assert np.mean(same_set) == 1.0


def test_a_constructed_tie_picks_the_lowest_training_indices_in_training_and_serving():
    # Rows 0..5 share one location, rows 6.. are elsewhere; k=3 must take rows 0, 1, 2.
    rng = np.random.default_rng(0)
    X = np.zeros((30, 13))
    X[:, 0], X[:, 1] = -120.0 - rng.uniform(1, 2, 30), 36.0 + rng.uniform(1, 2, 30)
    X[:6, 0], X[:6, 1] = -120.0, 36.0
    y = np.arange(30, dtype=float)
    step = NeighborPrice(n_neighbors=3, n_folds=3, random_state=0).fit(X, y)
    query = X[:1].copy()
    assert step.transform(query)[0, -1] == pytest.approx(np.mean([0.0, 1.0, 2.0]), abs=0)
    # The serving path's arrays and function give the same choice.
    chosen = nearest(build_tree(step.train_coords_), _geo_coords(query), 3)
    assert chosen.tolist() == [[0, 1, 2]]
    # Out of fold (training): each tied row sees the lowest-index tied rows of other folds.
    oof = NeighborPrice(n_neighbors=3, n_folds=3, random_state=0).fit_transform(X, y)[:, -1]
    from sklearn.model_selection import KFold

    for fit_idx, out_idx in KFold(3, shuffle=True, random_state=0).split(X):
        fit_idx = np.sort(fit_idx)
        for i in out_idx[out_idx < 6]:
            tied = [j for j in fit_idx if j < 6][:3]
            if len(tied) == 3:
                assert oof[i] == pytest.approx(np.mean(y[tied]), abs=0)


def test_the_tie_rule_is_whatever_the_order_tied_rows_were_given():
    # Six rows tie at the query's location, each with its own target; k=4 must take the four
    # tied rows that come first in the order the training rows were given, in training
    # (NeighborPrice.transform) and serving (housing.serving.neighbors) alike.
    X = np.zeros((12, 13))
    X[:, 0], X[:, 1] = -121.0, 37.0
    X[6:, 0] = -119.0
    y = np.r_[np.arange(6, dtype=float) * 10.0 + 1.0, np.full(6, 500.0)]
    query = np.zeros((1, 13))
    query[0, :2] = -121.0, 37.0
    seen = set()
    for seed in range(6):
        perm = np.arange(12) if seed == 0 else np.random.default_rng(seed).permutation(12)
        Xp, yp = X[perm], y[perm]
        tied = np.flatnonzero(perm < 6)[:4]  # lowest training-row indices among the tied rows
        expected = float(np.mean(yp[tied]))
        step = NeighborPrice(n_neighbors=4).fit(Xp, yp)
        assert step.transform(query)[0, -1] == pytest.approx(expected, abs=1e-12)
        tree = build_tree(step.train_coords_)
        assert sorted(nearest(tree, _geo_coords(query), 4)[0].tolist()) == tied.tolist()
        got = mean_target(tree, step.train_target_, _geo_coords(query), 4)
        assert got[0] == pytest.approx(expected, abs=1e-12)
        seen.add(expected)
    assert len(seen) > 1, "the permutations must change which tied rows win"


def test_the_kd_tree_is_a_cache_not_state(small_model):
    import pickle

    step = small_model.regressor_.named_steps["neighbors"]
    assert step.__dict__["_tree_cache"] is not None
    assert "_tree_cache" not in step.__getstate__()
    clone = pickle.loads(pickle.dumps(step))
    assert clone.__dict__["_tree_cache"] is not step.__dict__["_tree_cache"]  # rebuilt
    q = np.zeros((1, step.n_features_in_))
    q[0, :2] = -122.0, 37.5
    np.testing.assert_array_equal(clone.transform(q), step.transform(q))


def test_a_failing_second_rename_leaves_the_old_directory_in_place(tmp_path, monkeypatch):
    from housing.io import replace_dir

    dest = tmp_path / "serving"
    dest.mkdir()
    (dest / "manifest.json").write_text("old")
    staging = tmp_path / ".serving.new"
    staging.mkdir()
    (staging / "manifest.json").write_text("new")
    real_rename = Path.rename

    def rename(self, target):
        if self == staging:
            raise OSError("disk full (simulated)")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        replace_dir(staging, dest)
    assert (dest / "manifest.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]  # no staging, no .old
    monkeypatch.undo()
    staging.mkdir()
    (staging / "manifest.json").write_text("new")
    replace_dir(staging, dest)
    assert (dest / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]


def test_write_serving_keeps_the_old_bundle_when_the_swap_fails(
    small_model, contract, tmp_path, monkeypatch
):
    bundle = _bundle(tmp_path, small_model, contract)
    before = (bundle / "serving" / "manifest.json").read_bytes()
    real_rename = Path.rename

    def rename(self, target):
        if (
            Path(target) == bundle / "serving"
            and self.name.startswith(".serving.")
            and (".old." not in self.name)
        ):
            raise OSError("simulated")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        write_serving(bundle / "serving", small_model, contract=contract, interval=INTERVAL)
    monkeypatch.undo()
    assert (bundle / "serving" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["model.json", "serving"]
    load_serving(bundle)
