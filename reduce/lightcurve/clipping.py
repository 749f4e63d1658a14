"""Frames that are outliers in per-frame quantities (sky, FWHM, ...): ``Fluxes.sigma_clipping_data``.

Each series is compared with its local trend (a running median that follows any smooth monotonic
change, and the neighbours' smooth local fits that follow a rounded peak a few frames wide) in
units of its local frame-to-frame noise (so a sky that wanders while clouds pass is judged
against its own texture there, not against the clear night's); the worst frame of a
neighbourhood goes per pass.
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
                reason[i] = f"{name} outlier: {dev[i]:.1f} sigma from its trend (> {n_sigma:g})"
            new_keep &= ~out
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return keep, reason


RELATIVE_SIGMA_FLOOR = 0.01
NOISE_WINDOW = 25  # frames over which the local frame-to-frame noise is measured


def _jumps(v, keep, time=None) -> tuple[np.ndarray, np.ndarray] | None:
    """|deviation| of every frame from the local trend of the kept frames (the running median's,
    or where smaller the neighbours' smooth local fits': ``_smooth_miss``), in robust sigmas (NaN
    for NaN values), and a ranking key (the deviation, ties broken by the second difference: a
    jump sticks out of both its neighbours); None when nothing can be judged (fewer than 7
    usable frames, no noise).

    A series positive on every kept frame is taken in logarithm (relative deviations); the sigma
    is the point-to-point noise from second differences, the night's or, where larger, the local
    one (``_local_sigma``: a sky wandering under passing clouds), and at least 1 % of the value (a
    nearly noiseless quantity must still change by a meaningful amount to be an outlier).
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
    sigma = np.maximum(mad_std(d2) / np.sqrt(6), _local_sigma(d2, idx.size))
    sigma = np.interp(np.arange(v.size), idx, sigma)
    level = np.interp(np.arange(v.size), idx, trend)
    floor = np.log1p(RELATIVE_SIGMA_FLOOR) if relative else RELATIVE_SIGMA_FLOOR * np.abs(level)
    sig = np.maximum(sigma, floor)
    if not np.any(sig > 0):
        return None
    bump = np.zeros(v.size)
    bump[idx[1:-1]] = np.abs(d2)
    miss = _smooth_miss(y, ok, time, sig)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.fmin(np.abs(y - level), miss) / sig
        return dev, dev + 1e-3 * bump / sig


def _smooth_miss(y, ok, time, sig) -> np.ndarray:
    """How far each kept frame is from its neighbours' smooth local fits (``guards.neighbour_miss``:
    a cloud's rounded sky peak a few frames wide is followed, a jump of one frame is not); NaN
    on nights too short to judge, where the running median alone decides."""
    from .guards import neighbour_miss

    kept = np.where(ok, y, np.nan)
    t = None if time is None else np.asarray(time, float)
    return neighbour_miss(kept, t, sigma=np.broadcast_to(sig, y.shape))[0]


def _local_sigma(d2: np.ndarray, n: int, window: int = NOISE_WINDOW) -> np.ndarray:
    """Per frame, the largest within ``window`` // 4 frames of ``local_noise`` over ``window``
    frames: the noise of a stretch (a cloud's sky texture) reaches to its edges."""
    if d2.size < window:
        return np.zeros(n)
    local = local_noise(d2, window)
    q = window // 4
    return np.max(np.lib.stride_tricks.sliding_window_view(np.pad(local, q, mode="edge"), 2 * q + 1), axis=1)


def local_noise(d2: np.ndarray, window: int) -> np.ndarray:
    """Per frame (2 more than ``d2``, the series' second differences), the robust sigma of the
    series from the second differences within ``window`` frames around it, leaving out the three
    the frame itself is in (its own jump is not its noise)."""
    half = window // 2
    a = np.pad(np.asarray(d2, float), 1 + half, constant_values=np.nan)  # a[half + j]: centred on j
    w = np.lib.stride_tricks.sliding_window_view(a, 2 * half + 1)
    w = np.delete(w, [half - 1, half, half + 1], axis=1)
    # the MAD about the window's median: a curved trend's second differences are its curvature,
    # not noise; white noise's second differences have a sigma of sqrt(6) sigma
    mad = np.nanmedian(np.abs(w - np.nanmedian(w, axis=1)[:, None]), axis=1)
    return 1.4826 * mad / np.sqrt(6)


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

