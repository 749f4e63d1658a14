"""Exact-overlap circular aperture sums at many radii at once (pure numpy, no per-pixel loop).

For a disc of radius ``r`` centred on the star, the overlap of a pixel ``[x0, x1] x [y0, y1]``
(offsets from the star) is ``F(x1, y1) - F(x0, y1) - F(x1, y0) + F(x0, y0)``, where ``F(x, y)``
is the signed disc area between the origin and the corner ``(x, y)``. Summing ``value x overlap``
over a stamp and regrouping by corners (summation by parts) gives ``sum_c F(c) D(c)``, ``D`` the
mixed second difference of the stamp at corner ``c``. With ``a = |x|``, ``b = |y|``::

    F = a b                                if a^2 + b^2 <= r^2   (corner inside the circle)
    F = S(min(a, r)) + S(min(b, r)) - pi r^2 / 4   otherwise,    S(t) = int_0^t sqrt(r^2 - u^2) du

so the outside part is a sum of a column term and a row term, and the inside part a product:
per radius, each corner column (row) needs only one contiguous range of inside rows (columns),
read from cumulative sums. The cost is O(stamp side x radii) per star instead of O(area) per
radius (sep / photutils), and the result is the exact geometric overlap (agrees with photutils
``method='exact'`` to ~1e-13). Both views classify a corner with the very same float expression,
so they always agree on which corners are inside.

An aperture is measured only when it lies wholly on good pixels: one leaving the frame, or
overlapping a masked or non-finite pixel even partly, gives NaN and says why in its flag bits
(:data:`EDGE`, :data:`MASKED`, :data:`SATURATED`, :data:`COSMIC`): a partial sum is never returned as a flux. The
test is the exact one (the circle meets a pixel square when its radius exceeds the distance from
the centre to the square), done only for stars with such pixels in their stamp.

The annulus sky (:func:`annulus_stats`) gathers each star's annulus pixels straight from the frame
through a precomputed ring of pixel offsets, sorts each star's values once and sigma-clips by
moving the bounds of the kept range (astropy ``sigma_clip`` semantics, iterated to convergence);
the sky is the median, the mean or the least-squares plane at the star of the values kept.
:func:`source_mask` marks discs around sources, e.g. to leave neighbours out of the annuli.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .centroids import cutouts
from .stats import sorted_median

__all__ = ["circular_sums", "annulus_stats", "annulus_values", "source_mask", "EDGE", "MASKED", "SATURATED",
           "COSMIC"]

#: Aperture flag bits of :func:`circular_sums`: the circle leaves the frame; it overlaps a pixel
#: without data (mask UNILLUMINATED/NONFINITE, or non-finite); it overlaps a raw-saturated pixel;
#: it overlaps a cosmic-ray hit that could not be repaired (mask COSMIC).
EDGE, MASKED, SATURATED, COSMIC = 1, 2, 4, 8
# reduce.model.image.PixelFlag bits (kept numeric: no Image here)
_MASK_SATURATED, _MASK_NO_DATA, _MASK_COSMIC = 1, 6, 8

#: the annulus plane is used at a star while its variance there is at most 1 + this times the mean's
MAX_LEVERAGE = 1.0

# elements of the (stars x pairs) work arrays per chunk: small arrays stay in cache
_CHUNK_ELEMENTS = 16_000


def _seg(t: np.ndarray, r: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """``S(t) = int_0^t sqrt(r^2 - u^2) du`` for ``0 <= t <= r``."""
    return 0.5 * (t * np.sqrt(np.maximum(r2 - t * t, 0.0)) + r2 * np.arcsin(np.minimum(t / r, 1.0)))


def _pairs(radii: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radius index, corner line index, segment starts): the corner lines that may cross each
    circle (star-independent: a stamp is centred on the star's nearest pixel)."""
    size = 2 * half + 1
    reach = np.ceil(radii).astype(np.intp)
    first = np.maximum(0, half - reach)
    count = np.minimum(size, half + 1 + reach) - first + 1
    starts = np.cumsum(count) - count
    jp = np.repeat(np.arange(len(radii)), count)
    kp = np.repeat(first - starts, count) + np.arange(int(count.sum()))
    return jp, kp, starts


def _bounds(s, c, size):
    """Candidate inclusive line range ``|c + i| <= s`` (one line too wide at most)."""
    lo = np.negative(s)
    lo -= c
    lo -= 1e-6
    np.clip(np.ceil(lo, out=lo), 0, size, out=lo)
    hi = s - c
    hi += 1e-6
    np.clip(np.floor(hi, out=hi), 0, size, out=hi)
    return lo, hi


def _ends(lines, lo, hi):
    """Flat (start, end) indices of the inclusive ranges ``[lo, hi]`` of each line: ``end`` is one
    past ``hi``, and equals ``start`` for an empty range (``hi < lo``), whose sum is then 0."""
    start, end = lo.astype(np.intp), hi.astype(np.intp)
    np.maximum(end, start - 1, out=end)
    start += lines
    end += lines
    end += 1
    return start, end


def _chunk(v: np.ndarray, cx: np.ndarray, cy: np.ndarray, radii: np.ndarray, jp: np.ndarray,
           kp: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Exact circular sums (n, m) of stamps ``v`` (n, s, s) whose corner (0, 0) is at offset
    ``(cx, cy)`` from the star (pixel centres at integers)."""
    n, size = v.shape[0], v.shape[1]
    k = size + 1
    vp = np.zeros((n, size + 2, size + 2))
    vp[:, 1:-1, 1:-1] = v
    d = vp[:, :-1, :-1] - vp[:, :-1, 1:] - vp[:, 1:, :-1] + vp[:, 1:, 1:]   # (n, row I, col K)
    g = np.arange(k, dtype=float)
    x, y = cx[:, None] + g, cy[:, None] + g                                   # corner offsets
    d *= np.sign(y)[:, :, None] * np.sign(x)[:, None, :]                      # F is odd in x and y
    ax, ay = np.abs(x), np.abs(y)
    coltot, rowtot = d.sum(axis=1), d.sum(axis=2)
    tot = coltot.sum(axis=1)
    # cumulative sums along each corner column (of d and ay*d) and along each corner row (of d)
    dt = np.ascontiguousarray(d.transpose(0, 2, 1))
    cum_c = np.zeros((2, n, k, k + 1))
    np.cumsum(dt, axis=2, out=cum_c[0, :, :, 1:])
    np.cumsum(dt * ay[:, None, :], axis=2, out=cum_c[1, :, :, 1:])
    cum_r = np.zeros((n, k, k + 1))
    np.cumsum(d, axis=2, out=cum_r[:, :, 1:])
    rp = radii[jp]
    r2p = rp * rp
    lines = (np.arange(n) * k * (k + 1))[:, None] + kp * (k + 1)               # start of line kp
    axk, ayk = ax[:, kp], ay[:, kp]
    # column view: in corner column K, rows I with y_I^2 <= r^2 - x_K^2
    thr = axk * axk
    np.subtract(r2p, thr, out=thr)
    c = cy[:, None]
    lo, hi = _bounds(np.sqrt(np.maximum(thr, 0.0)), c, size)
    t = c + lo
    t *= t
    lo += t > thr
    t = np.add(c, hi, out=t)
    t *= t
    hi -= t > thr
    a, b = _ends(lines, lo, hi)
    flat0, flat1 = cum_c[0].ravel(), cum_c[1].ravel()
    in0 = flat0.take(b) - flat0.take(a)
    in1 = flat1.take(b) - flat1.take(a)
    # row view: in corner row I, columns K with r^2 - x_K^2 >= y_I^2 (the same float predicate)
    y2 = ayk ** 2
    c = cx[:, None]
    lo, hi = _bounds(np.sqrt(np.maximum(r2p - y2, 0.0)), c, size)
    t = c + lo
    t *= t
    np.subtract(r2p, t, out=t)
    lo += t < y2
    t = np.add(c, hi, out=t)
    t *= t
    np.subtract(r2p, t, out=t)
    hi -= t < y2
    a, b = _ends(lines, lo, hi)
    flat = cum_r.ravel()
    row_in0 = flat.take(b) - flat.take(a)
    sx = _seg(np.minimum(axk, rp), rp, r2p)
    sy = _seg(np.minimum(ayk, rp), rp, r2p)
    q = 0.25 * np.pi * radii * radii
    qp = q[jp]
    ck, rk = coltot[:, kp], rowtot[:, kp]
    terms = sx * (ck - in0) + axk * in1 + qp * (in0 - ck - rk) + sy * (rk - row_in0)
    # lines not in a radius' pairs lie outside its circle: F = q there, summing to q * tot
    return np.add.reduceat(terms, starts, axis=1) + q * tot[:, None]


def _exact(stamps: np.ndarray, cx: np.ndarray, cy: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """:func:`_chunk` over all stamps, in cache-sized chunks."""
    half = stamps.shape[1] // 2
    jp, kp, starts = _pairs(radii, half)
    step = max(1, _CHUNK_ELEMENTS // max(len(jp), 1))
    out = np.empty((len(stamps), len(radii)))
    for i in range(0, len(stamps), step):
        sl = slice(i, i + step)
        out[sl] = _chunk(stamps[sl], cx[sl], cy[sl], radii, jp, kp, starts)
    return out


def circular_sums(data: np.ndarray, xy: np.ndarray, radii, mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact-overlap sums of ``data`` in circles of every radius around every position.

    Returns ``(sums, areas, flags, peak)``: sums and areas ``(n, n_radii)`` (``pi r^2``), ``flags``
    ``(n, n_radii)`` uint8 bits (:data:`EDGE`, :data:`MASKED`, :data:`SATURATED`, :data:`COSMIC`; 0 for a clean
    aperture) and ``peak`` the brightest finite pixel of the 5x5 box on each position. A flagged
    aperture (or a NaN position, flagged EDGE) has NaN sum and area: nothing partial is summed.
    ``mask`` is an optional ``reduce.model.image.PixelFlag`` map (uint8, shape of ``data``).
    """
    radii = np.asarray(radii, dtype=float).reshape(-1)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n, m = len(xy), len(radii)
    sums = np.full((n, m), np.nan)
    areas = np.full((n, m), np.nan)
    flags = np.full((n, m), EDGE, np.uint8)
    peak = np.full(n, np.nan)
    ok = np.flatnonzero(np.isfinite(xy).all(axis=1))
    if len(ok) == 0 or m == 0:
        return sums, areas, flags, peak
    ny, nx = data.shape
    p = xy[ok]
    half = max(int(np.ceil(radii.max())) + 1, 2)
    size = 2 * half + 1
    stack, x0, y0 = cutouts(data, p, size, dtype=np.float64)
    finite = np.isfinite(stack)
    complete = finite.all(axis=(1, 2))
    mstack = None
    if mask is not None:
        mstack, _, _ = cutouts(mask, p, size, dtype=np.uint8, fill=0)
        complete &= ~mstack.any(axis=(1, 2))
    values = np.where(finite, stack, 0.0) if not finite.all() else stack
    cx, cy = x0 - 0.5 - p[:, 0], y0 - 0.5 - p[:, 1]
    r = radii[None, :]
    px, py = p[:, :1], p[:, 1:]
    f = np.where((px - r < -0.5) | (py - r < -0.5) | (px + r > nx - 0.5) | (py + r > ny - 0.5),
                 EDGE, 0).astype(np.uint8)
    # stars whose every circle leaves the frame (drifted off it: a fifth of the stars of a frame
    # of the HAT-P-32 night) are NaN anyway: only the others are summed (each row on its own)
    s = np.full((len(p), m), np.nan)
    live = np.flatnonzero((f == 0).any(axis=1))
    if len(live):
        s[live] = _exact(values[live], cx[live], cy[live], radii)
    partial = np.flatnonzero(~complete)
    if len(partial):
        f[partial] |= _touched(finite[partial], None if mstack is None else mstack[partial],
                               x0[partial], y0[partial], p[partial], radii, (ny, nx))
    s[f != 0] = np.nan
    sums[ok] = s
    areas[ok] = np.where(f != 0, np.nan, np.pi * r * r)
    flags[ok] = f
    box = stack[:, half - 2:half + 3, half - 2:half + 3].reshape(len(p), -1)
    has = finite[:, half - 2:half + 3, half - 2:half + 3].reshape(len(p), -1).any(axis=1)
    pk = np.full(len(p), np.nan)
    if has.any():
        pk[has] = np.nanmax(np.where(np.isfinite(box[has]), box[has], -np.inf), axis=1)
    peak[ok] = pk
    return sums, areas, flags, peak


def _touched(finite, mstack, x0, y0, p, radii, shape) -> np.ndarray:
    """MASKED / SATURATED / COSMIC bits (k, n_radii) of circles overlapping an in-frame pixel
    without data (non-finite, or masked), a saturated pixel or an unrepaired hit: radius > distance from the centre to the pixel
    square."""
    k, size = finite.shape[0], finite.shape[1]
    ny, nx = shape
    g = np.arange(size)
    ix, iy = x0[:, None] + g, y0[:, None] + g                                 # frame pixel indices
    inside = ((iy >= 0) & (iy < ny))[:, :, None] & ((ix >= 0) & (ix < nx))[:, None, :]
    ddx = np.maximum(np.abs(ix - p[:, :1]) - 0.5, 0.0)                         # to the pixel square
    ddy = np.maximum(np.abs(iy - p[:, 1:]) - 0.5, 0.0)
    dist = np.hypot(ddy[:, :, None], ddx[:, None, :])
    no_data = ~finite & inside
    out = np.zeros((k, len(radii)), np.uint8)
    classes = [(MASKED, no_data)]
    if mstack is not None:
        classes = [(MASKED, no_data | ((mstack & _MASK_NO_DATA) != 0)),
                   (SATURATED, (mstack & _MASK_SATURATED) != 0), (COSMIC, (mstack & _MASK_COSMIC) != 0)]
    for bit, bad in classes:
        if bad.any():
            nearest = np.where(bad, dist, np.inf).min(axis=(1, 2))
            out |= np.where(radii[None, :] > nearest[:, None], bit, 0).astype(np.uint8)
    return out


# -- annulus sky ------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _ring(inner: float, outer: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer pixel offsets ``(dy, dx)`` that can hold an annulus pixel centre for some sub-pixel
    star position, those certainly inside the annulus for any position first, and their number."""
    pad = 0.7072  # half a pixel diagonal
    hi = int(np.ceil(outer + pad))
    dy, dx = np.mgrid[-hi:hi + 1, -hi:hi + 1]
    d = np.hypot(dx, dy).ravel()
    lo_in = max(inner - pad, 0.0)
    certain = np.flatnonzero((d >= inner + pad) & (d < outer - pad))
    boundary = np.flatnonzero((d >= lo_in) & (d < outer + pad) & ~((d >= inner + pad) & (d < outer - pad)))
    order = np.concatenate([certain, boundary])
    return dy.ravel()[order], dx.ravel()[order], len(certain)


def source_mask(shape: tuple[int, int], xy: np.ndarray, radius) -> np.ndarray:
    """A uint8 map, 1 on the pixels whose centres lie within ``radius`` of any position ``xy``
    (one radius, or one per position: drawn in groups of radii rounded up to half a pixel)."""
    out = np.zeros(shape, np.uint8)
    xy = np.asarray(xy, float).reshape(-1, 2)
    if np.ndim(radius):
        r = np.ceil(np.asarray(radius, float) * 2.0) / 2.0
        for value in np.unique(r[np.isfinite(r) & (r > 0)]):
            out |= source_mask(shape, xy[r == value], float(value))
        return out
    xy = xy[np.isfinite(xy).all(axis=1)]
    if radius <= 0 or len(xy) == 0:
        return out
    h = int(np.ceil(radius))
    dy, dx = (v.ravel() for v in np.mgrid[-h:h + 1, -h:h + 1])
    ix, iy = np.floor(xy[:, 0:1] + 0.5).astype(np.int64), np.floor(xy[:, 1:2] + 0.5).astype(np.int64)
    px, py = ix + dx, iy + dy
    keep = ((px - xy[:, 0:1]) ** 2 + (py - xy[:, 1:2]) ** 2 < radius * radius)
    keep &= (px >= 0) & (py >= 0) & (px < shape[1]) & (py < shape[0])
    out[py[keep], px[keep]] = 1
    return out


def annulus_values(data: np.ndarray, xy: np.ndarray, inner: float, outer: float,
                   mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each star's annulus pixels (centres with ``inner <= r < outer``, finite, in the frame, not
    flagged in ``mask``), gathered straight from the frame as rows padded with +inf, and their
    counts."""
    ny, nx = data.shape
    dy, dx, n_certain = _ring(float(inner), float(outer))
    ix = np.floor(xy[:, 0] + 0.5).astype(np.int64)
    iy = np.floor(xy[:, 1] + 0.5).astype(np.int64)
    reach = int(np.max(np.abs(dx), initial=0))
    index = (iy * nx + ix)[:, None] + (dy * nx + dx)
    # the annuli that leave the frame (only theirs are tested): those pixels are left out
    near = np.flatnonzero((ix < reach) | (iy < reach) | (ix >= nx - reach) | (iy >= ny - reach))
    if len(near):
        px, py = ix[near, None] + dx, iy[near, None] + dy
        inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        index[near] = np.where(inside, index[near], 0)
    vals = np.ascontiguousarray(data).ravel().take(index)
    bad = ~np.isfinite(vals)  # pixels without a value (tested before the padding below is set)
    if bad.any():
        vals[bad] = np.inf
    if len(near):
        vals[near] = np.where(inside, vals[near], np.inf)
    if mask is not None:
        vals[np.ascontiguousarray(mask).ravel().take(index) != 0] = np.inf
    # pixels near either circle: keep those whose centre is in [inner, outer) for this position
    bx = dx[n_certain:] - (xy[:, 0] - ix)[:, None]
    by = dy[n_certain:] - (xy[:, 1] - iy)[:, None]
    r2 = bx * bx + by * by
    edge = vals[:, n_certain:]
    edge[(r2 < inner * inner) | (r2 >= outer * outer)] = np.inf
    return vals, np.count_nonzero(vals != np.inf, axis=1)


def _segment_sums(flat: np.ndarray, flat2: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                  n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sums of ``flat`` and ``flat2`` over the segments ``[starts, starts + counts)``
    (flat indices; one segment per entry, row of entry ``i`` = ``i % n_rows``)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(n_rows), np.zeros(n_rows)
    seg = np.repeat(np.arange(len(starts)), counts)
    idx = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)
    row = seg % n_rows
    return (np.bincount(row, weights=flat[idx], minlength=n_rows),
            np.bincount(row, weights=flat2[idx], minlength=n_rows))


def annulus_stats(data: np.ndarray, xy: np.ndarray, inner: float, outer: float, sigma: float = 3.0,
                  maxiters: int = 10, mask: np.ndarray | None = None, statistic: str = "median"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped (median, std, npix) of each star's annulus pixels (centres with
    ``inner <= r < outer``, in the frame, finite and not flagged in ``mask``), vectorised over
    stars; NaN (and 0 pixels) for an empty annulus. ``statistic`` replaces the median of the
    values kept by the clipping: ``'mean'`` their mean, ``'plane'`` their least-squares plane
    at the star (:func:`_plane_at_star`).

    Each star's annulus values are sorted once into one padded row; clipping then only moves the
    [lo, hi) bounds of the kept range (one binary search for all bounds), and the running sums
    that give the mean and std lose only the values clipped. Same result as astropy
    ``sigma_clipped_stats`` (median, std; ``maxiters=None`` when it converges within
    ``maxiters``). A range never empties (the median is always kept), so only rows with pixels
    enter the loop, whose cost is a fixed number of numpy calls per iteration.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    med_out, std_out, n_out = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, int)
    ok = np.flatnonzero(np.isfinite(xy).all(axis=1))
    # a star farther than ``outer`` from every pixel centre of the frame (drifted off it) has an
    # empty annulus: it is not gathered
    ny, nx = data.shape
    off_x = np.maximum(np.maximum(-xy[ok, 0], xy[ok, 0] - (nx - 1)), 0.0)
    off_y = np.maximum(np.maximum(-xy[ok, 1], xy[ok, 1] - (ny - 1)), 0.0)
    ok = ok[off_x * off_x + off_y * off_y < outer * outer]
    if len(ok) == 0:
        return med_out, std_out, n_out
    if data.dtype not in (np.float32, np.float64) or not data.dtype.isnative:
        data = data.astype(np.float64)
    raw, counts = annulus_values(data, xy[ok], inner, outer, mask)
    some = counts > 0
    ok, raw, counts = ok[some], raw[some], counts[some]
    if len(ok) == 0:
        return med_out, std_out, n_out
    ring = raw.copy() if statistic == "plane" else None  # in ring order, for the plane
    raw.sort(axis=1)
    width = int(counts.max())
    m = len(ok)
    rows = np.arange(m)
    vals = np.full((m, width + 1), np.inf)  # one padding column: room for range ends
    vals[:, :width] = raw[:, :width]
    flat = vals.ravel()
    base = rows * (width + 1)
    lo, hi = np.zeros(m, np.intp), counts.astype(np.intp)
    med0 = sorted_median(flat, base + lo, base + hi)
    vals -= med0[:, None]  # centred values keep the sums accurate
    finite = np.isfinite(vals)
    vals[~finite] = 0.0   # the +inf padding (never inside a row's [lo, hi) range)
    flat2 = flat * flat
    s1, s2 = vals.sum(axis=1), (vals * vals).sum(axis=1)  # over [lo, hi): the padding is 0
    # one monotonic key array (row offsets) so every row's bounds come from one searchsorted call
    span = 2.0 * (np.abs(vals).max() + 1.0)
    off = rows * 2 * span
    keys = (np.where(finite, vals, span) + off[:, None]).ravel()
    both = np.concatenate([base, base])
    for _ in range(maxiters):
        med, std = sorted_median(flat, base + lo, base + hi), _std(s1, s2, lo, hi)
        # as astropy: values outside med +- sigma std are removed, never brought back; the
        # upper bound is searched just above it ('right' semantics: values equal to it stay)
        bounds = np.concatenate([med - sigma * std + off, np.nextafter(med + sigma * std + off, np.inf)])
        found = np.searchsorted(keys, bounds) - both
        new_lo = np.maximum(found[:m], lo)
        new_hi = np.maximum(np.minimum(found[m:], hi), new_lo)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        d1, d2 = _segment_sums(flat, flat2, np.concatenate([base + lo, base + new_hi]),
                               np.concatenate([new_lo - lo, hi - new_hi]), m)
        s1, s2 = s1 - d1, s2 - d2
        lo, hi = new_lo, new_hi
    if statistic == "plane":
        kept = (ring >= (flat[base + lo] + med0).astype(ring.dtype)[:, None])
        kept &= ring <= (flat[base + hi - 1] + med0).astype(ring.dtype)[:, None]
        ring -= med0.astype(ring.dtype)[:, None]
        np.copyto(ring, 0.0, where=~kept)
        centre = _plane_at_star(ring, kept, xy[ok], inner, outer)
    elif statistic == "mean":
        centre = s1 / (hi - lo)
    else:
        centre = sorted_median(flat, base + lo, base + hi)
    med_out[ok] = centre + med0
    std_out[ok], n_out[ok] = _std(s1, s2, lo, hi), hi - lo
    return med_out, std_out, n_out


@lru_cache(maxsize=8)
def _plane_basis(inner: float, outer: float) -> np.ndarray:
    """Columns 1, dx, dy, dx^2, dy^2, dx dy over the offsets of :func:`_ring`."""
    dy, dx, _ = _ring(inner, outer)
    dx, dy = dx.astype(float), dy.astype(float)
    return np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy])


def _plane_at_star(v: np.ndarray, kept: np.ndarray, xy: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Each row's least-squares plane through its kept values ``v`` (ring order, 0 where not
    kept), evaluated at the star: their mean less the gradient times their mean offset from the
    star (0 for a whole annulus); their mean where no plane fits or where the star lies so far
    from the kept pixels that the plane there is over (1 + MAX_LEVERAGE) times noisier."""
    basis = _plane_basis(float(inner), float(outer))
    k = kept.astype(float) @ basis  # n, sum dx, dy, dx^2, dy^2, dx dy over the kept pixels
    sv = v @ basis[:, :3]  # sum v, v dx, v dy
    n = k[:, 0]
    mu, mw, mv = k[:, 1] / n, k[:, 2] / n, sv[:, 0] / n
    cuu, cww, cuw = k[:, 3] / n - mu * mu, k[:, 4] / n - mw * mw, k[:, 5] / n - mu * mw
    cuv, cwv = sv[:, 1] / n - mu * mv, sv[:, 2] / n - mw * mv
    fx, fy = xy[:, 0] - np.floor(xy[:, 0] + 0.5), xy[:, 1] - np.floor(xy[:, 1] + 0.5)
    du, dw = fx - mu, fy - mw  # the star seen from the kept pixels' centroid
    det = cuu * cww - cuw * cuw
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # leverage of the star: the plane's variance there over the mean's, less 1
        lever = (du * (cww * du - cuw * dw) + dw * (cuu * dw - cuw * du)) / det
        fit = (det > 1e-6 * cuu * cww) & (lever <= MAX_LEVERAGE)
        gu = np.where(fit, (cww * cuv - cuw * cwv) / det, 0.0)
        gw = np.where(fit, (cuu * cwv - cuw * cuv) / det, 0.0)
    return mv + gu * du + gw * dw


def _std(s1, s2, lo, hi):
    """Population std of each row's kept values from their sum ``s1`` and sum of squares ``s2``."""
    kk = hi - lo
    mean = s1 / kk
    return np.sqrt(np.maximum(s2 / kk - mean ** 2, 0.0))
