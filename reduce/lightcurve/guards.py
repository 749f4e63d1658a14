"""The differential step's frame guards: clouds that took too much light, and a last-line guard on
target outliers (``Fluxes.set_aside_clouds``, ``Fluxes.outlier_guard``).

A transparency loss is what the ensemble corrects: a clouded frame is kept, with its larger error,
unless the comparisons lost more than ``max_loss`` of their light. A frame whose target ratio
jumps away from its neighbours in time is a defect of the measurement (of the target: a cosmic
ray, a satellite, a bad pixel; or of a comparison the single-frame tests missed, when the
ensemble jumps there too) and is set aside; smooth signals (transits, eclipses) are followed by
the neighbours' local fits and never are.
"""
from __future__ import annotations

import numpy as np

from .clipping import local_noise
from .stats import nanmedian

__all__ = ["comparison_light", "light_loss_frames", "neighbour_deviation", "neighbour_miss", "ensemble_error",
           "target_outliers", "MAX_LIGHT_LOSS", "GUARD_SIGMA", "GUARD_WINDOW"]

# A frame is set aside when the comparisons lost more than this fraction of their light. Its
# variance grows as 1/T (source-limited) to 1/T^2 (sky-limited; a cloud brightens the sky too):
# past 80 % lost it weighs less than 1/5 of a clear frame in a weighted fit (1/25 sky-limited),
# the faintest comparisons fall below detection, and so thick a cloud is patchy across the
# field, which no ensemble corrects. Below that the frames still help a weighted fit (an
# unweighted mean gains from a frame only while its variance is < (2 + 1/n)x a clear frame's:
# 50 % lost, source-limited, is the stricter choice for binned curves).
MAX_LIGHT_LOSS = 0.8
GUARD_SIGMA = 5.0   # robust sigmas from the neighbours: ~2 false alarms in 10^5 white-noise frames
GUARD_WINDOW = 15   # frames: 7 neighbours on each side fit the local trend
_MIN_FRAMES = 15
_SMOOTH = 1.3  # a parabola whose residuals scatter more than this many sigmas misses a feature
_AGREE = 2.5   # ... and so does one more than this many sigmas from either one-sided line


def comparison_light(flux, target: int, *, saturated=None, n_max: int = 20) -> np.ndarray | None:
    """Per frame, the comparisons' light relative to the night's median (1 = as usual): the median
    over the ``n_max`` brightest other stars (never saturated) of their flux / median flux.
    ``flux``: (n_stars, n_frames) in one aperture. None with fewer than 3 such stars."""
    flux = np.asarray(flux, float)
    with np.errstate(invalid="ignore"):
        level = nanmedian(np.where(flux > 0, flux, np.nan), axis=-1)
    ok = np.isfinite(level) & (level > 0)
    ok[target] = False
    if saturated is not None:
        ok &= ~np.any(np.asarray(saturated, bool), axis=-1)
    stars = [i for i in np.argsort(-np.where(ok, level, -np.inf)) if ok[i]][:n_max]
    if len(stars) < 3:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return nanmedian(flux[stars] / level[stars, None], axis=0)


def light_loss_frames(light, max_loss: float) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason): frames whose comparisons lost more than ``max_loss`` of their light go."""
    light = np.asarray(light, float)
    with np.errstate(invalid="ignore"):
        out = np.isfinite(light) & (light < 1.0 - max_loss)
    reason = np.array([""] * light.size, dtype=object)
    for i in np.flatnonzero(out):
        reason[i] = (f"clouds: the comparisons lost {100 * (1 - light[i]):.0f} % of their light "
                     f"(> {100 * max_loss:g} %)")
    return ~out, reason


def ensemble_error(flux, weights) -> np.ndarray:
    """Per frame, the weighted ensemble of the comparisons over their common mode (the median of
    their normalised fluxes: one comparison's jump does not move it, whatever its weight), minus
    1: what the comparisons' own defects put into every target ratio. ``flux``: (n_stars,
    n_frames) in the chosen aperture; ``weights``: (n_stars,)."""
    w = np.asarray(weights, float)
    comps = np.flatnonzero(w > 0)
    n_frames = np.shape(flux)[-1]
    if comps.size < 2:
        return np.zeros(n_frames)
    f = np.asarray(flux, float)[comps]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = f / nanmedian(f, axis=-1)[:, None]
        wc = np.where(np.isfinite(n), w[comps, None], 0.0)
        ens = np.nansum(wc * n, axis=0) / wc.sum(axis=0)
        return ens / nanmedian(n, axis=0) - 1.0


def neighbour_deviation(y, time=None, window: int = GUARD_WINDOW, expected=None) -> np.ndarray:
    """|y - its neighbours' prediction| per frame in robust sigmas of the local frame-to-frame
    noise (see ``neighbour_miss``), or where larger of the frame's ``expected`` error scaled to
    that noise (a frame under a cloud is noisier than its clear neighbours); NaN where y is, 0
    on a series too short to judge."""
    miss, sigma = neighbour_miss(y, time, window)
    if expected is not None:
        sigma = np.fmax(sigma, _scaled(expected, sigma))
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(sigma > 0, miss / sigma, 0.0)
    return np.where(np.isfinite(np.asarray(y, float)), np.nan_to_num(dev, nan=0.0), np.nan)


def neighbour_miss(y, time=None, window: int = GUARD_WINDOW, sigma=None) -> tuple[np.ndarray, np.ndarray]:
    """(|y - its neighbours' prediction|, the noise it is judged by) per frame; NaN where y is
    and on a series of fewer than 2 ``window`` frames (its noise cannot be known well enough).

    The noise is ``sigma`` (per frame) or the robust local one (``_noise``). Where a parabola
    through the ``window`` // 2 frames on each side fits them (residual RMS <= ``_SMOOTH``
    sigmas, within ``_AGREE`` sigmas of both one-sided lines below), it is the prediction. Where
    it does not (a sharp feature: a transit's contact, an eclipse's minimum, an ingress of a few
    frames, a cloud's sky peak), the nearest of: the parabola, one through the two nearest frames
    on each side (a sharp rounded extremum), a line through the frames before it, one through
    those after it (both Theil-Sen: one outlier among them moves nothing) and the interval
    between its two neighbours' values (a monotonic change, however steep, is inside it). A jump
    of one frame misses them all."""
    y = np.asarray(y, float)
    miss, noise = np.full(y.size, np.nan), np.full(y.size, np.nan)
    idx = np.flatnonzero(np.isfinite(y))
    if idx.size < max(_MIN_FRAMES, 2 * int(window)):
        return miss, noise
    x = idx.astype(float)
    if time is not None:
        t = np.asarray(time, float)[idx]
        if np.all(np.isfinite(t)) and np.all(np.diff(t) > 0):
            x = (t - t[0]) / np.median(np.diff(t))  # in typical frame steps
    v = y[idx]
    h = max(int(window) // 2, 3)
    left, right = _neighbours(v, h), _neighbours(v, h, after=True)
    xl, xr = _neighbours(x, h) - x[:, None], _neighbours(x, h, after=True) - x[:, None]
    sig = _noise(v, h) if sigma is None else np.asarray(sigma, float)[idx]
    quad, rms = _parabola_at0(np.hstack([xl, xr]), np.hstack([left, right]), sig)
    both = (np.isfinite(left).sum(axis=1) >= 3) & (np.isfinite(right).sum(axis=1) >= 3)
    lines = np.stack([_theil_sen_at0(xl, left), _theil_sen_at0(xr, right)])
    with np.errstate(invalid="ignore"):
        agree = np.all(np.abs(lines - quad) <= _AGREE * sig, axis=0)  # a V's tip: they do not
    smooth = both & (rms <= _SMOOTH * sig) & agree
    lo, hi = np.fmin(left[:, -1], right[:, 0]), np.fmax(left[:, -1], right[:, 0])
    between = np.where(both, np.maximum(0.0, np.maximum(lo - v, v - hi)), np.nan)
    # the parabola through the 2 + 2 nearest frames (even steps): 2/3 of the first, -1/6 of the second
    near = (left[:, -1] + right[:, 0]) * 2 / 3 - (left[:, -2] + right[:, 1]) / 6
    sharp = np.vstack([np.abs(lines - v), np.abs(quad - v)[None], np.abs(near - v)[None], between[None]])
    with np.errstate(invalid="ignore"):
        miss[idx] = np.where(smooth, np.abs(quad - v), np.nanmin(sharp, axis=0))
    noise[idx] = sig
    return miss, noise


def _neighbours(v, h: int, after: bool = False) -> np.ndarray:
    """(n, h): the h values before (or after) each one, NaN beyond the ends."""
    pad = np.concatenate([np.full(h, np.nan), v, np.full(h, np.nan)])
    w = np.lib.stride_tricks.sliding_window_view(pad, 2 * h + 1)
    return w[:, h + 1:] if after else w[:, :h]


def _theil_sen_at0(x, y) -> np.ndarray:
    """Per row, the Theil-Sen line through (x, y) evaluated at x = 0 (NaN with < 3 points)."""
    j, k = np.triu_indices(x.shape[1], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = nanmedian((y[:, j] - y[:, k]) / (x[:, j] - x[:, k]), axis=1)
        at0 = nanmedian(y - slope[:, None] * x, axis=1)
    return np.where(np.isfinite(y).sum(axis=1) >= 3, at0, np.nan)


def _parabola_at0(x, y, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the least-squares parabola through (x, y), refitted without its worst point when
    that one is more than 4 ``sigma`` off (another outlier nearby): its value at x = 0 and the
    RMS of its residuals (NaN with < 5 points)."""
    ok = np.isfinite(y) & np.isfinite(x)
    for _ in range(2):
        coef, resid, good = _lstsq_parabola(x, y, ok)
        worst = np.argmax(np.abs(resid), axis=1)
        far = np.abs(resid[np.arange(len(worst)), worst]) > 4 * sigma
        if not far.any():
            break
        ok[np.flatnonzero(far), worst[far]] = False
    rms = np.sqrt(np.sum(resid ** 2, axis=1) / np.maximum(ok.sum(axis=1), 1))
    return np.where(good, coef[:, 0], np.nan), np.where(good, rms, np.nan)


def _lstsq_parabola(x, y, ok):
    """Per row, the parabola's coefficients through the ``ok`` points, their residuals (0 where
    not ok) and whether the fit was possible (>= 5 points)."""
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    a = np.stack([ok * 1.0, xs, xs ** 2], axis=-1)  # (n, m, 3)
    ata = np.einsum("nmi,nmj->nij", a, a)
    atb = np.einsum("nmi,nm->ni", a, ys)
    good = (ok.sum(axis=1) >= 5) & (np.abs(np.linalg.det(ata)) > 1e-12)
    ata[~good] = np.eye(3)
    coef = np.linalg.solve(ata, atb[..., None])[..., 0]
    return coef, np.where(ok, ys - np.einsum("nmi,ni->nm", a, coef), 0.0), good


def _noise(v, h: int) -> np.ndarray:
    """Per frame, the robust frame-to-frame noise: from second differences, the night's or,
    where larger, that of the ``4h + 1`` frames around it (a noisier stretch: clouds), leaving
    out the three second differences the frame itself is in."""
    d2 = v[:-2] - 2 * v[1:-1] + v[2:]
    night = 1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6)
    if d2.size <= 4 * h:
        return np.full(v.size, night)
    return np.maximum(night, local_noise(d2, 4 * h + 1))


def _scaled(expected, sigma) -> np.ndarray:
    """``expected`` errors scaled so that their median is the median of the robust ``sigma``."""
    e = np.asarray(expected, float)
    ok = np.isfinite(e) & (e > 0) & np.isfinite(sigma)
    if not ok.any():
        return np.full(e.shape, np.nan)
    return e * (np.median(sigma[ok]) / np.median(e[ok]))


def target_outliers(target, ensemble, time=None, *, sigma: float = GUARD_SIGMA,
                    window: int = GUARD_WINDOW, errors=None) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason): frames whose target ratio is more than ``sigma`` robust sigmas from its
    neighbours (``neighbour_deviation``, with the ratio's ``errors`` as the expected noise). When
    the ensemble's own error series jumps there too (a comparison's defect the single-frame tests
    missed), the frame is set aside all the same, the reason saying so: a ratio that far off is
    not a measurement, whichever star spoiled it (a simulated colour night kept one 7 sigma off)."""
    dt = neighbour_deviation(target, time, window, expected=errors)
    de = neighbour_deviation(ensemble, time, window)
    with np.errstate(invalid="ignore"):
        out = dt > sigma
        both = out & (de > sigma)
    reason = np.array([""] * dt.size, dtype=object)
    for i in np.flatnonzero(out):
        reason[i] = f"target outlier: {dt[i]:.1f} sigma from its neighbours (> {sigma:g})"
        if both[i]:  # the comparisons disagree there too: the ratio is no better for it
            reason[i] += f"; the comparisons disagree on this frame ({de[i]:.0f} sigma)"
    return ~out, reason
