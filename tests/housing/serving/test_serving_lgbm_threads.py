"""LightGBM's path (the fallback of the compiled predictor): batches on threads side by side.

Each batch takes a handle of its own from a pool, so the tree blocks of two batches never
re-initialise one handle's predictor under each other; single rows keep their own handle.
A real model of 180 trees (three copies of a 60-tree booster, averaged: the same function),
so batches go through the tree-block path.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from housing.serving import load_serving
from housing.serving.export import averaged_booster_text
from housing.serving.lgbm import BATCH_HANDLES, TREE_BLOCK, Booster


def test_batches_on_threads_score_as_serially(model_bundle_dir: Path, rng):
    text = (model_bundle_dir / "serving" / "booster.txt").read_text()
    single = Booster(text)
    booster = Booster(averaged_booster_text([text, text, text]))
    assert booster.num_trees > TREE_BLOCK, "batches must go through the tree blocks"
    serving = load_serving(model_bundle_dir)
    numeric = np.column_stack(
        [
            rng.uniform(-124, -115, 400),
            rng.uniform(33, 41, 400),
            rng.uniform(1, 52, 400),
            rng.uniform(100, 8000, 400),
            rng.uniform(20, 1500, 400),
            rng.uniform(100, 5000, 400),
            rng.uniform(20, 1500, 400),
            rng.uniform(0.5, 15, 400),
        ]
    )
    matrix = serving.features(numeric, rng.integers(0, len(serving.categories), 400))
    batches = [matrix[i : i + 50] for i in range(0, 400, 50)]
    expected = [booster.predict_raw(b) for b in batches]
    for got, want in zip(expected, batches, strict=True):  # the bag of copies is the model
        np.testing.assert_allclose(got, single.predict_raw(want), rtol=1e-12, atol=0)
    results: list[tuple[int, np.ndarray]] = []
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        barrier.wait()
        for _ in range(10):
            for b in range(t, len(batches), 4):
                results.append((b, booster.predict_raw(batches[b])))
            results.append((-1, booster.predict_raw(matrix[t : t + 1])))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 10 * (len(batches) + 4)
    for b, got in results:
        if b >= 0:
            np.testing.assert_array_equal(got, expected[b])
    assert booster._pool.qsize() == BATCH_HANDLES, "every batch handle went back to the pool"
