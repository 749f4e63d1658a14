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
of a star 100 sigma up is 0.26), and rejects hot pixels from ~15 sigma up (every one from ~25 sigma); fainter ones are left to the night's hot-pixel map
(:mod:`reduce.algorithms.hotpixels`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["MIN_RATIO", "axis_neighbours", "sharp", "sharp_map"]

#: the least axis ratio a star may have (a pixel-integrated Gaussian of FWHM ~1.05 px, or a star
#: that narrow across: elongated real stars reach 0.26 at FWHM ~2 px)
MIN_RATIO = 0.15
#: noise sigmas below MIN_RATIO before a feature counts as sharp
K_SIGMA = 3.0


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


def sharp_map(data: np.ndarray, bkg: float, rms: float, *, min_excess: float,
              min_ratio: float = MIN_RATIO, k: float = K_SIGMA, band: int = 1 << 20) -> np.ndarray:
    """Boolean map of the pixels of ``data`` that are sharp (:func:`sharp`, about the level
    ``bkg``) and stand ``min_excess`` (ADU) above their least axis mean: a frame's (or a median
    of frames') hot pixels. Edge rows and columns are never flagged. Computed in bands of about
    ``band`` pixels, so a 26-megapixel frame needs no frame-sized temporaries."""
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
            v, m = axis_neighbours(d, x, y + r0)
            keep = sharp(v - bkg, m - bkg, rms, min_ratio=min_ratio, k=k)
            out[y[keep] + r0, x[keep]] = True
    return out


def _candidates(d: np.ndarray, min_excess: float) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) in the inner part of the band ``d`` (its first and last rows are context) of the
    pixels above their least axis mean by ``min_excess``: few on a star field."""
    c = d[1:-1, 1:-1]
    m = np.minimum(0.5 * (d[1:-1, :-2] + d[1:-1, 2:]), 0.5 * (d[:-2, 1:-1] + d[2:, 1:-1]))
    with np.errstate(invalid="ignore"):
        y, x = np.nonzero(c - m > min_excess)
    return y, x + 1
