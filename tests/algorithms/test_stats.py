"""The median helpers give numpy's medians."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.algorithms.stats import median, sorted_median


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 5001])
def test_median_and_sorted_median_equal_numpy(n):
    v = np.random.default_rng(n).normal(0, 1, n).astype(np.float32)
    assert median(v) == np.median(v)
    assert sorted_median(np.sort(v)) == np.median(v.astype(float))


def test_sorted_median_of_runs_in_a_flat_array():
    """One run per row of a row-sorted array, each with its own [lo, hi) range."""
    rows = np.sort(np.random.default_rng(2).normal(0, 1, (4, 9)), axis=1)
    lo, hi = np.array([0, 2, 3, 8]), np.array([9, 6, 4, 9])
    base = np.arange(4) * 9
    got = sorted_median(rows.ravel(), base + lo, base + hi)
    assert got.tolist() == [np.median(r[a:b]) for r, a, b in zip(rows, lo, hi)]
