"""Doughnut (defocused, obstructed-pupil) and flat-topped test stars: an annulus blurred by a Gaussian.

Rendered by supersampling each pixel (``k`` x ``k``) so the sub-pixel truth is exact; the
``obstruction`` is the dark hole's diameter as a fraction of the outer ``diameter`` (0: a flat top).
"""
from __future__ import annotations

import numpy as np


def doughnut_stamp(size, dx=0.0, dy=0.0, *, diameter=12.0, obstruction=0.45, blur=1.0, lopsided=0.0, lobes=0, k=4):
    """A unit-flux ``size`` x ``size`` stamp of a blurred annulus centred ``(dx, dy)`` px off the middle,
    ``lopsided`` brighter (1 + lopsided cos angle) towards +x, as real doughnuts often are, with
    ``lobes`` bright spots (1 + lopsided cos(lobes angle)) instead when given."""
    half = size // 2
    g = (np.arange(size * k) + 0.5) / k - 0.5 - half
    gx, gy = np.meshgrid(g - dx, g - dy)
    r = np.hypot(gx, gy)
    angle = np.arctan2(gy, gx)
    ring = ((r <= diameter / 2) & (r >= obstruction * diameter / 2)) * (1.0 + lopsided * np.cos(max(lobes, 1) * angle))
    if blur > 0:
        f = np.fft.fftfreq(size * k, d=1.0 / k)
        gauss = np.exp(-2 * (np.pi * blur) ** 2 * (f[None, :] ** 2 + f[:, None] ** 2))
        ring = np.fft.ifft2(np.fft.fft2(ring) * gauss).real
    stamp = ring.reshape(size, k, size, k).mean(axis=(1, 3))
    return stamp / stamp.sum()


def render_doughnuts(shape, xy, flux, *, sky=100.0, noise=0.0, rng=None, **profile):
    """A float64 frame of doughnut stars of total ``flux`` at ``xy`` (n, 2) plus ``sky`` and Gaussian ``noise``."""
    ny, nx = shape
    img = np.full(shape, float(sky))
    xy = np.atleast_2d(np.asarray(xy, float))
    flux = np.broadcast_to(np.asarray(flux, float), (len(xy),))
    size = int(2 * np.ceil(profile.get("diameter", 12.0) / 2 + 4 * profile.get("blur", 1.0)) + 1)
    half = size // 2
    for (x, y), f in zip(xy, flux):
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        stamp = f * doughnut_stamp(size, x - ix, y - iy, **profile)
        x0, y0 = ix - half, iy - half
        sx0, sy0 = max(0, -x0), max(0, -y0)
        sx1, sy1 = size - max(0, x0 + size - nx), size - max(0, y0 + size - ny)
        if sx1 > sx0 and sy1 > sy0:
            img[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1] += stamp[sy0:sy1, sx0:sx1]
    if noise:
        rng = rng or np.random.default_rng(0)
        img += rng.normal(0.0, noise, shape)
    return img
