"""Red noise in a light curve's residuals: the time-averaging beta, and RMS per time bin."""
from __future__ import annotations

import numpy as np

__all__ = ["beta_time_averaging", "rms_per"]


def _bin_means(time, resid, width: float) -> np.ndarray:
    """Means of the residuals in consecutive bins ``width`` days wide (bins of >= 2 points)."""
    k = np.floor((time - time.min()) / width).astype(int)
    counts = np.bincount(k)
    sums = np.bincount(k, weights=resid)
    ok = counts >= 2
    return sums[ok] / counts[ok], counts[ok]


def rms_per(time, resid, width: float) -> float:
    """RMS of the residuals averaged in bins ``width`` days wide (NaN with fewer than 3 bins)."""
    means, _ = _bin_means(np.asarray(time, float), np.asarray(resid, float), width)
    return float(np.std(means)) if len(means) >= 3 else float("nan")


def beta_time_averaging(time, resid, widths_min=(10.0, 15.0, 20.0, 25.0, 30.0)) -> float:
    """Winn et al. (2008)'s beta: how much more the residuals binned over 10-30 min scatter than
    white noise would (sigma_1 / sqrt(N) sqrt(M / (M - 1)), N points a bin, M bins); the median
    over bin widths, at least 1. Bin widths with fewer than 4 bins are skipped."""
    time, resid = np.asarray(time, float), np.asarray(resid, float)
    sigma1 = float(np.std(resid))
    if len(resid) < 8 or not sigma1 > 0:
        return 1.0
    ratios = []
    for w in widths_min:
        means, counts = _bin_means(time, resid, w / 1440.0)
        m = len(means)
        if m < 4:
            continue
        n = float(np.mean(counts))
        if n < 2:
            continue
        expected = sigma1 / np.sqrt(n) * np.sqrt(m / (m - 1.0))
        ratios.append(float(np.std(means)) / expected)
    return max(1.0, float(np.median(ratios))) if ratios else 1.0
