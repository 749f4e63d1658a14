"""Nearest-neighbour queries on small 2-D point sets without importing scipy.

Star lists for alignment and PSF star selection are small (tens to a few hundred points), where a
chunked brute-force distance matrix is as fast as a k-d tree and avoids importing
``scipy.spatial`` (about 0.3 s per process, paid by every ``reduce run``). Pairs closer than a
radius come from a window on the sorted x coordinate whatever the number of points (a dense
reference's ~1,000 stars included); only unbounded queries of large sets and windows of more
than ``_PAIRS_MAX`` candidates fall back to :class:`scipy.spatial.cKDTree`. :class:`Neighbors` mimics the subset of the cKDTree API used
here (``query`` with ``k`` and ``distance_upper_bound``, ``query_pairs``), including its "missing
neighbour" convention: distance ``inf`` and index ``n``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Neighbors", "nearest_distance"]

# brute force while n_points x n_queries stays below this (else a k-d tree)
_BRUTE_MAX = 400_000
_CHUNK = 50_000  # distance-matrix elements per chunk
# candidate pairs of an x-window (query_pairs) beyond which a k-d tree answers
_PAIRS_MAX = 2_000_000


class Neighbors:
    """Nearest neighbours among ``points`` (n, d) for query points; see the module docstring."""

    def __init__(self, points):
        self.data = np.asarray(points, dtype=float)
        if self.data.ndim != 2:
            self.data = self.data.reshape(len(self.data), -1)
        self.n = len(self.data)
        self._tree = None
        self._order = self._sorted_x = None

    def _kd(self):
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.data)
        return self._tree

    def query(self, x, k: int = 1, distance_upper_bound: float = np.inf):
        """(distances, indices) of the ``k`` nearest points to each row of ``x``; 1-D arrays for
        ``k=1``, (m, k) otherwise. Neighbours not closer than ``distance_upper_bound`` come back as
        distance ``inf`` and index ``n`` (as cKDTree)."""
        x = np.asarray(x, dtype=float)
        x2 = x.reshape(-1, self.data.shape[1]) if x.size else np.zeros((0, self.data.shape[1]))
        m = len(x2)
        if self.n * m > _BRUTE_MAX:
            d, i = self._kd().query(x2, k=k, distance_upper_bound=distance_upper_bound)
            return d, i
        kk = min(k, self.n)
        dist = np.full((m, k), np.inf)
        idx = np.full((m, k), self.n, dtype=np.intp)
        if kk and m and np.isfinite(distance_upper_bound):
            self._bounded(x2, kk, float(distance_upper_bound), dist, idx)
        elif kk and m:
            step = max(1, _CHUNK // max(self.n, 1))
            for s in range(0, m, step):
                d2 = self._d2(x2[s:s + step])
                if kk == 1:
                    part = np.argmin(d2, axis=1)[:, None]
                    pd = np.take_along_axis(d2, part, 1)
                else:
                    part = (np.argpartition(d2, kk - 1, axis=1)[:, :kk] if kk < self.n
                            else np.broadcast_to(np.arange(self.n), d2.shape))
                    pd = np.take_along_axis(d2, part, 1)
                    order = np.lexsort((part, pd), axis=1)  # by distance, then index
                    part = np.take_along_axis(part, order, 1)
                    pd = np.take_along_axis(pd, order, 1)
                pd = np.sqrt(pd)
                far = ~(pd < distance_upper_bound)
                dist[s:s + step, :kk] = np.where(far, np.inf, pd)
                idx[s:s + step, :kk] = np.where(far, self.n, part)
        if k == 1:
            return dist[:, 0], idx[:, 0]
        return dist, idx

    def _bounded(self, q, k, bound, dist, idx) -> None:
        """Fill ``dist``/``idx`` with the ``k`` nearest points closer than ``bound``: candidates
        come from a window on the sorted first coordinate, so only nearby pairs are measured."""
        if self._order is None:
            self._order = np.argsort(self.data[:, 0], kind="stable")
            self._sorted_x = self.data[self._order, 0]
        lo = np.searchsorted(self._sorted_x, q[:, 0] - bound, side="left")
        hi = np.searchsorted(self._sorted_x, q[:, 0] + bound, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return
        rows = np.repeat(np.arange(len(q)), counts)
        cols = self._order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(total)]
        d2 = ((q[rows] - self.data[cols]) ** 2).sum(axis=1)
        near = d2 < bound * bound
        rows, cols, d2 = rows[near], cols[near], d2[near]
        if not len(rows):
            return
        order = np.lexsort((cols, d2, rows))  # by query, then distance, then index
        rows, cols, d2 = rows[order], cols[order], d2[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = rank < k
        dist[rows[keep], rank[keep]] = np.sqrt(d2[keep])
        idx[rows[keep], rank[keep]] = cols[keep]

    def _d2(self, q: np.ndarray) -> np.ndarray:
        """Squared distances (len(q), n) from query rows to every point."""
        d2 = np.zeros((len(q), self.n))
        for c in range(self.data.shape[1]):
            diff = q[:, c, None] - self.data[None, :, c]
            d2 += diff * diff
        return d2

    def query_pairs(self, r: float, output_type: str = "ndarray") -> np.ndarray:
        """(p, 2) index pairs ``i < j`` of points at most ``r`` apart, sorted by ``i`` then ``j``.

        Candidates come from a window on the sorted first coordinate (points less than ``r``
        apart in x), so a dense reference's ~1,000 stars need no k-d tree (and no ``import
        scipy.spatial``, ~0.4 s of a run); only a window of more than ``_PAIRS_MAX`` candidates
        goes to the tree."""
        if output_type != "ndarray":
            raise ValueError("only output_type='ndarray' is supported")
        if self.n < 2:
            return np.zeros((0, 2), dtype=np.intp)
        ok = np.flatnonzero(np.isfinite(self.data).all(axis=1))
        order = ok[np.argsort(self.data[ok, 0], kind="stable")]
        x = self.data[order, 0]
        hi = np.searchsorted(x, x + r, side="right")
        counts = hi - np.arange(len(x)) - 1                    # later points within r in x
        total = int(counts.sum())
        if total > _PAIRS_MAX:  # the tree of the finite points (a NaN in a k-d tree raises)
            from scipy.spatial import cKDTree

            pairs = ok[cKDTree(self.data[ok]).query_pairs(r, output_type="ndarray")].reshape(-1, 2)
            return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        a = np.repeat(np.arange(len(x)), counts)
        b = a + 1 + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        i, j = order[a], order[b]
        diff = self.data[i] - self.data[j]
        near = (diff * diff).sum(axis=1) <= r * r
        i, j = i[near], j[near]
        pairs = np.column_stack([np.minimum(i, j), np.maximum(i, j)]).astype(np.intp)
        return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def nearest_distance(xy) -> np.ndarray:
    """Distance from each point to its nearest other point (inf when alone)."""
    xy = np.asarray(xy, dtype=float)
    if len(xy) < 2:
        return np.full(len(xy), np.inf)
    d, _ = Neighbors(xy).query(xy, k=2)
    return d[:, 1]
