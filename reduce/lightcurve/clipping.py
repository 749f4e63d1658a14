"""Frames that are outliers in per-frame quantities (sky, FWHM, ...): ``Fluxes.sigma_clipping_data``.

Each series is compared with its local trend (a running median that follows any smooth monotonic
change) in units of its frame-to-frame noise; the worst frame of a neighbourhood goes per pass.
"""
from __future__ import annotations

import numpy as np

__all__ = ["outlier_frames", "RELATIVE_SIGMA_FLOOR"]


def outlier_frames(series: dict, time, *, iterations: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason) per frame: ``series`` maps a name to ``(values, n_sigma)``; a frame goes when
    one of its values jumps more than ``n_sigma`` robust sigmas away from the local trend (see
    ``_jumps``), at most one per neighbourhood of 9 per pass, up to ``iterations`` passes."""
    time = np.asarray(time, float)
    keep = np.ones(time.size, bool)
    reason = np.array([""] * time.size, dtype=object)
    for _ in range(max(1, int(iterations))):
        new_keep = keep.copy()
        for name, (v, n_sigma) in series.items():
            judged = _jumps(v, keep, time)
            if judged is None:
                continue
            dev, rank = judged
            # only the worst frame of a neighbourhood per pass: a jump inside a steep trend
            # shifts the running median of its neighbours by one step, not their values
            out = new_keep & (dev > n_sigma) & _local_max(rank, keep)
            for i in np.flatnonzero(out):
                reason[i] = f"{name} outlier: {dev[i]:.1f} sigma > {n_sigma:g}"
            new_keep &= ~out
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return keep, reason


RELATIVE_SIGMA_FLOOR = 0.01


def _jumps(v, keep, time=None) -> tuple[np.ndarray, np.ndarray] | None:
    """|deviation| of every frame from the local trend of the kept frames, in robust sigmas (NaN
    for NaN values), and a ranking key (the deviation, ties broken by the second difference: a
    jump sticks out of both its neighbours); None when nothing can be judged (fewer than 7
    usable frames, no noise).

    A series positive on every kept frame is taken in logarithm (relative deviations); the sigma
    is the point-to-point noise from second differences, at least 1 % of the value (a nearly
    noiseless quantity must still change by a meaningful amount to be an outlier).
    """
    from astropy.stats import mad_std  # here: it imports astropy.units (~0.5 s), not needed to import Fluxes

    v = np.asarray(v, float)
    ok = keep & np.isfinite(v)
    idx = np.flatnonzero(ok)
    if idx.size < 7:
        return None
    relative = bool(np.all(v[idx] > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(v) if relative else v.copy()
    x = idx.astype(float)
    if time is not None and np.isfinite(time[idx]).all() and np.all(np.diff(time[idx]) > 0):
        x = np.asarray(time, float)[idx]
    trend = _local_trend(y[idx], x)
    d2 = y[idx][:-2] - 2 * y[idx][1:-1] + y[idx][2:]  # white noise: sqrt(6) sigma; a smooth trend: ~0
    sigma = mad_std(d2) / np.sqrt(6)
    level = np.interp(np.arange(v.size), idx, trend)
    floor = np.log1p(RELATIVE_SIGMA_FLOOR) if relative else RELATIVE_SIGMA_FLOOR * np.abs(level)
    sig = np.maximum(sigma, floor)
    if not np.any(sig > 0):
        return None
    bump = np.zeros(v.size)
    bump[idx[1:-1]] = np.abs(d2)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.abs(y - level) / sig
        return dev, dev + 1e-3 * bump / sig


def _local_max(dev: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """True for kept frames whose ``dev`` is the largest among the kept frames within 4 of them
    (a jump disturbs the running median, and the end-point extrapolation, that far)."""
    idx = np.flatnonzero(keep & np.isfinite(dev))
    out = np.zeros(dev.size, bool)
    if idx.size:
        d = np.pad(dev[idx], 4, constant_values=-np.inf)
        out[idx] = dev[idx] >= np.lib.stride_tricks.sliding_window_view(d, 9).max(axis=1)
    return out


def _local_trend(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Running median of 5 (3 next to the ends; at the ends the median of the value, its smoothed
    neighbour and an extrapolation to its position ``x``: Tukey's end-point rule). Of two
    extrapolations the one nearer the value is used: the parabola through the next three smoothed
    values (follows a curved trend) and the median of the straight lines through every pair of the
    next five values (not moved by one jump among them); an end frame is an outlier when both miss.

    A median of a monotonic window is its middle value, so any smooth monotonic trend, however
    curved, is followed exactly, while one or two outlying frames never set it.
    """
    n = y.size
    z = y.copy()
    z[2:-2] = np.median(np.lib.stride_tricks.sliding_window_view(y, 5), axis=1)
    z[1], z[-2] = np.median(y[:3]), np.median(y[-3:])
    z[0] = np.median([y[0], z[1], _extrapolate(x[1:6], y[1:6], z[1:4], x[0], y[0])])
    z[n - 1] = np.median([y[-1], z[-2], _extrapolate(x[-6:-1][::-1], y[-6:-1][::-1], z[-4:-1][::-1],
                                                     x[-1], y[-1])])
    return z


def _extrapolate(x, y, z, at, value) -> float:
    """The extrapolation to ``at`` nearer ``value``: the parabola through (x[:3], z) or the median
    of the straight lines through every pair of points (x, y)."""
    (x0, x1, x2), (z0, z1, z2) = x[:3], z
    parabola = (z0 * (at - x1) * (at - x2) / ((x0 - x1) * (x0 - x2))
                + z1 * (at - x0) * (at - x2) / ((x1 - x0) * (x1 - x2))
                + z2 * (at - x0) * (at - x1) / ((x2 - x0) * (x2 - x1)))
    j, k = np.triu_indices(len(x), 1)
    line = np.median(y[j] + (y[j] - y[k]) * (at - x[j]) / (x[j] - x[k]))
    return float(parabola if abs(parabola - value) <= abs(line - value) else line)

