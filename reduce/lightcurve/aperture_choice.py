"""The aperture choice: the aperture whose differential light curve of the target scatters least.

Scatter metrics (point-to-point, binned, plain) plus a penalty for a trend with the seeing, on
curves shaped ``(n_apertures, n_frames)``.
"""
from __future__ import annotations

import numpy as np

from ..model.flags import Flag
from .binning import bin_edges
from .stats import p2p_scatter

__all__ = ["best_aperture", "snr_aperture", "unmeasured_frames", "seeing_trend", "binned_scatter", "MIN_APERTURE_COVERAGE"]


MIN_APERTURE_COVERAGE = 0.99


def best_aperture(diff, *, time=None, method="p2p", dt=None, frames=None,
                  min_coverage=MIN_APERTURE_COVERAGE, seeing=None, anchor=None, errors=None):
    """Index of the aperture whose light curve ``diff`` (n_apertures, n_frames) scatters least.

    ``method``: ``"p2p"`` robust point-to-point scatter (default; ignores slow astrophysical trends
    such as a transit), ``"binned"`` scatter of ``dt``-day bin means (needs ``time``; sensitive to red
    noise), ``"std"`` plain standard deviation. Apertures that measure the target on fewer than
    ``min_coverage`` x the frames of the best-covered one (radii leaving the frame or overlapping
    masked pixels on some frames: NaN there) are skipped. With ``seeing`` (n_frames,), e.g. the
    FWHM, each curve's trend with the seeing relative to the ``anchor`` aperture (default: the
    smallest one whose scatter is as good as the best within sampling noise) is added in
    quadrature (see ``_seeing_penalty``): p2p is blind to slow trends, and on a short night a
    seeing-driven one (neighbours' light entering wide apertures in a crowded field) is slow.
    Returns ``(index, metric)`` with metric (n_apertures,), inf for skipped apertures.

    A scatter needs 3 frames: on 1 or 2 (a snapshot of a variable star), with ``errors`` (the
    curves' 1-sigma errors, same shape) the aperture of least median relative error (best
    signal-to-noise by the CCD equation) is chosen instead, see :func:`snr_aperture`.
    """
    diff = np.asarray(diff, dtype=float)
    if frames is not None:
        diff = np.where(frames, diff, np.nan)
    coverage = np.isfinite(diff).sum(axis=-1)
    if coverage.max(initial=0) < 3 and errors is not None:
        return snr_aperture(diff, errors, min_coverage=min_coverage)
    if time is not None:
        diff = diff[:, np.argsort(time, kind="stable")]
    if method == "p2p":
        metric = p2p_scatter(diff)
    elif method == "binned":
        if time is None or dt is None:
            raise ValueError("method='binned' needs time and dt")
        metric = binned_scatter(diff, np.sort(time), dt)
    elif method == "std":
        metric = np.nanstd(diff, axis=-1)
    else:
        raise ValueError(f"unknown method {method!r}; use 'p2p', 'binned' or 'std'")
    if seeing is not None:
        covered = np.isfinite(metric) & (coverage >= min_coverage * coverage.max(initial=0))
        if anchor is None and covered.any():
            anchor = _good_smallest(metric, covered, coverage.max(initial=0))
        metric = np.hypot(metric, _seeing_penalty(diff, seeing, time, covered, anchor))
    metric = np.where(np.isfinite(metric) & (metric > 0), metric, np.inf)
    metric = np.where(coverage >= min_coverage * coverage.max(initial=0), metric, np.inf)
    if not np.any(np.isfinite(metric)):
        most = int(coverage.max(initial=0))
        if most < 3:  # a scatter needs 3 points: say so, not that every aperture failed
            raise ValueError(f"the target is measured on {most} frame(s): choosing the aperture by the "
                             "light curve's scatter needs at least 3")
        raise ValueError("no aperture gives a finite differential light curve")
    return int(np.argmin(metric)), metric


def snr_aperture(diff, errors, *, min_coverage=MIN_APERTURE_COVERAGE):
    """``(index, metric)``: the aperture of least median relative error ``errors / diff`` (metric,
    inf where skipped) among those measuring the target on (nearly) as many frames as the best
    covered: the choice for 1 or 2 frames, where no scatter can be measured."""
    diff = np.asarray(diff, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(np.asarray(errors, dtype=float) / diff)
    rel = np.where(np.isfinite(diff) & np.isfinite(rel) & (diff > 0), rel, np.nan)
    coverage = np.isfinite(rel).sum(axis=-1)
    metric = np.full(len(rel), np.inf)
    ok = (coverage > 0) & (coverage >= min_coverage * coverage.max(initial=0))
    if ok.any():
        metric[ok] = np.nanmedian(rel[ok], axis=-1)
    metric = np.where(np.isfinite(metric) & (metric > 0), metric, np.inf)
    if not np.any(np.isfinite(metric)):
        raise ValueError("no aperture measures the target with a finite positive flux and error")
    return int(np.argmin(metric)), metric


def unmeasured_frames(bits, aperture: int, target: int, measured, files, radius: float):
    """Frame flags (n_frames,) where the target's chosen ``aperture`` was not ``measured``, and
    ``[{'index', 'file', 'reason'}]`` saying why, from the photometry's ``bits`` (``data
    ['aperture_flags']``: apertures x stars x frames; None gives no flags)."""
    from ..algorithms.apertures import COSMIC, EDGE, MASKED, SATURATED

    flags = np.zeros(len(files), np.int64)
    if bits is None or np.ndim(bits) != 3:
        return flags, []
    b = np.asarray(bits)[aperture, target]
    issues = []
    for i in np.flatnonzero(~measured & (b != 0)):
        for bit, flag, why in ((EDGE, Flag.TARGET_NEAR_EDGE, "leaves the frame"),
                               (MASKED, Flag.TARGET_MASKED, "overlaps masked pixels (unilluminated or NaN)"),
                               (SATURATED, Flag.TARGET_SATURATED, "overlaps saturated pixels"),
                               (COSMIC, Flag.COSMIC_RAY, "overlaps a cosmic-ray hit that could not be repaired")):
            if b[i] & bit:
                flags[i] |= int(flag)
                issues.append({"index": int(i), "file": str(files[i]),
                               "reason": f"the chosen target aperture (r={radius:.1f} px) {why}"})
    return flags, issues


def _good_smallest(metric, covered, n):
    """The smallest ``covered`` aperture whose scatter is within the sampling noise of a scatter
    measured on ``n`` frames (1 / sqrt(2 (n - 1))) of the best one: as good as any, and holding
    the least light of neighbours."""
    best = np.min(metric[covered])
    ok = covered & (metric <= best * (1.0 + 1.0 / np.sqrt(max(2.0 * (n - 1), 1.0))))
    return int(np.flatnonzero(ok)[0])


def _seeing_penalty(diff, seeing, time, covered, anchor):
    """Per aperture, the RMS of ``diff / diff[anchor]`` that follows the seeing, less what white
    noise alone gives a fitted slope (its variance is sigma^2 / n, sigma from ``p2p_scatter``).

    The ratio cancels the target's own signal (the same in every aperture), which may follow the
    seeing by chance; what is left is the aperture's: a comparison ensemble whose neighbours'
    light enters its apertures as the seeing changes. ``anchor`` (default the smallest aperture
    in ``covered``) should be a small aperture that is already good (see ``_good_smallest``): it
    lets in the least light of neighbours. An anchor not ``covered`` moves to the nearest one."""
    s = np.asarray(seeing, float)
    s = s if time is None else s[np.argsort(time, kind="stable")]
    full = np.flatnonzero(covered)
    if full.size == 0 or s.shape != diff.shape[-1:]:
        return np.zeros(diff.shape[0])
    a = full[0] if anchor is None else int(full[np.argmin(np.abs(full - int(anchor)))])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = diff / diff[a]
    n = np.isfinite(ratio).sum(axis=-1)
    noise = np.nan_to_num(p2p_scatter(ratio)) ** 2 / np.maximum(n, 1)
    excess = np.nan_to_num(seeing_trend(ratio, s)) ** 2 - noise
    return np.sqrt(np.clip(excess, 0.0, None))


def seeing_trend(diff, seeing):
    """RMS of the part of each curve ``diff`` (n_apertures, n_frames) explained by a straight-line
    fit against ``seeing`` (n_frames,); NaNs ignored, 0 where the seeing does not vary.

    Never astrophysical: a star's light does not follow the seeing, its measurement does (a
    neighbour's wings entering the aperture, a too-small aperture losing light)."""
    diff = np.asarray(diff, dtype=float)
    s = np.broadcast_to(np.asarray(seeing, float), diff.shape)
    ok = np.isfinite(diff) & np.isfinite(s)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = np.sum(np.where(ok, s, 0.0), axis=-1) / n
        md = np.sum(np.where(ok, diff, 0.0), axis=-1) / n
        ds = np.where(ok, s - ms[..., None], 0.0)
        dd = np.where(ok, diff - md[..., None], 0.0)
        var_s = np.sum(ds * ds, axis=-1)
        slope = np.sum(ds * dd, axis=-1) / var_s
        out = np.abs(slope) * np.sqrt(var_s / n)
    return np.where((n >= 3) & (var_s > 0) & np.isfinite(out), out, 0.0)


def binned_scatter(x, time, dt, axis=-1):
    """Standard deviation of the means of ``x`` in time bins of width ``dt`` (days), times sqrt(n).

    Red noise (trends on the bin scale) keeps this high where the point-to-point scatter would not;
    multiplied by sqrt(mean points per bin) so it is comparable to a per-point scatter.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    order, starts = bin_edges(time, dt)
    xs = x[..., order]
    ok = np.isfinite(xs)
    sums = np.add.reduceat(np.where(ok, xs, 0.0), starts, axis=-1)
    counts = np.add.reduceat(ok, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
        n_mean = np.mean(counts, axis=-1)
    return np.nanstd(means, axis=-1) * np.sqrt(n_mean)
