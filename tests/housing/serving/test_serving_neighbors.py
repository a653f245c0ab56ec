"""The pykdtree index picks exactly the neighbours scipy's cKDTree picked, so prices stay.

The serving path lost scipy (the API image carries numpy and pykdtree); the rule stayed:
order by distance, then training-row index. The reference below is the cKDTree code the
rule ran on before (query k + 8, widen while the last distance still ties the k-th), run
against the index on the whole data set, whose duplicate coordinates make ties common.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from housing.contract import NUMERIC_FEATURES, TARGET
from housing.features import NeighborPrice, _geo_coords
from housing.model import FeatureConfig, ModelSpec, build_model
from housing.serving import load_serving
from housing.serving import loader as serving_loader
from housing.serving.export import write_serving
from housing.serving.neighbors import KDIndex, build_tree, mean_targets, nearest

KS = (1, 2, 4, 8, 16, 32, 64, 72)


class CKDTreeReference:
    """The previous index: cKDTree queried for k + 8, widened while the k-th still ties."""

    def __init__(self, coords: np.ndarray) -> None:
        self.kd = cKDTree(np.asarray(coords, dtype=np.float64))
        self.n = self.kd.n

    def nearest(self, coords: np.ndarray, k: int) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        n, k = self.n, min(int(k), self.n)
        out = np.empty((len(coords), k), dtype=np.intp)
        pending, m = np.arange(len(coords)), min(self.n, k + 8)
        while len(pending):
            dist, idx = self.kd.query(coords[pending], k=m)
            dist, idx = dist.reshape(len(pending), m), idx.reshape(len(pending), m)
            settled = (dist[:, -1] > dist[:, k - 1]) if m < n else np.ones(len(pending), bool)
            order = np.lexsort((idx[settled], dist[settled]), axis=-1)[:, :k]
            out[pending[settled]] = np.take_along_axis(idx[settled], order, axis=1)
            pending = pending[~settled]
            m = min(n, 2 * m)
        return out


def _coords(frame: pd.DataFrame) -> np.ndarray:
    return _geo_coords(frame[list(NUMERIC_FEATURES)].to_numpy(float))


@pytest.fixture(scope="module")
def train_and_all(real_split, housing_df) -> tuple[np.ndarray, np.ndarray]:
    return _coords(real_split[0]), _coords(housing_df)


def test_the_data_set_is_full_of_ties(train_and_all):
    """Without ties at the k-th distance the comparison below would prove little."""
    train, every = train_and_all
    dist, _ = cKDTree(train).query(every, k=9)
    assert len(every) - len(np.unique(every, axis=0)) > 1_000  # duplicate coordinates
    assert (dist[:, 7] == dist[:, 8]).sum() > 5_000  # the 8th nearest ties the 9th


@pytest.mark.parametrize("k", KS)
def test_the_index_picks_what_cktree_picked_on_the_whole_data_set(train_and_all, k):
    """Every district (training rows, with their zero-distance duplicates, and test rows)
    against the training split: the same rows, in the same order."""
    train, every = train_and_all
    got = nearest(build_tree(train), every, k)
    np.testing.assert_array_equal(got, CKDTreeReference(train).nearest(every, k))


@pytest.mark.parametrize("k", [8, 64])
def test_one_row_at_a_time_picks_what_cktree_picked(train_and_all, k):
    """The API's single rows take their own path through the index: every 7th district."""
    train, every = train_and_all
    tree, reference = build_tree(train), CKDTreeReference(train)
    rows = every[::7]
    got = np.vstack([nearest(tree, row, k) for row in rows])
    np.testing.assert_array_equal(got, reference.nearest(rows, k))


def test_distances_are_the_ones_cktree_computes_bit_for_bit(train_and_all):
    """The tie rule compares computed distances: the index's arithmetic must be cKDTree's."""
    train, every = train_and_all
    dist, idx = cKDTree(train).query(every, k=16)
    diff = every[:, None, :] - train[idx]
    ours = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1])
    np.testing.assert_array_equal(ours, dist)


def test_out_of_fold_neighbour_prices_equal_the_cktree_ones(real_split):
    """NeighborPrice.fit_transform (training) on the real split, recomputed with cKDTree."""
    train = real_split[0]
    X = train.drop(columns=[TARGET, "ocean_proximity"]).to_numpy(float)
    y = np.log(train[TARGET].to_numpy(float))
    step = NeighborPrice(n_neighbors=8, scales=(16, 64))
    got = step.fit_transform(X, y)[:, -3:]
    from sklearn.model_selection import KFold

    expected = np.empty_like(got)
    coords = _geo_coords(X)
    for fit_idx, out_idx in KFold(5, shuffle=True, random_state=42).split(X):
        fit_idx = np.sort(fit_idx)
        ref = CKDTreeReference(coords[fit_idx])
        expected[out_idx] = mean_targets(ref, y[fit_idx], coords[out_idx], (8, 16, 64))
    np.testing.assert_array_equal(got, expected)


def test_serving_prices_equal_the_cktree_serving_prices(real_split, tmp_path, monkeypatch):
    """A bundle with every neighbourhood size the pipeline can choose, priced on the whole
    test split and row by row, with the index and then with cKDTree in its place: equal."""
    from housing.contract import derive_contract
    from housing.intervals import Interval

    train, test = real_split
    features = FeatureConfig(n_clusters=6, rotations=(30.0,), neighbors=8, neighbor_scales=(16, 64))
    spec = ModelSpec("median", features, "lightgbm", {"n_estimators": 40, "num_leaves": 15}, 0)
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    contract = derive_contract(train, margin=0.25).to_dict()
    interval = Interval(level=0.9, log_low=-0.25, log_high=0.22, n_calibration=16_512)
    sha = write_serving(tmp_path / "serving", model, contract=contract, interval=interval)
    (tmp_path / "model.json").write_text(f'{{"name": "t", "serving_sha256": "{sha}"}}')
    X = test.drop(columns=[TARGET])
    numeric = X[list(NUMERIC_FEATURES)].to_numpy(float)

    def prices() -> tuple[np.ndarray, np.ndarray]:
        serving = load_serving(tmp_path)
        cats = [serving.category_index(c) for c in X["ocean_proximity"]]
        rows = [serving.predict(numeric[i : i + 1], cats[i : i + 1])[0] for i in range(300)]
        return serving.predict(numeric, cats), np.array(rows)

    batch, single = prices()
    monkeypatch.setattr(serving_loader, "build_tree", CKDTreeReference)
    ref_batch, ref_single = prices()
    np.testing.assert_array_equal(batch, ref_batch)
    np.testing.assert_array_equal(single, ref_single)
    np.testing.assert_allclose(batch, model.predict(X), rtol=1e-9)


def _random_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clustered points on a coarse lattice: many exact duplicates and equal distances."""
    centres = rng.uniform(-5, 5, size=(4, 2))
    pts = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.5, size=(n, 2))
    return np.round(pts * 4) / 4


@pytest.mark.parametrize("seed", range(8))
def test_small_and_degenerate_sets_agree_with_cktree(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    train = _random_points(rng, n)
    far = rng.uniform(-40, 40, size=(20, 2))  # queries well outside the points' box
    queries = np.vstack([_random_points(rng, 100), train[:30], far])
    for k in (1, 3, 8, n + 5):
        got = KDIndex(train).nearest(queries, k)
        np.testing.assert_array_equal(got, CKDTreeReference(train).nearest(queries, k))


def test_one_location_and_one_line():
    same = np.tile([[-120.0, 36.0]], (50, 1))
    assert nearest(build_tree(same), same[:2], 5).tolist() == [[0, 1, 2, 3, 4]] * 2
    line = np.column_stack([np.linspace(0, 1, 30), np.zeros(30)])
    q = np.array([[0.5, 0.0], [2.0, 3.0]])
    np.testing.assert_array_equal(
        nearest(build_tree(line), q, 7), CKDTreeReference(line).nearest(q, 7)
    )


def test_non_finite_coordinates_are_refused():
    with pytest.raises(ValueError, match="finite"):
        KDIndex(np.array([[0.0, np.nan]]))
    index = KDIndex(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        index.nearest(np.array([[np.inf, 0.0]]), 1)


def test_serving_a_bundle_imports_no_scipy(model_bundle_dir):
    """The API image has no scipy: loading and pricing must not import it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import numpy as np\n"
        "from housing.serving import load_serving\n"
        f"s = load_serving({str(model_bundle_dir)!r})\n"
        "row = np.array([[-122.2, 37.8, 30.0, 2000.0, 400.0, 1000.0, 380.0, 4.0]])\n"
        "assert s.predict(row, [0])[0] > 0\n"
        "assert s.predict(np.repeat(row, 50, axis=0), [0] * 50).shape == (50,)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'sklearn'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
