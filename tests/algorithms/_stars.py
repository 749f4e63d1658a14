"""A tiny star-field generator for alignment, centroid and photometry tests (numpy only).

Stars are circular Gaussians (or Moffats) rendered analytically at known sub-pixel positions on a
flat sky with Gaussian noise, so every test knows the truth it should recover.
"""
from __future__ import annotations

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def random_positions(rng, n, shape, margin=5.0):
    """``n`` uniformly random (x, y) positions at least ``margin`` px inside a ``shape`` (ny, nx) frame."""
    ny, nx = shape
    return np.column_stack([rng.uniform(margin, nx - 1 - margin, n), rng.uniform(margin, ny - 1 - margin, n)])


def render(shape, xy, flux, *, fwhm=3.0, sky=100.0, noise=0.0, rng=None, profile="gaussian", beta=3.0):
    """A float64 image of stars of total ``flux`` at ``xy`` (n, 2) plus ``sky`` and Gaussian ``noise``.

    Each star is drawn in a box of +-6 FWHM around it (enough for 1e-6 of its flux to be lost).
    """
    ny, nx = shape
    img = np.full(shape, float(sky))
    xy = np.atleast_2d(np.asarray(xy, float))
    flux = np.broadcast_to(np.asarray(flux, float), (len(xy),))
    half = int(np.ceil(6 * fwhm))
    for (x, y), f in zip(xy, flux):
        x0, x1 = max(0, int(x) - half), min(nx, int(x) + half + 2)
        y0, y1 = max(0, int(y) - half), min(ny, int(y) + half + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1) - x, np.arange(y0, y1) - y)
        r2 = gx * gx + gy * gy
        if profile == "gaussian":
            s = fwhm * FWHM_TO_SIGMA
            img[y0:y1, x0:x1] += f * np.exp(-0.5 * r2 / s**2) / (2 * np.pi * s**2)
        else:
            alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
            img[y0:y1, x0:x1] += f * (beta - 1) / (np.pi * alpha**2) * (1 + r2 / alpha**2) ** (-beta)
    if noise:
        rng = rng or np.random.default_rng(0)
        img += rng.normal(0.0, noise, shape)
    return img


def star_field(rng, n=60, shape=(600, 600), *, fwhm=3.0, sky=100.0, noise=5.0, fmin=2e3, fmax=2e5,
               margin=10.0):
    """(image, xy, flux) for ``n`` stars with log-uniform fluxes, sorted brightest first."""
    xy = random_positions(rng, n, shape, margin)
    flux = np.sort(np.exp(rng.uniform(np.log(fmin), np.log(fmax), n)))[::-1]
    return render(shape, xy, flux, fwhm=fwhm, sky=sky, noise=noise, rng=rng), xy, flux


def transform_matrix(*, dx=0.0, dy=0.0, angle_deg=0.0, scale=1.0, flip=False, center=(0.0, 0.0)):
    """3x3 matrix mapping reference (x, y) to frame (x, y): optional x flip, rotation and scale about
    ``center``, then a shift (dx, dy)."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    lin = scale * np.array([[c, -s], [s, c]]) @ (np.diag([-1.0, 1.0]) if flip else np.eye(2))
    cx, cy = center
    t = np.eye(3)
    t[:2, :2] = lin
    t[:2, 2] = np.array([cx, cy]) - lin @ np.array([cx, cy]) + np.array([dx, dy])
    return t


def apply(t, xy):
    """Map (n, 2) points through the 3x3 matrix ``t``."""
    xy = np.asarray(xy, float)
    return xy @ t[:2, :2].T + t[:2, 2]
