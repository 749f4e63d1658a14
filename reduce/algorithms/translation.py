"""Placing a frame on the reference when asterisms cannot: few stars, or unreliable detections.

Pure array maths, no Image or Block. Three fallbacks for :mod:`reduce.algorithms.asterism`, each
returning a :class:`Placement` or raising :class:`~reduce.algorithms.asterism.MatchError` -- never a
guess:

* :func:`vote_translation`: every (reference star, frame star) pair of the brightest stars proposes
  an offset (also for the field turned by 180 degrees, a meridian flip); the offset shared by most
  stars wins, when the chance of so many stars agreeing that well at random (a false-alarm
  probability from the star density and the measured residuals, with every proposal counted as a
  trial) is small. Small rotations are then fitted on the matched stars.
* :func:`single_star`: one star is enough when it is unambiguous: the frame's clearly dominant
  source, with a flux like one reference star's, nearest the predicted place.
* :func:`correlate`: the reference star list rendered as zero-sum stamps, cross-correlated (FFT)
  with the frame's noise-normalised pixels; the peak must be significant as a z-score of the
  correlation at that shift and clearly above any other peak.

Convention (as the asterism module): a 3x3 matrix maps reference ``(x, y, 1)`` to frame pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .asterism import MatchError, apply_transform
from .neighbors import Neighbors

__all__ = ["Placement", "vote_translation", "single_star", "correlate", "false_alarm", "refine"]


@dataclass(frozen=True)
class Placement:
    """A placed frame: ``transform`` (3x3, reference -> frame), ``pairs`` (m, 2) matched (reference,
    frame) indices (may be empty for cross-correlation), ``rms`` residual (px) on the pairs,
    ``score`` (false-alarm probability for votes, peak z-score for correlations) and ``method``."""

    transform: np.ndarray
    pairs: np.ndarray
    rms: float
    score: float
    method: str

    @property
    def n_matched(self) -> int:
        return len(self.pairs)


def _matrix(lin: np.ndarray, offset) -> np.ndarray:
    t = np.eye(3)
    t[:2, :2] = lin
    t[:2, 2] = offset
    return t


def _area(shape, xy: np.ndarray) -> float:
    """Frame area (px^2): from its shape, else the bounding box of the detections."""
    if shape is not None and len(shape) == 2:
        return float(shape[0] * shape[1])
    span = np.ptp(xy, axis=0) if len(xy) else np.zeros(2)
    return float(max(span[0], 1.0) * max(span[1], 1.0))


def false_alarm(n_trials: int, n_ref: int, k: int, p: float) -> float:
    """Chance that any of ``n_trials`` random offsets has ``k`` agreeing stars: each trial holds
    its own pair, and each of the ``n_ref - 1`` other reference stars agrees with probability ``p``
    (binomial tail P(X >= k - 1), Bonferroni over the trials)."""
    n, need = max(n_ref - 1, 0), k - 1
    if need <= 0:
        return 1.0
    if need > n:
        return 0.0
    p = min(max(p, 0.0), 1.0)
    tail = sum(math.comb(n, m) * p ** m * (1 - p) ** (n - m) for m in range(need, n + 1))
    return min(1.0, n_trials * tail)


def _one_to_one(t, ref_xy, xy, tolerance, around=None, slope=0.0):
    """(ref index, frame index, distance) of nearest pairs under ``t``, each frame star used once
    (closest pair wins). The radius is ``tolerance``, plus ``slope`` times the distance from the
    reference point ``around`` when given (room for a rotation not yet fitted)."""
    rok = np.flatnonzero(np.isfinite(ref_xy).all(axis=1))
    fok = np.flatnonzero(np.isfinite(xy).all(axis=1))
    if not len(rok) or not len(fok):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    radius = np.full(len(rok), float(tolerance))
    if around is not None and slope > 0:
        radius += slope * np.hypot(*(ref_xy[rok] - around).T)
    d, j = Neighbors(xy[fok]).query(apply_transform(t, ref_xy[rok]), distance_upper_bound=radius.max())
    ok = d <= radius
    r, j, d = rok[ok], fok[j[ok]], d[ok]
    order = np.argsort(d, kind="stable")
    r, j, d = r[order], j[order], d[order]
    _, first = np.unique(j, return_index=True)
    first = np.sort(first)
    return r[first], j[first], d[first]


def _rigid(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation (2x2) and angle (deg) of the least-squares rigid map of ``src`` onto ``dst``."""
    a, b = src - src.mean(axis=0), dst - dst.mean(axis=0)
    s = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum())
    c = float((a * b).sum())
    ang = math.atan2(s, c)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    return rot, math.degrees(ang)


def _fit(lin, src_xy, dst, min_span, max_rotation):
    """Translation after ``lin``, plus a rigid rotation (at most ``max_rotation`` deg) when the
    stars span ``min_span`` px: (3x3 transform, whether a rotation was fitted)."""
    src = src_xy @ lin.T
    rot, rotated = np.eye(2), False
    if len(src) >= 2 and np.ptp(src, axis=0).max() >= min_span:
        rot_fit, ang = _rigid(src, dst)
        if abs(ang) <= max_rotation:
            rot, rotated = rot_fit, True
    return _matrix(rot @ lin, (dst - src @ rot.T).mean(axis=0)), rotated


def _refine(lin, offset, ref_xy, xy, tolerance, max_rotation, min_span):
    """Re-pair every star and fit a translation, plus a rotation of at most ``max_rotation`` deg
    once the matched stars span ``min_span`` px. Until then, stars farther from the matched ones
    are sought within a radius grown by what such a rotation could move them, so a rotated sparse
    field is found; the pairs kept are those within ``tolerance`` of the fit. A few rounds.
    Returns (transform, pairs, rms)."""
    t = _matrix(lin, offset)
    slope = math.sin(math.radians(max_rotation))
    pairs, rms, around, rotated = np.zeros((0, 2), int), np.inf, None, False
    for _ in range(6):
        r, j, _ = _one_to_one(t, ref_xy, xy, tolerance, around, 0.0 if rotated else slope)
        if not len(r):
            break
        t_new, rotated = _fit(lin, ref_xy[r], xy[j], min_span, max_rotation)
        r, j, d = _one_to_one(t_new, ref_xy, xy, tolerance)
        if not len(r):
            break
        new_pairs = np.column_stack([r, j])
        done = np.array_equal(new_pairs, pairs)
        t, pairs, rms = t_new, new_pairs, float(np.sqrt(np.mean(d ** 2)))
        around = ref_xy[r].mean(axis=0)
        if done:
            break
    return t, pairs, rms


def refine(t, ref_xy, xy, *, tolerance: float, max_rotation: float = 3.0):
    """(transform, pairs, rms): ``t``'s linear part kept, its translation (and a rotation of at
    most ``max_rotation`` degrees) refitted on every star ``t`` maps within ``tolerance`` of one."""
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    xy = np.asarray(xy, float).reshape(-1, 2)
    r, _, _ = _one_to_one(t, ref_xy, xy, tolerance)
    if not len(r):
        return t, np.zeros((0, 2), int), float("nan")
    lin = t[:2, :2]
    return _refine(lin, t[:2, 2], ref_xy, xy, tolerance, max_rotation, min_span=10 * tolerance)


def _candidates(R, F, tree, tolerance, lin):
    """Offsets proposed by every (reference, frame) pair under the linear part ``lin``, with the
    number of reference stars each maps within ``tolerance`` of a frame star and their residuals."""
    lr = R @ lin.T
    offsets = (F[None, :, :] - lr[:, None, :]).reshape(-1, 2)
    pts = lr[None, :, :] + offsets[:, None, :]
    d, _ = tree.query(pts.reshape(-1, 2), distance_upper_bound=tolerance)
    d = d.reshape(len(offsets), len(R))
    hit = np.isfinite(d)
    return offsets, hit.sum(axis=1), np.where(hit, d, 0.0)


def vote_translation(ref_xy, xy, *, tolerance: float, shape=None, n: int = 20, turn: bool = True,
                     alpha: float = 0.01, max_rotation: float = 3.0) -> Placement:
    """Translation (or translation of the field turned by 180 degrees) from offset voting.

    ``ref_xy`` and ``xy`` are brightest first; the ``n`` brightest of each vote. A solution needs
    two or more agreeing stars whose chance agreement (:func:`false_alarm`, with the agreement
    radius taken from the measured residuals, at least 0.05 px) is below ``alpha``. The winner is
    refined on every star with a translation and, when the matched stars span enough, a rotation of
    at most ``max_rotation`` degrees. Raises MatchError otherwise.
    """
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    xy = np.asarray(xy, float).reshape(-1, 2)
    R = ref_xy[np.isfinite(ref_xy).all(axis=1)][:n]
    F = xy[np.isfinite(xy).all(axis=1)][:n]
    if len(R) < 2 or len(F) < 2:
        raise MatchError(f"too few stars to vote on an offset ({len(R)} reference, {len(F)} frame)")
    tree = Neighbors(F)
    lins = [np.eye(2)] + ([-np.eye(2)] if turn else [])
    best = None
    for li, lin in enumerate(lins):
        offsets, support, dist = _candidates(R, F, tree, tolerance, lin)
        cost = (dist ** 2).sum(axis=1)
        i = int(np.lexsort((cost, -support))[0])
        k = int(support[i])
        rival = (support == k) & (np.hypot(*(offsets - offsets[i]).T) > 2 * tolerance)
        cand = (k, offsets[i], lin, bool(rival.any()))
        if best is None or k > best[0]:
            best = cand
    k, offset, lin, ambiguous = best
    if k < 2:
        raise MatchError("no offset is shared by two stars")
    if ambiguous:
        raise MatchError(f"ambiguous offset: several offsets are shared by {k} stars")
    # residuals of the agreeing stars about their mean offset: how close the agreement really is
    lr = R @ lin.T
    d, j = tree.query(lr + offset, distance_upper_bound=tolerance)
    ok = np.isfinite(d)
    off = F[j[ok]] - lr[ok]
    spread = float(np.hypot(*(off - off.mean(axis=0)).T).max()) if ok.sum() > 1 else tolerance
    density = len(F) / _area(shape, xy)
    n_trials = len(R) * len(F) * len(lins)
    fa = false_alarm(n_trials, len(R), k, density * math.pi * max(2.0 * spread, 0.05) ** 2)
    t, pairs, rms = _refine(lin, off.mean(axis=0), ref_xy, xy, tolerance, max_rotation,
                            min_span=10 * tolerance)
    if fa > alpha and len(pairs) > k:
        # a rotation brought more stars in: as unlikely by chance? (one trial per rotation step
        # of a tolerance at the far end of the field)
        n_ref = int(np.isfinite(ref_xy).all(axis=1).sum())
        span = float(np.ptp(ref_xy[pairs[:, 0]], axis=0).max())
        steps = max(1, math.ceil(2 * math.radians(max_rotation) * span / tolerance))
        res = np.hypot(*(apply_transform(t, ref_xy[pairs[:, 0]]) - xy[pairs[:, 1]]).T)
        fa = min(fa, false_alarm(n_trials * steps, n_ref, len(pairs),
                                 density * math.pi * max(2.0 * float(res.max()), 0.05) ** 2))
    if fa > alpha:
        raise MatchError(f"an offset shared by {k} stars could be chance (false-alarm probability "
                         f"{fa:.2g} > {alpha:g})")
    if len(pairs) < 2:
        raise MatchError("the voted offset did not survive the refinement")
    return Placement(t, pairs, rms, fa, "translation")


def single_star(ref_xy, ref_flux, xy, flux, *, tolerance: float, shape=None, ref_size=None, size=None,
                dominance: float = 2.0, flux_range: float = 4.0, reach: float | None = None) -> Placement:
    """Translation from one star when it is unambiguous.

    The frame's brightest source must outshine the next by ``dominance`` times; the reference stars
    whose flux is within ``flux_range`` times of it (and, when ``ref_size``/``size`` give the
    sources' sizes, whose size is within 2 times) are its candidates; the candidate nearest the
    predicted place (no shift) is taken when it lies within ``reach`` px (default 10 tolerances)
    and the next is at least 4 times farther, and when no other reference star at least half as
    bright lands on the frame without a detection there. Raises MatchError otherwise (and when
    fluxes are unknown).
    """
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    xy = np.asarray(xy, float).reshape(-1, 2)
    reach = 10.0 * tolerance if reach is None else reach
    if ref_flux is None or flux is None:
        raise MatchError("fluxes are unknown: one star cannot be identified")
    ref_flux, flux = np.asarray(ref_flux, float), np.asarray(flux, float)
    fok = np.flatnonzero(np.isfinite(xy).all(axis=1) & np.isfinite(flux) & (flux > 0))
    rok = np.flatnonzero(np.isfinite(ref_xy).all(axis=1) & np.isfinite(ref_flux) & (ref_flux > 0))
    if not len(fok) or not len(rok):
        raise MatchError("no star with a flux to identify")
    fok = fok[np.argsort(-flux[fok], kind="stable")]
    j0, f0 = fok[0], flux[fok[0]]
    if len(fok) > 1 and flux[fok[1]] * dominance > f0:
        raise MatchError(f"no dominant star on the frame (the two brightest are within {dominance:g}x)")
    ratio = f0 / ref_flux[rok]
    like = (ratio <= flux_range) & (ratio >= 1 / flux_range)
    if ref_size is not None and size is not None and np.isfinite(size[j0]) and size[j0] > 0:
        sr = size[j0] / np.asarray(ref_size, float)[rok]
        like &= ~(sr > 2) & ~(sr < 0.5)  # a cosmic ray or a blend is not the star
    cand = rok[like]
    if not len(cand):
        raise MatchError("the frame's brightest source matches no reference star's flux and size")
    shifts = xy[j0] - ref_xy[cand]
    dist = np.hypot(*shifts.T)
    order = np.argsort(dist, kind="stable")
    if dist[order[0]] > reach:
        raise MatchError(f"the frame's brightest source is {dist[order[0]]:.0f} px from any like "
                         f"reference star (more than {reach:.0f} px)")
    if len(order) > 1 and dist[order[0]] > 0.25 * dist[order[1]]:
        raise MatchError(f"the frame's brightest star could be any of {len(cand)} reference stars")
    i0, shift = cand[order[0]], shifts[order[0]]
    t = _matrix(np.eye(2), shift)
    _missing(t, ref_xy, ref_flux, xy, i0, tolerance, shape)
    return Placement(t, np.array([[i0, j0]]), 0.0, 1.0, "single star")


def _missing(t, ref_xy, ref_flux, xy, i0, tolerance, shape) -> None:
    """Raise when another reference star at least half as bright as ``i0`` maps onto the frame
    (away from its borders) with no detection there: the identification would be contradicted."""
    bright = np.flatnonzero(np.isfinite(ref_flux) & (ref_flux >= 0.5 * ref_flux[i0]))
    bright = bright[bright != i0]
    if not len(bright) or shape is None or len(shape) != 2:
        return
    p = apply_transform(t, ref_xy[bright])
    h, w = shape
    m = 3 * tolerance
    inside = (p[:, 0] > m) & (p[:, 0] < w - 1 - m) & (p[:, 1] > m) & (p[:, 1] < h - 1 - m)
    if not inside.any():
        return
    ok = np.isfinite(xy).all(axis=1)
    d, _ = Neighbors(xy[ok]).query(p[inside], distance_upper_bound=3 * tolerance)
    if not np.isfinite(d).all():
        raise MatchError("a bright reference star would land on the frame where nothing is detected")


# -- cross-correlation ------------------------------------------------------------------------

def _stamps(xy, shape, fwhm) -> np.ndarray:
    """The star list rendered on a canvas of ``shape``: one zero-sum stamp per star (a Gaussian of
    the FWHM minus one three times wider), so smooth backgrounds and gradients correlate to zero."""
    h, w = shape
    s1 = max(fwhm, 1.0) / 2.3548
    s2 = 3 * s1
    r = int(math.ceil(3 * s2))
    g = np.arange(-r, r + 1)
    canvas = np.zeros((h + 4 * r, w + 4 * r))
    for x, y in xy:
        ix, iy = int(round(x)), int(round(y))
        if not (-r <= ix < w + r and -r <= iy < h + r):
            continue
        rr = (g - (y - iy))[:, None] ** 2 + (g - (x - ix))[None, :] ** 2
        stamp = np.exp(-rr / (2 * s1 ** 2)) / s1 ** 2 - np.exp(-rr / (2 * s2 ** 2)) / s2 ** 2
        canvas[iy + r: iy + 3 * r + 1, ix + r: ix + 3 * r + 1] += stamp  # centred at (iy + 2r, ix + 2r)
    return canvas[2 * r: 2 * r + h, 2 * r: 2 * r + w]


def _noise_image(data, bkg, rms):
    """(z, valid): the frame as signal-to-noise per pixel, compressed by arcsinh (linear in the
    noise, logarithmic in stars and cosmics, which so cannot dominate; 0 where not finite)."""
    data = np.asarray(data, float)
    valid = np.isfinite(data)
    vals = data[valid]
    if vals.size < 16:
        raise MatchError("the frame has no finite pixels to correlate")
    sample = vals[:: max(1, vals.size // 20000)]
    if bkg is None or not np.isfinite(bkg):
        bkg = float(np.median(sample))
    if rms is None or not (np.isfinite(rms) and rms > 0):
        rms = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    if not rms > 0:
        raise MatchError("the frame is flat: nothing to correlate")
    z = np.where(valid, np.arcsinh((data - bkg) / rms), 0.0)
    return z, valid.astype(float)


def _peak(s: np.ndarray, ok: np.ndarray):
    """(index, value) of the largest ``s`` where ``ok``."""
    masked = np.where(ok, s, -np.inf)
    k = int(np.argmax(masked))
    return np.unravel_index(k, s.shape), float(masked.flat[k])


def _subpixel(c: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Parabolic sub-pixel offsets of the peak of ``c`` at (iy, ix) (circular neighbours)."""
    ny, nx = c.shape
    out = []
    for a, b, m in ((c[(iy - 1) % ny, ix], c[(iy + 1) % ny, ix], c[iy, ix]),
                    (c[iy, (ix - 1) % nx], c[iy, (ix + 1) % nx], c[iy, ix])):
        den = a - 2 * m + b
        out.append(0.5 * (a - b) / den if den < 0 else 0.0)
    return out[0], out[1]


def correlate(ref_xy, data, *, fwhm: float, ref_shape=None, bkg=None, rms=None, n: int = 100, turn: bool = True,
              min_snr: float = 7.0, rival: float = 0.75, min_overlap: float = 0.25) -> Placement:
    """Translation (or 180-degree turn) of the frame's pixels against the rendered reference stars.

    The ``n`` brightest reference stars are drawn as zero-sum stamps of the ``fwhm`` on a canvas of
    ``ref_shape`` (the reference frame's, else the frame's); the frame is background-subtracted,
    divided by its noise and compressed by arcsinh (cosmics and bright stars cannot dominate). At
    every shift with at least ``min_overlap`` of the stamps on the frame, the correlation is a
    z-score (divided by its noise at that shift). The best shift must reach ``min_snr`` and every
    other peak (beyond two FWHM) must stay under ``rival`` times it. Raises MatchError otherwise.
    """
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    ref_xy = ref_xy[np.isfinite(ref_xy).all(axis=1)][:n]
    if not len(ref_xy):
        raise MatchError("no reference star to correlate")
    if not (fwhm and np.isfinite(fwhm) and fwhm > 0):
        raise MatchError("no FWHM to render the reference stars")
    z, valid = _noise_image(data, bkg, rms)
    h, w = z.shape
    hr, wr = (ref_shape if ref_shape is not None and len(ref_shape) == 2 else (h, w))
    model = _stamps(ref_xy, (hr, wr), fwhm).astype(np.float32)
    from scipy import fft  # only here: this fallback is the one user of scipy's FFT

    size = (fft.next_fast_len(h + hr - 1, real=True), fft.next_fast_len(w + wr - 1, real=True))
    fz, fv = fft.rfft2(z.astype(np.float32), size), fft.rfft2(valid.astype(np.float32), size)
    sigma_z = float(z[valid > 0].std())
    best = None
    for turned in ([False, True] if turn else [False]):
        m = model[::-1, ::-1] if turned else model
        fm, fm2 = np.conj(fft.rfft2(m, size)), np.conj(fft.rfft2(m * m, size))
        c = fft.irfft2(fz * fm, size).astype(float)
        e = fft.irfft2(fv * fm2, size).astype(float)
        full = float((m * m).sum())
        ok = e > min_overlap * full
        s = np.where(ok, c / (sigma_z * np.sqrt(np.where(ok, e, 1.0))), 0.0)
        (iy, ix), top = _peak(s, ok)
        if best is None or top > best[0]:
            best = (top, turned, iy, ix, s, ok, c)
    top, turned, iy, ix, s, ok, c = best
    if not top >= min_snr:
        raise MatchError(f"no significant correlation peak (z-score {top:.1f} < {min_snr:g})")
    ny, nx = s.shape
    yy = np.minimum(np.abs(np.arange(ny) - iy), ny - np.abs(np.arange(ny) - iy))
    xx = np.minimum(np.abs(np.arange(nx) - ix), nx - np.abs(np.arange(nx) - ix))
    far = (yy[:, None] ** 2 + xx[None, :] ** 2) > (2 * fwhm) ** 2
    _, second = _peak(s, ok & far)
    if second > rival * top:
        raise MatchError(f"ambiguous correlation: two peaks of z-score {top:.1f} and {second:.1f}")
    fy, fx = _subpixel(c, iy, ix)
    sy = (iy if iy < h else iy - ny) + fy  # indices past the frame are negative shifts
    sx = (ix if ix < w else ix - nx) + fx
    if turned:  # the stamp at reference (x, y) sits at canvas (wr - 1 - x, hr - 1 - y)
        t = _matrix(-np.eye(2), [wr - 1 + sx, hr - 1 + sy])
    else:
        t = _matrix(np.eye(2), [sx, sy])
    return Placement(t, np.zeros((0, 2), int), float("nan"), top, "cross-correlation")
