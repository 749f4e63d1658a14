"""Neighbour queries without scipy: same answers as scipy's cKDTree."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from reduce.algorithms import neighbors
from reduce.algorithms.neighbors import Neighbors, nearest_distance


@pytest.mark.parametrize("n,m,k,bound", [(30, 30, 1, np.inf), (30, 2000, 1, 2.0), (300, 300, 4, 0.01),
                                         (40, 40, 6, np.inf), (5, 40, 6, 50.0), (1, 3, 2, np.inf)])
def test_query_equals_ckdtree(n, m, k, bound):
    rng = np.random.default_rng(n + m)
    scale = 1.0 if bound < 0.1 else 100.0
    pts, q = rng.uniform(0, scale, (n, 2)), rng.uniform(0, scale, (m, 2))
    d, i = Neighbors(pts).query(q, k=k, distance_upper_bound=bound)
    d0, i0 = cKDTree(pts).query(q, k=k, distance_upper_bound=bound)
    assert d.shape == np.shape(d0) and np.array_equal(i, i0) and np.allclose(d, d0)


def test_pairs_nearest_distance_and_large_sets(monkeypatch):
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (60, 2))
    pairs = Neighbors(pts).query_pairs(10.0)
    assert sorted(map(tuple, pairs)) == sorted(map(tuple, cKDTree(pts).query_pairs(10.0, output_type="ndarray")))
    assert np.allclose(nearest_distance(pts), cKDTree(pts).query(pts, k=2)[0][:, 1])
    assert nearest_distance(pts[:1]).tolist() == [np.inf]
    many = rng.uniform(0, 650, (1200, 2))  # a dense reference: the x-window, same pairs, sorted
    many[5] = many[9]
    expected = cKDTree(many).query_pairs(9.0, output_type="ndarray")
    got = Neighbors(many).query_pairs(9.0)
    assert got.tolist() == sorted(map(list, expected)) and [5, 9] in got.tolist()
    monkeypatch.setattr(neighbors, "_PAIRS_MAX", 10)  # a window too large: the k-d tree answers
    assert sorted(map(tuple, Neighbors(many).query_pairs(9.0))) == sorted(map(tuple, expected))
    monkeypatch.setattr(neighbors, "_BRUTE_MAX", 10)  # large sets go to the k-d tree
    d, i = Neighbors(pts).query(pts[:5], k=2)
    assert np.array_equal(i[:, 0], np.arange(5)) and np.allclose(d[:, 0], 0)
