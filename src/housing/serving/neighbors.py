"""The k-nearest-neighbour rule shared by training and serving: distance, then row index.

Many California districts share coordinates, so the k-th nearest neighbour is often tied
(1,559 of the 4,128 test districts tie at k=8): which tied district a kNN code returns is
then an implementation detail. :func:`nearest` makes it a rule instead: order by distance,
break exact ties by the lower training-row index, take k. Training (``NeighborPrice``) and
serving (:mod:`housing.serving`) both call it, so they pick the same neighbours.

The search is pykdtree's KD-tree (a 1.5 MB C extension on numpy: the API image carries
neither scipy nor scikit-learn). It only proposes candidates: the rule is applied here, on
distances computed as scipy's cKDTree computed them before (``sqrt(dx*dx + dy*dy)`` in
float64), so every tie, and so every neighbour price, is the same as it was with cKDTree;
tests/housing/serving checks this against cKDTree on the whole data set.
"""

from __future__ import annotations

import numpy as np
from pykdtree.kdtree import KDTree

# Candidates asked of the tree beyond k, for the points tied at the k-th distance (the
# data set holds up to 9 districts at one location); doubled for a query until settled.
EXTRA = 8
# Points per leaf of the tree: speed only (16 is fastest for 1 and 100 queries here).
LEAF_SIZE = 16
# Tolerance on the settling test: a computed distance is within a few ulps of the true one.
_SAFETY = 1.0 - 1e-9


class KDIndex:
    """Exact k-nearest-neighbour search over 2-D points, ordered by (distance, row index).

    The tree returns each query's ``reach`` nearest points. Every point it did not return
    is at least as far as the farthest one it did, so when the k-th smallest distance (this
    module's arithmetic) is below that farthest distance, no other point can come before
    the k-th or tie with it, and the rule's k are among the candidates; the queries where
    ties run to the last candidate ask again for twice as many.
    """

    def __init__(self, coords: np.ndarray) -> None:
        points = np.array(coords, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(points).all():
            raise ValueError("coordinates must be finite")
        self.n = len(points)
        if not self.n:
            raise ValueError("an index needs at least one point")
        self._points = np.ascontiguousarray(points)
        self._tree = KDTree(self._points, leafsize=LEAF_SIZE)

    def nearest(self, coords: np.ndarray, k: int) -> np.ndarray:
        """Row indices (rows, k) of the k points nearest each of ``coords``, in the rule's order."""
        queries = np.ascontiguousarray(coords, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(queries).all():
            raise ValueError("query coordinates must be finite")
        k = min(int(k), self.n)
        out = np.empty((len(queries), k), dtype=np.intp)
        if not len(queries) or not k:
            return out
        reach = min(self.n, k + EXTRA)
        if len(queries) == 1:  # the API's single row: 1-D arrays, a third of the numpy calls
            out[0] = self._nearest_one(queries, k, reach)
            return out
        todo = np.arange(len(queries))
        while len(todo):
            done, chosen = self._settle(queries[todo], k, reach)
            out[todo[done]] = chosen
            todo, reach = todo[~done], min(self.n, 2 * reach)
        return out

    def _nearest_one(self, query: np.ndarray, k: int, reach: int) -> np.ndarray:
        """``nearest`` for one query (shape (1, 2)): the same rule on 1-D arrays."""
        qx, qy = query[0, 0], query[0, 1]
        while True:
            _, found = self._tree.query(query, k=reach)
            ids = found.reshape(-1).astype(np.intp)
            cand = self._points[ids]
            dx = qx - cand[:, 0]
            dy = qy - cand[:, 1]
            dist = np.sqrt(dx * dx + dy * dy)
            ranked = np.lexsort((ids, dist))
            if reach == self.n or dist[ranked[k - 1]] < dist[ranked[-1]] * _SAFETY:
                return ids[ranked[:k]]
            reach = min(self.n, 2 * reach)

    def _settle(self, queries: np.ndarray, k: int, reach: int) -> tuple[np.ndarray, np.ndarray]:
        """Which queries ``reach`` candidates settle, and their k nearest rows in order."""
        _, found = self._tree.query(queries, k=reach)
        ids = found.astype(np.intp).reshape(len(queries), reach)
        cand = self._points[ids]
        # cKDTree's arithmetic, operand for operand: sqrt((q - p)^2 summed over x then y).
        dx = queries[:, 0:1] - cand[..., 0]
        dy = queries[:, 1:2] - cand[..., 1]
        dist = np.sqrt(dx * dx + dy * dy)
        ranked = np.lexsort((ids, dist), axis=-1)
        dist = np.take_along_axis(dist, ranked, axis=1)
        if reach == self.n:  # every point is a candidate
            done = np.ones(len(queries), dtype=bool)
        else:
            done = dist[:, k - 1] < dist[:, -1] * _SAFETY
        return done, np.take_along_axis(ids[done], ranked[done, :k], axis=1)


def build_tree(coords: np.ndarray) -> KDIndex:
    """The neighbour index over training coordinates (row i of ``coords`` is training row i)."""
    return KDIndex(coords)


def nearest(tree: KDIndex, coords: np.ndarray, k: int) -> np.ndarray:
    """Indices (rows, k) of the k training rows nearest each of ``coords``.

    Ordered by (distance, training-row index): of several rows at exactly the k-th
    distance, the lowest indices win.
    """
    return tree.nearest(np.asarray(coords, dtype=np.float64).reshape(-1, 2), k)


def mean_target(tree: KDIndex, target: np.ndarray, coords: np.ndarray, k: int) -> np.ndarray:
    """Mean training target of each row's k nearest training rows (the tie rule above)."""
    return target[nearest(tree, coords, k)].mean(axis=1)


def mean_targets(
    tree: KDIndex, target: np.ndarray, coords: np.ndarray, ks: tuple[int, ...]
) -> np.ndarray:
    """``mean_target`` for each k in ``ks`` (rows, len(ks)), from one neighbour query.

    The (distance, row index) order is total, so the k nearest are the first k of the
    ``max(ks)`` nearest, in the same order: each column equals ``mean_target(..., k)``.
    """
    idx = nearest(tree, coords, max(ks))
    values = target[idx]
    return np.column_stack([values[:, : min(int(k), tree.n)].mean(axis=1) for k in ks])
