"""Is a bright pixel sharper than any star can be? The peak-versus-neighbours test.

A star's light is spread by the seeing and integrated over pixels, so the pixels beside its
brightest one carry a good share of that peak on *both* axes. Measured here as the **axis ratio**
``s = min(mean(left, right), mean(up, down)) / peak`` (background subtracted). For a Gaussian
star integrated over pixels ``s`` is least when the star is centred on a pixel: 0.37 for a FWHM of
1.5 px, 0.24 for 1.2 px, 0.16 for 1.0 px, and more anywhere else on the pixel (e.g. 0.37 -> 0.57
with the star on a pixel corner). A hot pixel or a cosmic-ray hit has ``s ~ 0`` (0 +- 0.02 for the
hot pixels of a real SBIG dark, 0.05 at the 99th percentile), and so has a pair of hot pixels or
a thin track (their other axis is dark), which a plain neighbour mean would let through.
A feature is *sharp* when ``s`` is below :data:`MIN_RATIO` (0.15) by more than ``k`` noise
sigmas. That keeps every star down to FWHM ~1.05 px however faint (a FWHM 1.5 px star sits above
the cut by ``0.22 peak``; on the real, undersampled HAT-P-32 frames, FWHM ~2 px, the least ``s``
of a star 100 sigma up is 0.26), and rejects hot pixels from ~15 sigma up (every one from
~25 sigma); fainter ones are left to the night's hot-pixel map (:mod:`reduce.algorithms.hotpixels`),
which also measures ``s`` above the ring 2 px around a local maximum (:func:`sharp_above_ring`),
so that a hot pixel on a bright star's wing is seen.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MIN_RATIO", "star_min_ratio", "axis_neighbours", "ring_level", "sharp", "sharp_above_ring", "sharp_at", "sharp_map"]

#: the least axis ratio a star may have (a pixel-integrated Gaussian of FWHM ~1.05 px, or a star
#: that narrow across: elongated real stars reach 0.26 at FWHM ~2 px)
MIN_RATIO = 0.15
#: noise sigmas below MIN_RATIO before a feature counts as sharp
K_SIGMA = 3.0


def star_min_ratio(binning: float = 1) -> float:
    """The least axis ratio of a star on pixels ``binning`` raw pixels wide: MIN_RATIO on raw
    pixels, MIN_RATIO / binning**2 on a colour sensor's 2x2 superpixels, where a star of 1.5 raw
    px is 0.75 px across (its ``s`` down to ~0.07), while a hot raw pixel still has ``s ~ 0``."""
    return MIN_RATIO / max(float(binning), 1.0) ** 2


def axis_neighbours(data: np.ndarray, x, y) -> tuple[np.ndarray, np.ndarray]:
    """(value, least axis mean) at integer pixels ``x``, ``y``: the pixel's value and
    ``min(mean(left, right), mean(up, down))``; a neighbour off the frame is the pixel itself."""
    ny, nx = data.shape
    x = np.clip(np.asarray(x, dtype=np.intp), 0, nx - 1)
    y = np.clip(np.asarray(y, dtype=np.intp), 0, ny - 1)
    v = data[y, x].astype(np.float64)
    left, right = data[y, np.maximum(x - 1, 0)], data[y, np.minimum(x + 1, nx - 1)]
    down, up = data[np.maximum(y - 1, 0), x], data[np.minimum(y + 1, ny - 1), x]
    m = np.minimum(0.5 * (left.astype(np.float64) + right), 0.5 * (down.astype(np.float64) + up))
    return v, m


def sharp(peak, least, rms: float, *, min_ratio: float = MIN_RATIO, k: float = K_SIGMA) -> np.ndarray:
    """True where a peak (background subtracted) is sharper than a star allows: its least axis
    mean ``least`` is below ``min_ratio * peak`` by more than ``k`` sigmas of that difference
    (``rms`` the pixel noise; the axis mean of 2 pixels has ``rms / sqrt(2)``)."""
    peak, least = np.asarray(peak, float), np.asarray(least, float)
    sigma = float(rms) * np.sqrt(0.5 + min_ratio ** 2)
    with np.errstate(invalid="ignore"):
        return (peak > 0) & (least < min_ratio * peak - k * sigma)


def ring_level(data: np.ndarray, x, y) -> np.ndarray:
    """Mean of the 16 pixels on the border of the 5x5 box around integer pixels ``x``, ``y``
    (clipped at the frame's edges): the local level under a pixel, which also takes away a
    star's wing (its gradient cancels in the axis means)."""
    ny, nx = data.shape
    x, y = np.asarray(x, np.intp), np.asarray(y, np.intp)
    total = np.zeros(x.shape, np.float64)
    for dy, dx in _RING:
        total += data[np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)]
    return total / len(_RING)


_RING = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2)


def sharp_above_ring(data, x, y, rms: float, *, min_ratio: float = MIN_RATIO, k: float = K_SIGMA):
    """True for the integer pixels ``x``, ``y`` that are a local maximum (>= their 8 neighbours)
    and :func:`sharp` above their :func:`ring_level`. The ring takes away a bright star's wing
    under a hot pixel; the local maximum keeps out the edges of undersampled stars, whose ring
    (brighter on the star's side) would otherwise make them look sharp. A star's own peak stays
    round above its ring (0.36 for a FWHM of 1.5 px, 0.60 for 2.5 px)."""
    ny, nx = data.shape
    v, m = axis_neighbours(data, x, y)
    top = np.ones(v.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                top &= v >= data[np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)]
    level = ring_level(data, x, y)
    return top & sharp(v - level, m - level, rms, min_ratio=min_ratio, k=k)


def sharp_map(data: np.ndarray, bkg: float, rms: float, *, min_excess: float,
              min_ratio: float = MIN_RATIO, k: float = K_SIGMA, band: int = 1 << 20) -> np.ndarray:
    """Boolean map of the pixels of ``data`` that stand ``min_excess`` (ADU) above their least
    axis mean and are sharp above the level ``bkg`` (:func:`sharp`) or above their ring
    (:func:`sharp_above_ring`, for a hot pixel on a bright star's wing): a frame's (or a median
    of frames') hot pixels. Edge rows and columns are never flagged. Computed in bands of about
    ``band`` pixels (no frame-sized temporaries)."""
    d = np.asarray(data, dtype=np.float32)
    out = np.zeros(d.shape, bool)
    ny, nx = d.shape
    if ny < 3 or nx < 3:
        return out
    rows = max(1, band // nx)
    for r0 in range(1, ny - 1, rows):
        r1 = min(r0 + rows, ny - 1)
        y, x = _candidates(d[r0 - 1:r1 + 1], min_excess)
        if y.size:
            y = y + r0
            keep = sharp_at(d, x, y, bkg, rms, min_ratio=min_ratio, k=k)
            out[y[keep], x[keep]] = True
    return out


def sharp_at(data, x, y, bkg: float, rms: float, *, min_excess: float = 0.0,
             min_ratio: float = MIN_RATIO, k: float = K_SIGMA) -> np.ndarray:
    """:func:`sharp_map`'s test at the integer pixels ``x``, ``y`` only (e.g. around pixels
    just repaired), ``min_excess`` included."""
    v, m = axis_neighbours(data, x, y)
    keep = (v - m > min_excess) & sharp(v - bkg, m - bkg, rms, min_ratio=min_ratio, k=k)
    return keep | ((v - m > min_excess) & sharp_above_ring(data, x, y, rms, min_ratio=min_ratio, k=k))


def _candidates(d: np.ndarray, min_excess: float) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) in the inner part of the band ``d`` (its first and last rows are context) of the
    pixels above their least axis mean by ``min_excess``: few on a star field."""
    c = d[1:-1, 1:-1]
    m = np.minimum(0.5 * (d[1:-1, :-2] + d[1:-1, 2:]), 0.5 * (d[:-2, 1:-1] + d[2:, 1:-1]))
    with np.errstate(invalid="ignore"):
        y, x = np.nonzero(c - m > min_excess)
    return y, x + 1
