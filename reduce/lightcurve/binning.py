"""Time binning of light curves: bin edges and NaN-ignoring bin means with their errors."""
from __future__ import annotations

import numpy as np

__all__ = ["bin_edges", "binned"]


def bin_edges(time, dt):
    """Time order and start index of each ``dt``-wide bin (bins start at the earliest time).

    Returns ``(order, starts)``: ``time[order]`` is sorted and ``starts`` indexes, in that sorted
    array, the first frame of each non-empty bin (as needed by ``np.add.reduceat``).
    """
    time = np.asarray(time, dtype=float)
    if not dt > 0:
        raise ValueError(f"bin width dt must be > 0 days, got {dt!r}")
    if time.size == 0:
        raise ValueError("cannot bin an empty series")
    order = np.argsort(time, kind="stable")
    ts = time[order]
    k = np.floor((ts - ts[0]) / dt).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(k) > 0])
    return order, starts


def binned(time, values, dt, *, error=None, estimate_error=True):
    """Mean of ``values`` (..., n_frames) in ``dt``-day time bins, NaNs ignored.

    Errors: with ``estimate_error`` the standard error of the mean from the scatter in the bin
    (``std(ddof=1) / sqrt(n)``), falling back to the propagated error when n == 1; otherwise the
    propagated error ``sqrt(sum(e^2)) / n``. Returns ``(time_b, mean, err, n)`` with ``n`` the
    number of finite values per bin (same shape as ``mean``); ``time_b`` is the mean frame time.
    """
    values = np.asarray(values, dtype=float)
    order, starts = bin_edges(time, dt)
    t = np.asarray(time, float)[order]
    counts_t = np.diff(np.r_[starts, t.size])
    time_b = np.add.reduceat(t, starts) / counts_t
    v = values[..., order]
    ok = np.isfinite(v)
    n = np.add.reduceat(ok, starts, axis=-1)
    s1 = np.add.reduceat(np.where(ok, v, 0.0), starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        idx = np.repeat(np.arange(starts.size), counts_t)
        dev = np.where(ok, v - mean[..., idx], 0.0)
        ss = np.add.reduceat(dev ** 2, starts, axis=-1)
        prop = np.full_like(mean, np.nan)
        if error is not None:
            e = np.broadcast_to(np.asarray(error, float), values.shape)[..., order]
            e2 = np.add.reduceat(np.where(ok, e ** 2, 0.0), starts, axis=-1)
            prop = np.sqrt(e2) / n
        if estimate_error:
            est = np.sqrt(ss / (n - 1)) / np.sqrt(n)
            err = np.where(n > 1, est, prop)
        else:
            err = prop
        mean = np.where(n > 0, mean, np.nan)
        err = np.where(n > 0, err, np.nan)
    return time_b, mean, err, n
