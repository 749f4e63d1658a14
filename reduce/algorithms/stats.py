"""Medians without numpy's per-call overhead (it dominates on the short arrays of the per-frame
chain: star residuals, background samples), and of values already sorted (read, not searched)."""
from __future__ import annotations

import numpy as np

__all__ = ["median", "sorted_median"]


def median(v: np.ndarray):
    """``np.median`` of a 1-D array, same value (the middle pair averaged in the array's type), by
    one partition: np.median's own checks cost about 4x more on a few thousand values."""
    k = len(v)
    lo, hi = (k - 1) // 2, k // 2
    part = np.partition(v, (lo, hi) if lo != hi else hi)
    return part[hi] if lo == hi else (part[lo] + part[hi]) / 2


def sorted_median(values: np.ndarray, lo=0, hi=None):
    """Median of the sorted run ``values[lo:hi]``, the middle pair averaged in float64; ``lo`` and
    ``hi`` may be index arrays, one run each (e.g. the rows of a flattened, row-sorted array)."""
    k = (len(values) if hi is None else hi) - lo
    return 0.5 * (np.asarray(values[lo + (k - 1) // 2], dtype=float) + values[lo + k // 2])
