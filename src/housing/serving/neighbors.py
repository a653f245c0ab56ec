"""The k-nearest-neighbour rule shared by training and serving: distance, then row index.

Many California districts share coordinates, so the k-th nearest neighbour is often tied
(1,559 of the 4,128 test districts tie at k=8): which tied district a kNN code returns is
then an implementation detail. :func:`nearest` makes it a rule instead: order by distance,
break exact ties by the lower training-row index, take k. Training (``NeighborPrice``) and
serving (:mod:`housing.serving`) both call it, so they pick the same neighbours.

The index is a uniform grid over the two coordinates, in numpy alone (no scipy, so the API
image carries neither scipy nor scikit-learn). Distances are computed as scipy's cKDTree
computed them before (``sqrt(dx*dx + dy*dy)`` in float64), so every tie, and so every
neighbour price, is the same as it was with cKDTree; tests/housing/serving checks this
against cKDTree on the whole data set.
"""

from __future__ import annotations

import math

import numpy as np

# Average training points per grid cell. The index is exact whatever this is; it only
# sets the speed (fewer, larger cells: fewer numpy calls per batch, more distances each).
POINTS_PER_CELL = 16
# The first neighbourhood tried holds at least this many times k points.
FIRST_REACH = 2
# Tolerance on the settling test: a computed distance is within a few ulps of the true one.
_SAFETY = 1.0 - 1e-9


def _lines(values: np.ndarray, cells: int) -> np.ndarray:
    """Interior grid lines along one axis: quantiles, so dense areas get narrow cells."""
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, cells + 1)[1:-1])
    return np.unique(quantiles)


class GridIndex:
    """Exact k-nearest-neighbour search over 2-D points, ordered by (distance, row index).

    Points are bucketed into the cells of a grid whose lines are quantiles of each
    coordinate (cell ``j`` along an axis holds ``lines[j-1] <= v < lines[j]``, the outer
    cells reaching to infinity). Queries are answered a cell at a time: the candidates are
    the points of the cell's neighbourhood (the cell grown by ``m`` cells on each side).
    Every point outside it is farther from a query than the query's distance to the
    neighbourhood's border, so once a query's k-th smallest candidate distance is below
    that border distance, no other point can come before it or tie with it; the
    neighbourhood grows for the queries not settled yet.
    """

    def __init__(self, coords: np.ndarray) -> None:
        points = np.array(coords, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(points).all():
            raise ValueError("coordinates must be finite")
        self.n = len(points)
        if not self.n:
            raise ValueError("an index needs at least one point")
        side = max(1, round(math.sqrt(self.n / POINTS_PER_CELL)))
        self._xs, self._ys = _lines(points[:, 0], side), _lines(points[:, 1], side)
        self._shape = (len(self._xs) + 1, len(self._ys) + 1)
        self._everything = (0, 0, self._shape[0] - 1, self._shape[1] - 1)
        self._xs_list, self._ys_list = self._xs.tolist(), self._ys.tolist()
        cell_x, cell_y = self._cells(points)
        ids = cell_y * self._shape[0] + cell_x
        order = np.argsort(ids, kind="stable")
        self._order = order  # position in the cell-sorted arrays -> training-row index
        self._points = points[order]
        starts = np.searchsorted(ids[order], np.arange(self._shape[0] * self._shape[1] + 1))
        # Python lists: a query's neighbourhood is a few slices, cheaper indexed from lists.
        self._starts = starts.tolist()
        counts = np.diff(starts).reshape(self._shape[1], self._shape[0])
        table = np.zeros((self._shape[1] + 1, self._shape[0] + 1), dtype=np.int64)
        table[1:, 1:] = counts.cumsum(axis=0).cumsum(axis=1)
        self._table = table.tolist()  # points in cells [0, x) x [0, y): table[y][x]

    def _cells(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell column and row of each point (comparisons only: no rounding)."""
        return (
            np.searchsorted(self._xs, points[:, 0], side="right"),
            np.searchsorted(self._ys, points[:, 1], side="right"),
        )

    def _span(self, cx: int, cy: int, m: int) -> tuple[int, int, int, int]:
        nx, ny = self._shape
        return max(cx - m, 0), max(cy - m, 0), min(cx + m, nx - 1), min(cy + m, ny - 1)

    def _count(self, span: tuple[int, int, int, int]) -> int:
        """How many points ``span`` holds (from the summed-area table)."""
        x0, y0, x1, y1 = span
        t = self._table
        return t[y1 + 1][x1 + 1] - t[y0][x1 + 1] - t[y1 + 1][x0] + t[y0][x0]

    def _candidates(self, span: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The points of ``span`` and their training-row indices, one slice per grid row."""
        x0, y0, x1, y1 = span
        nx, starts = self._shape[0], self._starts
        pieces = [(starts[y * nx + x0], starts[y * nx + x1 + 1]) for y in range(y0, y1 + 1)]
        if len(pieces) == 1:
            lo, hi = pieces[0]
            return self._points[lo:hi], self._order[lo:hi]
        points = np.concatenate([self._points[lo:hi] for lo, hi in pieces])
        return points, np.concatenate([self._order[lo:hi] for lo, hi in pieces])

    def _border(self, queries: np.ndarray, span: tuple[int, int, int, int]) -> np.ndarray:
        """Each query's distance to the nearest side of ``span`` beyond which points lie."""
        x0, y0, x1, y1 = span
        nx, ny = self._shape
        border = np.full(len(queries), np.inf)
        if x0 > 0:
            border = np.minimum(border, queries[:, 0] - self._xs[x0 - 1])
        if x1 < nx - 1:
            border = np.minimum(border, self._xs[x1] - queries[:, 0])
        if y0 > 0:
            border = np.minimum(border, queries[:, 1] - self._ys[y0 - 1])
        if y1 < ny - 1:
            border = np.minimum(border, self._ys[y1] - queries[:, 1])
        return border

    def nearest(self, coords: np.ndarray, k: int) -> np.ndarray:
        """Row indices (rows, k) of the k points nearest each of ``coords``, in the rule's order."""
        queries = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(queries).all():
            raise ValueError("query coordinates must be finite")
        k = min(int(k), self.n)
        out = np.empty((len(queries), k), dtype=np.intp)
        if not len(queries) or not k:
            return out
        cell_x, cell_y = self._cells(queries)
        if len(queries) == 1:
            cells = [np.zeros(1, np.intp)]  # the API's single row: no grouping to do
        else:
            groups = cell_y * self._shape[0] + cell_x
            by_cell = np.argsort(groups, kind="stable")
            cells = np.split(by_cell, np.flatnonzero(np.diff(groups[by_cell])) + 1)
        for rows in cells:
            cx, cy = int(cell_x[rows[0]]), int(cell_y[rows[0]])
            # A first neighbourhood holding a few times k points settles most queries.
            m = 1
            span = self._span(cx, cy, m)
            while self._count(span) < FIRST_REACH * k and span != self._everything:
                m += 1
                span = self._span(cx, cy, m)
            if len(rows) == 1:  # one query in this cell (the API's rows, mostly): 1-D path
                out[rows[0]] = self._answer_one(queries[rows[0]], cx, cy, m, k)
                continue
            while len(rows):
                done, chosen = self._answer(queries[rows], span, k)
                out[rows[done]] = chosen
                rows = rows[~done]
                m += max(1, m // 2)
                span = self._span(cx, cy, m)
        return out

    def _answer_one(self, query: np.ndarray, cx: int, cy: int, m: int, k: int) -> np.ndarray:
        """``_answer`` for a single query, in fewer and one-dimensional numpy calls."""
        qx, qy = float(query[0]), float(query[1])
        while True:
            span = self._span(cx, cy, m)
            cand, rows = self._candidates(span)
            dx = qx - cand[:, 0]
            dy = qy - cand[:, 1]
            dist = np.sqrt(dx * dx + dy * dy)
            kth = dist[np.argpartition(dist, k - 1)[k - 1]]
            if kth < self._border_one(qx, qy, span) * _SAFETY:
                within = np.flatnonzero(dist <= kth)
                ranked = np.lexsort((rows[within], dist[within]))[:k]
                return rows[within[ranked]]
            m += max(1, m // 2)

    def _border_one(self, qx: float, qy: float, span: tuple[int, int, int, int]) -> float:
        """``_border`` for one query."""
        x0, y0, x1, y1 = span
        nx, ny = self._shape
        sides = [math.inf]
        if x0 > 0:
            sides.append(qx - self._xs_list[x0 - 1])
        if x1 < nx - 1:
            sides.append(self._xs_list[x1] - qx)
        if y0 > 0:
            sides.append(qy - self._ys_list[y0 - 1])
        if y1 < ny - 1:
            sides.append(self._ys_list[y1] - qy)
        return min(sides)

    def _answer(
        self, queries: np.ndarray, span: tuple[int, int, int, int], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which queries the points of ``span`` settle, and their k nearest rows."""
        cand, rows = self._candidates(span)
        # cKDTree's arithmetic, operand for operand: sqrt((q - p)^2 summed over x then y).
        dx = queries[:, 0:1] - cand[:, 0]
        dy = queries[:, 1:2] - cand[:, 1]
        dist = np.sqrt(dx * dx + dy * dy)
        cols = np.argpartition(dist, k - 1, axis=1)
        line = np.arange(len(queries))[:, None]
        kth = dist[line[:, 0], cols[:, k - 1]]
        done = kth < self._border(queries, span) * _SAFETY
        dist, kth, cols, line = dist[done], kth[done], cols[done], line[: int(done.sum())]
        # The k smallest are the first k columns; rows with more at exactly the k-th distance
        # need every one of them, so those take a wider cut.
        width = int((dist <= kth[:, None]).sum(axis=1).max(initial=k))
        if width > k:
            cols = np.argpartition(dist, width - 1, axis=1)
        cols = cols[:, :width]
        dist, ids = dist[line, cols], rows[cols]
        ranked = np.lexsort((ids, dist), axis=-1)[:, :k]
        return done, ids[line, ranked]


def build_tree(coords: np.ndarray) -> GridIndex:
    """The neighbour index over training coordinates (row i of ``coords`` is training row i)."""
    return GridIndex(coords)


def nearest(tree: GridIndex, coords: np.ndarray, k: int) -> np.ndarray:
    """Indices (rows, k) of the k training rows nearest each of ``coords``.

    Ordered by (distance, training-row index): of several rows at exactly the k-th
    distance, the lowest indices win.
    """
    return tree.nearest(np.asarray(coords, dtype=np.float64).reshape(-1, 2), k)


def mean_target(tree: GridIndex, target: np.ndarray, coords: np.ndarray, k: int) -> np.ndarray:
    """Mean training target of each row's k nearest training rows (the tie rule above)."""
    return target[nearest(tree, coords, k)].mean(axis=1)


def mean_targets(
    tree: GridIndex, target: np.ndarray, coords: np.ndarray, ks: tuple[int, ...]
) -> np.ndarray:
    """``mean_target`` for each k in ``ks`` (rows, len(ks)), from one neighbour query.

    The (distance, row index) order is total, so the k nearest are the first k of the
    ``max(ks)`` nearest, in the same order: each column equals ``mean_target(..., k)``.
    """
    idx = nearest(tree, coords, max(ks))
    values = target[idx]
    return np.column_stack([values[:, : min(int(k), tree.n)].mean(axis=1) for k in ks])
