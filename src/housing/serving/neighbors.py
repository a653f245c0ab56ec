"""The k-nearest-neighbour rule shared by training and serving: distance, then row index.

Many California districts share coordinates, so the k-th nearest neighbour is often tied
(1,559 of the 4,128 test districts tie at k=8): which tied district a kNN code returns is
then an implementation detail. :func:`nearest` makes it a rule instead: order by distance,
break exact ties by the lower training-row index, take k. Training (``NeighborPrice``) and
serving (:mod:`housing.serving`) both call it, so they pick the same neighbours.

Imports numpy and scipy.spatial only (the serving path must not import scikit-learn).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

# Neighbours queried beyond k, so most ties at the k-th distance are resolved in one query.
SLACK = 8


def build_tree(coords: np.ndarray) -> cKDTree:
    """A KD-tree over training coordinates (row i of ``coords`` is training row i)."""
    return cKDTree(np.asarray(coords, dtype=np.float64))


def _query(tree: cKDTree, coords: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = tree.query(coords, k=m)
    return dist.reshape(len(coords), m), idx.reshape(len(coords), m)


def nearest(tree: cKDTree, coords: np.ndarray, k: int) -> np.ndarray:
    """Indices (rows, k) of the k training rows nearest each of ``coords``.

    Ordered by (distance, training-row index): of several rows at exactly the k-th
    distance, the lowest indices win, whatever order the KD-tree visited them in. Queries
    k + SLACK neighbours and enlarges the query for any row whose last returned distance
    still equals its k-th (the tie may continue beyond what was returned).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    n = tree.n
    k = min(int(k), n)
    out = np.empty((len(coords), k), dtype=np.intp)
    pending = np.arange(len(coords))
    m = min(n, k + SLACK)
    while len(pending):
        dist, idx = _query(tree, coords[pending], m)
        # A row is settled when everything tied with its k-th neighbour was returned.
        settled = (dist[:, -1] > dist[:, k - 1]) if m < n else np.ones(len(pending), bool)
        order = np.lexsort((idx[settled], dist[settled]), axis=-1)[:, :k]
        out[pending[settled]] = np.take_along_axis(idx[settled], order, axis=1)
        pending = pending[~settled]
        m = min(n, 2 * m)
    return out


def mean_target(tree: cKDTree, target: np.ndarray, coords: np.ndarray, k: int) -> np.ndarray:
    """Mean training target of each row's k nearest training rows (the tie rule above)."""
    return target[nearest(tree, coords, k)].mean(axis=1)


def mean_targets(
    tree: cKDTree, target: np.ndarray, coords: np.ndarray, ks: tuple[int, ...]
) -> np.ndarray:
    """``mean_target`` for each k in ``ks`` (rows, len(ks)), from one neighbour query.

    The (distance, row index) order is total, so the k nearest are the first k of the
    ``max(ks)`` nearest, in the same order: each column equals ``mean_target(..., k)``.
    """
    idx = nearest(tree, coords, max(ks))
    values = target[idx]
    return np.column_stack([values[:, : min(int(k), tree.n)].mean(axis=1) for k in ks])
