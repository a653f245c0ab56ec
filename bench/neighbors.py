"""The neighbour index's query time beside scipy's cKDTree under the same rule (issue 25).

``housing.serving.neighbors.KDIndex`` (pykdtree proposes candidates, the module applies the
(distance, row index) rule) against the rule as it ran on scipy's ``cKDTree`` before (query
k + 8, widen while the last distance ties the k-th): the same training coordinates (the
model bundle's), the same queries (real districts), medians of interleaved calls. Both
answer alike (checked here on every query; tests/housing/serving proves it on the data set).

    python bench/neighbors.py [--model-dir models] [--repeats 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.model_time import paired_median_ms  # noqa: E402
from bench.pipeline import DEFAULT_MIRROR, machine  # noqa: E402

logger = logging.getLogger("bench.neighbors")


class CKDTreeRule:
    """The rule on scipy's cKDTree, as the serving path ran it before pykdtree."""

    def __init__(self, coords: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        self.kd, self.n = cKDTree(coords), len(coords)

    def nearest(self, coords: np.ndarray, k: int) -> np.ndarray:
        k = min(k, self.n)
        out = np.empty((len(coords), k), dtype=np.intp)
        pending, m = np.arange(len(coords)), min(self.n, k + 8)
        while len(pending):
            dist, idx = self.kd.query(coords[pending], k=m)
            dist, idx = dist.reshape(len(pending), m), idx.reshape(len(pending), m)
            settled = dist[:, -1] > dist[:, k - 1] if m < self.n else np.ones(len(pending), bool)
            order = np.lexsort((idx[settled], dist[settled]), axis=-1)[:, :k]
            out[pending[settled]] = np.take_along_axis(idx[settled], order, axis=1)
            pending, m = pending[~settled], min(self.n, 2 * m)
        return out


def measure(train: np.ndarray, queries: np.ndarray, ks: tuple[int, ...], repeats: int) -> dict:
    from housing.serving.neighbors import KDIndex

    index, reference = KDIndex(train), CKDTreeRule(train)
    out: dict = {}
    for k in ks:
        for label, rows in (("1_row", queries[:1]), ("100_rows", queries[:100]), ("all", queries)):
            n = repeats if len(rows) <= 100 else max(5, repeats // 20)
            assert (index.nearest(rows, k) == reference.nearest(rows, k)).all()
            times = paired_median_ms(
                {
                    "pykdtree": lambda rows=rows, k=k: index.nearest(rows, k),
                    "ckdtree": lambda rows=rows, k=k: reference.nearest(rows, k),
                },
                repeats=n,
                warmup=3,
            )
            out[f"k{k}_{label}"] = times | {
                "rows": len(rows),
                "ratio": times["ckdtree"] / times["pykdtree"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data", type=Path, default=Path(DEFAULT_MIRROR))
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import pandas as pd

    from housing.serving.transforms import LAT, LON, geo_coords

    serving = args.model_dir / "serving"
    train = np.load(serving / "neighbor_coords.npy")
    config = json.loads((serving / "config.json").read_text())
    ks = (int(config["neighbors"]["k"]), 64)
    frame = pd.read_csv(args.data)
    X = np.zeros((len(frame), 8))
    X[:, LON], X[:, LAT] = frame["longitude"], frame["latitude"]
    queries = geo_coords(X)[np.random.default_rng(0).permutation(len(frame))]
    logger.info("%s", json.dumps(machine()))
    for name, row in measure(train, queries, ks, args.repeats).items():
        logger.info(
            "%-14s %6d rows: pykdtree %.4f ms, cKDTree %.4f ms (x%.1f)",
            name, row["rows"], row["pykdtree"], row["ckdtree"], row["ratio"],
        )  # fmt: skip


if __name__ == "__main__":
    main()
