"""Which centroids to believe: each star's own against where the frame's transform puts it.

On an aligned frame every star's centroid sits near its predicted position, off by the centroid's
noise and the transform's small errors, shared by all stars. A centroid that moved farther than
the frame's stars allow (a cosmic ray, a neighbour, the bright spot of a doughnut's rim) is not
believed: the star is put where the transform, corrected by the stars' common offset, puts it.
The tolerance is ``k`` robust sigmas of the residuals of all the frame's stars, not fixed pixels.
Pure numpy; no Image or Block.
"""
from __future__ import annotations

import numpy as np

__all__ = ["residual_spread", "guard", "K_SIGMA", "MIN_STARS"]

K_SIGMA = 5.0   # a 2-D Gaussian residual beyond 5 sigma: 4e-6 of the honest centroids
MIN_STARS = 5   # fewer measured stars give no spread worth the name (the caller's fixed rule applies)
RAYLEIGH_MEDIAN = np.sqrt(2.0 * np.log(2.0))  # median distance of a 2-D Gaussian, in sigmas per axis


def residual_spread(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """(common offset (2,), per-axis robust sigma) of residual vectors ``residuals`` (n, 2):
    the median offset, and the median distance from it over the Rayleigh median."""
    offset = np.median(residuals, axis=0)
    dist = np.hypot(*(residuals - offset).T)
    return offset, float(np.median(dist) / RAYLEIGH_MEDIAN)


def guard(predicted: np.ndarray, measured: np.ndarray, usable: np.ndarray, *, k: float = K_SIGMA,
          min_stars: int = MIN_STARS, floor: float = 0.0):
    """``(positions, rejected, tolerance)`` for stars ``usable`` (inside the frame, not fixed).

    A finite centroid within ``max(k sigma, floor)`` px of its predicted position plus the stars'
    common offset (:func:`residual_spread` of the usable finite centroids) is kept; any other
    usable star (``rejected``) is put at that corrected prediction. With fewer than ``min_stars``
    finite centroids nothing is judged: ``(measured, None, nan)``."""
    ok = usable & np.isfinite(measured).all(axis=1) & np.isfinite(predicted).all(axis=1)
    if ok.sum() < min_stars:
        return measured, None, float("nan")
    d = measured[ok] - predicted[ok]
    offset, sigma = residual_spread(d)
    tol = max(k * sigma, floor)
    corrected = predicted + offset
    dist = np.hypot(*(measured - corrected).T)
    rejected = usable & ~(dist <= tol)
    out = np.where(rejected[:, None], corrected, measured)
    out[~usable] = measured[~usable]
    return out, rejected, tol
