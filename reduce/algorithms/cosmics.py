"""Cosmic-ray hits around measured stars: pixels sharper than the PSF allows (L.A.Cosmic's idea).

L.A.Cosmic (van Dokkum 2001) finds hits with a Laplacian (a pixel far above its neighbours) and
tells them from stars with the fine structure (a 3x3 median keeps a star, but not a feature one
pixel wide). Here candidates are pixels above the sky with a positive Laplacian (star cores and
hits, not smooth wings), and the test is one order statistic ``m``, the 6th of the 9 values of
the pixel's 3x3 box (dark under a hit of at most 3 lit pixels, bright inside a star): a hit stands
above ``m`` by more than ``sigma`` noise sigmas *plus* ``limit`` times ``m``'s height above the
sky, ``limit`` being the largest such ratio a pixel of a star of the frame's FWHM reaches
(:func:`sharpness_limit`). An undersampled star (FWHM ~2 px) is thus not a hit, while a single
pixel, a track one pixel wide, or a hit on a star's wing is; a hit on a star's peak is found only
when it is sharper than the star (about 1.5x its peak). Hits are grown to their 8 neighbours at
a lower threshold, seen with the hits found so far repaired (faint ends, thick tracks), as
L.A.Cosmic iterates.

Only the pixels near the given positions are searched (a map of 8x8 blocks; one threshold pass
over the frame, then the Laplacian and the order statistic of the few candidates only).
Hits are repaired with the median of their non-hit 8 neighbours, except in a star's core, where
the profile's curvature makes that median wrong: those are left to the caller to mask.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .centroids import cutouts

__all__ = ["sharpness_limit", "find_hits", "repair_hits", "core_hits", "mirror_hits", "mirror_values"]

_OFFSETS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # 3x3, centre at index 4
_RING = np.delete(_OFFSETS, 4, axis=0)                                       # the 8 neighbours
_RANK = 5  # the 6th of the 9 values of a 3x3 box: dark when at most 3 of them are lit (a hit)
_erf = np.frompyfunc(math.erf, 1, 1)  # scipy.special costs 0.2 s to import, in every worker


@lru_cache(maxsize=64)
def _star_ratio(fwhm: float) -> float:
    """Largest ``(p - m) / m`` (``m`` the 6th value of the 3x3 box) over the pixels of a
    pixel-integrated Gaussian star (sky 0), for the worst sub-pixel centring."""
    s = fwhm / 2.3548 * np.sqrt(2.0)
    edges = np.arange(-6.5, 7.5)
    c = np.linspace(0.0, 0.5, 6)
    prof = np.diff(_erf((edges[None, :] - c[:, None]) / s).astype(float), axis=1)  # (centring, pixel)
    img = prof[:, None, :, None] * prof[None, :, None, :]                     # (cy, cx, y, x)
    img = img.reshape(-1, *img.shape[2:])
    img /= img.max(axis=(1, 2), keepdims=True)
    win = np.lib.stride_tricks.sliding_window_view(img, (3, 3), axis=(1, 2)).reshape(-1, 9)
    m = np.sort(win, axis=1)[:, _RANK]
    p = win[:, 4]
    ok = p > 1e-3
    return float(np.max((p[ok] - m[ok]) / m[ok]))


def sharpness_limit(fwhm: float, margin: float = 1.5, core: float = 0.75, binning: float = 1.0) -> float:
    """The ``limit`` of ``p - m > limit * (m - sky)`` no pixel of a star exceeds, times ``margin``:
    that of a Gaussian of ``core`` x ``fwhm`` px (an undersampled star's core is sharper than the
    FWHM fitted to it: ~0.75x on HAT-P-32), rounded to 0.05 px, at least 1.2 px. On pixels
    ``binning`` raw pixels wide (a colour sensor's superpixels) the fitted FWHM says little of the
    core (a 1.5 raw px star is fitted ~1.1 superpixel wide, its core is 0.75), so 1.2 / ``binning``
    px is used: a hit of one raw pixel still stands alone in its superpixel."""
    least = 1.2 / max(float(binning), 1.0)
    if binning > 1 or not np.isfinite(fwhm):
        return margin * _star_ratio(least)
    f = max(round(float(core * fwhm) * 20) / 20, least)
    return margin * _star_ratio(f)


def _neighbours(data: np.ndarray, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Values (k, len(offsets)) at the given (dy, dx) offsets of the flat pixel indices ``flat``."""
    nx = data.shape[1]
    return np.ascontiguousarray(data).ravel().take(flat[:, None] + (offsets[:, 0] * nx + offsets[:, 1]))


def _sharp(data, flat, sky, noise, gain, limit, sigma, patch=None) -> np.ndarray:
    """True where the pixel stands above the 6th value of its 3x3 box by ``sigma`` noise sigmas
    and by more than ``limit`` times that value's height above the sky. ``patch``: (flat boolean
    map of the hits, their sorted flat indices, their repaired values) read instead of ``data``."""
    v = _neighbours(data, flat, _OFFSETS).astype(np.float32)
    if patch is not None:
        is_hit, idx, val = patch
        at = flat[:, None] + (_OFFSETS[:, 0] * data.shape[1] + _OFFSETS[:, 1])
        on = is_hit[at]
        v[on] = val[np.searchsorted(idx, at[on])]
    p = v[:, 4].copy()
    v.partition(_RANK, axis=1)
    m3 = v[:, _RANK]
    height = np.maximum(m3 - sky, 0.0)
    return p - m3 > sigma * np.sqrt(noise * noise + height / gain) + limit * height


def _interior(flat: np.ndarray, shape) -> np.ndarray:
    """The flat indices not on the frame's outer pixel border (they have 8 neighbours)."""
    ny, nx = shape
    y, x = np.divmod(flat, nx)
    return flat[(y > 0) & (y < ny - 1) & (x > 0) & (x < nx - 1)]


_BLOCK = 8  # px: the region searched is kept as a map of 8x8 blocks near the positions


def _blocks(xy: np.ndarray, radius: float, shape) -> np.ndarray:
    """(ny/8, nx/8) bool map of the 8x8 pixel blocks that meet a square of half-side ``radius``
    around any position."""
    ny, nx = shape
    by, bx = -(-ny // _BLOCK), -(-nx // _BLOCK)
    lo = np.floor((xy - radius) / _BLOCK).astype(np.int64).clip(0)
    hi = (np.floor((xy + radius) / _BLOCK).astype(np.int64) + 1).clip(0)
    hi = np.minimum(hi, (bx, by))
    blocks = np.zeros((by, bx), bool)
    side = int((hi - lo).max(initial=0))
    if side <= 0:
        return blocks
    o = np.arange(side)  # every square's blocks at once: (n, side, side) offsets, cut to its side
    y = lo[:, 1, None, None] + o[None, :, None]
    x = lo[:, 0, None, None] + o[None, None, :]
    inside = (y < hi[:, 1, None, None]) & (x < hi[:, 0, None, None])
    blocks.ravel()[(y * bx + x)[inside]] = True
    return blocks


def _candidates(data: np.ndarray, xy: np.ndarray, radius: float, level: float, curvature: float
                ) -> np.ndarray:
    """Flat indices of the interior pixels near the positions (in the 8x8 blocks that meet a
    square of half-side ``radius`` around one) above ``level`` whose Laplacian (4 p minus the 4
    neighbours) exceeds ``curvature``: star cores and hits, not smooth wings. The threshold is
    one pass over the frame; the blocks are looked up for the few pixels above it."""
    ny, nx = data.shape
    flat = data.ravel()
    with np.errstate(invalid="ignore"):
        k = np.flatnonzero(flat > level)
    y, x = np.divmod(k, nx)
    near = _blocks(xy, radius, data.shape)[y // _BLOCK, x // _BLOCK]
    near &= (y > 0) & (y < ny - 1) & (x > 0) & (x < nx - 1)
    k = k[near]
    lap = 4.0 * flat.take(k)
    lap -= flat.take(k - 1)
    lap -= flat.take(k + 1)
    lap -= flat.take(k - nx)
    lap -= flat.take(k + nx)
    return k[lap > curvature]


def find_hits(data: np.ndarray, xy: np.ndarray, radius: float, *, sky: float, noise: float,
              fwhm: float, gain: float = 1.0, sigma: float = 5.0, grow_sigma: float = 2.5,
              margin: float = 1.5, iterations: int = 2, binning: float = 1.0,
              core: float = 0.0) -> np.ndarray:
    """Sorted flat indices of the hit pixels within ``radius`` px (a square) of the positions.

    ``sky`` and ``noise`` are the frame's sky level and its per-pixel noise (ADU), ``gain`` in
    e-/ADU (the star's own photon noise), ``fwhm`` the frame's stars' FWHM (px), ``binning`` the
    raw pixels per pixel across (:func:`sharpness_limit`); with ``binning`` > 1 that limit holds
    within ``core`` px of a position only, the wings beyond get a monochrome star's of ``fwhm``
    (a star's wing is smooth however it is binned: a hit on a superpixel's wing was let through
    by the core's limit, ~20x higher). Flat indices
    are ``y * nx + x`` (whether or not ``data`` is contiguous).
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    empty = np.zeros(0, np.intp)
    if len(xy) == 0 or not (np.isfinite(sky) and np.isfinite(noise) and noise > 0):
        return empty
    data = np.ascontiguousarray(data)  # once: a trimmed frame is a view (flat indices below)
    ny, nx = data.shape
    flat = _candidates(data, xy, radius, sky + sigma * noise, 2.0 * sigma * noise)
    if len(flat) == 0:
        return empty
    gain = gain if np.isfinite(gain) and gain > 0 else 1.0
    limit = sharpness_limit(fwhm, margin, binning=binning)
    if binning > 1 and core > 0:
        wing = sharpness_limit(fwhm, margin)
        limits = lambda k: np.where(core_hits(k, (ny, nx), xy, core), limit, wing)  # noqa: E731
    else:
        limits = lambda k: limit  # noqa: E731
    hits = flat[_sharp(data, flat, sky, noise, gain, limits(flat), sigma)]
    if len(hits) == 0:
        return empty
    # grown to their neighbours, seen with the hits found so far repaired, so the rest of a
    # thick track (4 lit pixels in a 3x3 box) stands out in turn (L.A.Cosmic's iterations)
    is_hit = np.zeros(ny * nx, bool)
    is_hit[hits] = True
    new = hits
    for _ in range(iterations):
        near = _interior(np.unique(new[:, None] + (_RING[:, 0] * nx + _RING[:, 1])), (ny, nx))
        near = near[~is_hit[near]]
        value = _repaired(data, hits, is_hit)
        value = np.where(np.isnan(value), data.ravel().take(hits), value)
        new = near[_sharp(data, near, sky, noise, gain, limits(near), grow_sigma, (is_hit, hits, value))]
        if len(new) == 0:
            break
        is_hit[new] = True
        hits = np.union1d(hits, new)
    return hits


def repair_hits(data: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Replace each hit pixel in ``data`` (in place) by the median of its non-hit 8 neighbours
    (left as is when all 8 are hits); return the values put there (NaN where left)."""
    value = _repaired(data, hits)
    some = np.isfinite(value)
    y, x = np.divmod(hits[some], data.shape[1])
    data[y, x] = np.rint(value[some]) if data.dtype.kind in "iu" else value[some]
    return value


def _repaired(data: np.ndarray, hits: np.ndarray, is_hit: np.ndarray | None = None) -> np.ndarray:
    """The median of each hit pixel's non-hit 8 neighbours (NaN when all are hits). ``is_hit``:
    the flat boolean map of every hit (default: ``hits`` alone)."""
    value = np.full(len(hits), np.nan)
    if len(hits) == 0:
        return value
    ny, nx = data.shape
    y, x = np.divmod(hits, nx)
    yy = np.clip(y[:, None] + _RING[:, 0], 0, ny - 1)
    xx = np.clip(x[:, None] + _RING[:, 1], 0, nx - 1)
    nb = data[yy, xx].astype(np.float64)
    idx = yy * nx + xx
    nb[is_hit[idx] if is_hit is not None else np.isin(idx, hits)] = np.nan
    nb.sort(axis=1)  # NaN last
    count = np.isfinite(nb).sum(axis=1)
    some = np.flatnonzero(count > 0)
    if len(some):
        c = count[some]
        value[some] = 0.5 * (nb[some, (c - 1) // 2] + nb[some, c // 2])
    return value


def core_hits(hits: np.ndarray, shape, xy: np.ndarray, core: float) -> np.ndarray:
    """True for the hit pixels within ``core`` px of a position (a star's core)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(hits) == 0 or len(xy) == 0:
        return np.zeros(len(hits), bool)
    y, x = np.divmod(hits, shape[1])
    d2 = (x[:, None] - xy[None, :, 0]) ** 2 + (y[:, None] - xy[None, :, 1]) ** 2
    return (d2 <= core * core).any(axis=1)


def _core_tops(data: np.ndarray, xy: np.ndarray, core: float):
    """Each star's core, read from one stamp per star: ``inside`` (n, c, c), the pixels within
    ``core`` px of the star not on the frame's outer border; their values ``p`` and the largest of
    the 4 pixels around their point reflection through the star's centre ``top`` (NaN outside the
    frame); and their frame rows and columns (n, c). The reflection of offset ``o`` from the
    star's nearest pixel ``n`` is at ``n + 2 (c - n) - o``: its 4 pixels are a 2x2 maximum of the
    stamp, flipped and moved by ``floor(2 (c - n))``."""
    ny, nx = data.shape
    hc = int(np.ceil(core))
    h = hc + 2
    near = np.rint(xy)
    stamps = cutouts(data, near, 2 * h + 1, dtype=np.float64)[0]
    top = np.maximum(np.maximum(stamps[:, :-1, :-1], stamps[:, 1:, :-1]),   # NaN where a node is
                     np.maximum(stamps[:, :-1, 1:], stamps[:, 1:, 1:]))
    o = np.arange(-hc, hc + 1)
    k = np.floor(2.0 * (xy - near)).astype(np.int64)  # (n, 2): -1, 0 or 1
    rows, cols = h - o + k[:, 1:2], h - o + k[:, 0:1]
    top = top[np.arange(len(xy))[:, None, None], rows[:, :, None], cols[:, None, :]]
    p = stamps[:, h - hc:h + hc + 1, h - hc:h + hc + 1]
    py, px = near[:, 1:2].astype(np.int64) + o, near[:, 0:1].astype(np.int64) + o
    dy2, dx2 = (py - xy[:, 1:2]) ** 2, (px - xy[:, 0:1]) ** 2
    inside = dy2[:, :, None] + dx2[:, None, :] <= core * core
    inside &= ((py > 0) & (py < ny - 1))[:, :, None] & ((px > 0) & (px < nx - 1))[:, None, :]
    return inside, p, top, py, px


def _mirrored(data: np.ndarray, flat: np.ndarray, c: np.ndarray, is_hit=None, top: bool = False
              ) -> np.ndarray:
    """Bilinear value at each pixel's point reflection through its star's centre ``c`` (k, 2)
    (``top``: the largest of its 4 nodes instead, which a centre off by a fraction of a pixel or
    the profile's curvature between the nodes does not exceed); NaN outside the frame or where
    a node is in ``is_hit`` (flat boolean map)."""
    ny, nx = data.shape
    y, x = np.divmod(flat, nx)
    my, mx = 2.0 * c[:, 1] - y, 2.0 * c[:, 0] - x
    y0, x0 = np.floor(my).astype(np.int64), np.floor(mx).astype(np.int64)
    out = np.full(len(flat), np.nan)
    ok = (y0 >= 0) & (y0 < ny - 1) & (x0 >= 0) & (x0 < nx - 1)
    k = (y0 * nx + x0)[ok]
    nodes = k[:, None] + np.array([0, 1, nx, nx + 1])
    v = data.ravel().take(nodes)
    if top:
        val = v.max(axis=1).astype(np.float64)
    else:
        fy, fx = (my - y0)[ok], (mx - x0)[ok]
        v = v.astype(np.float64)
        val = (1 - fy) * ((1 - fx) * v[:, 0] + fx * v[:, 1]) + fy * ((1 - fx) * v[:, 2] + fx * v[:, 3])
    if is_hit is not None:
        val[is_hit[nodes].any(axis=1)] = np.nan
    out[ok] = val
    return out


def _isolated(xy: np.ndarray, distance: float) -> np.ndarray:
    """True for the positions with no other position within ``distance`` px."""
    if len(xy) < 2:
        return np.ones(len(xy), bool)
    order = np.argsort(xy[:, 0])  # neighbours in x within ``distance`` only
    xs = xy[order]
    far = np.ones(len(xy), bool)
    for step in range(1, len(xy)):
        dx = xs[step:, 0] - xs[:-step, 0]
        near = dx <= distance
        if not near.any():
            break
        close = near & (dx * dx + (xs[step:, 1] - xs[:-step, 1]) ** 2 <= distance * distance)
        far[:-step][close] = False
        far[step:][close] = False
    out = np.empty(len(xy), bool)
    out[order] = far
    return out


def mirror_hits(data: np.ndarray, xy: np.ndarray, core: float, *, sky: float, noise: float,
                gain: float = 1.0, sigma: float = 5.0, excess: float = 0.5, most: int | None = 4,
                fwhm: float = np.nan, offset: float = 0.25, isolated: bool = False) -> np.ndarray:
    """Sorted flat indices of the pixels within ``core`` px of an isolated star (no other within
    2 ``core``) that stand above their point reflection through the star's centre by ``sigma``
    noise sigmas plus ``excess`` times the reflection's height above the sky (the reflection:
    bilinear at the reflected position), and above the largest of the 4 pixels around it by
    ``sigma`` noise sigmas plus ``excess / 2`` times its height (neither the profile's curvature between them nor a centre off by a
    fraction of a pixel makes a star's own pixel a hit).

    A star is point-symmetric (an elongated or a doughnut star too); a hit on its bright core,
    next to the peak, is not: there the 3x3 box's 6th value is the star's own light (a 3-pixel
    track beside the peak leaves the peak's pixels as the box's upper values), so the
    order-statistic test of :func:`find_hits` cannot see a hit of 4x the star's level. With the
    frame's ``fwhm``, the excess allowed grows as the light a given centre ``offset`` px off moves
    the reflection over on a Gaussian star (x 1.7 at 2.4 px from a 3.5 px FWHM star's centre). A star
    with more than ``most`` such pixels is taken as off its given centre (its pixels are not
    hits): a hit lights 1 to 3 pixels of a core, rarely more."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) == 0 or not (np.isfinite(sky) and np.isfinite(noise) and noise > 0) or core <= 0:
        return np.zeros(0, np.intp)
    if not isolated:  # (``isolated``: the caller kept the isolated stars already)
        xy = xy[_isolated(xy, 2.0 * core)]
    data = np.ascontiguousarray(data)
    inside, p, top, py, px = _core_tops(data, xy, core)
    gain = gain if np.isfinite(gain) and gain > 0 else 1.0
    # first above the largest of the reflection's 4 pixels (most core pixels fail here) ...
    over = np.maximum(top - sky, 0.0)
    with np.errstate(invalid="ignore"):
        hit = p - top > sigma * np.sqrt(2.0 * noise * noise + 2.0 * over / gain) + 0.5 * excess * over
    hit &= inside
    # ... then above the bilinear reflection by the excess a centre ``offset`` px off allows: it
    # moves the reflection 2 ``offset`` along the profile, where a Gaussian of the frame's FWHM
    # changes by exp(2 offset r / s^2)
    star, i, j = np.nonzero(hit)
    if len(star) == 0:
        return np.zeros(0, np.intp)
    y, x = py[star, i], px[star, j]
    c = xy[star]
    m = _mirrored(data, y * data.shape[1] + x, c)
    height = np.maximum(m - sky, 0.0)
    r = np.hypot(x - c[:, 0], y - c[:, 1])
    s2 = (fwhm / 2.3548) ** 2 if fwhm and np.isfinite(fwhm) and fwhm > 0 else np.inf
    ratio = np.exp(np.minimum(2.0 * offset * r / s2, 20.0)) * (1.0 + excess) - 1.0
    with np.errstate(invalid="ignore"):
        keep = p[star, i, j] - m > sigma * np.sqrt(2.0 * noise * noise + 2.0 * height / gain) + ratio * height
    if most is not None and keep.any():  # a star off its given centre is asymmetric all over
        keep &= np.bincount(star[keep], minlength=len(xy))[star] <= most
    return np.unique((y * data.shape[1] + x)[keep])


def mirror_values(data: np.ndarray, hits: np.ndarray, xy: np.ndarray, core: float) -> np.ndarray:
    """For each hit pixel within ``core`` px of a position, the bilinear value at its point
    reflection through the nearest position (NaN when a node of it is a hit, or no position
    is that near): a repair that keeps a star core's curvature, which the neighbours' median
    does not."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    out = np.full(len(hits), np.nan)
    if len(hits) == 0 or len(xy) == 0:
        return out
    y, x = np.divmod(hits, data.shape[1])
    d2 = (x[:, None] - xy[None, :, 0]) ** 2 + (y[:, None] - xy[None, :, 1]) ** 2
    j = np.argmin(d2, axis=1)
    near = d2[np.arange(len(hits)), j] <= core * core
    if not near.any():
        return out
    is_hit = np.zeros(data.size, bool)
    is_hit[hits] = True
    out[near] = _mirrored(np.ascontiguousarray(data), hits[near], xy[j[near]], is_hit)
    return out
