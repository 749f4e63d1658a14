"""Analytic models of the simulated sky: Moffat PSF, target light curves, flat illumination, sky plane.

Used to render frames and, from the truth alone, to compute the noise floor.
"""
from __future__ import annotations

import numpy as np

from .conventions import SIGNALS


def moffat_alpha(fwhm, beta):
    """Moffat core width alpha (px) of a profile with this ``fwhm`` (px) and power ``beta``."""
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def enclosed_fraction(radius, fwhm, beta):
    """Fraction of a Moffat star's total flux inside a circle of ``radius`` px (analytic)."""
    a = moffat_alpha(fwhm, beta)
    return 1.0 - (1.0 + (np.asarray(radius) / a) ** 2) ** (1.0 - beta)


def target_signal(kind: str, time, *, amplitude: float = 0.01) -> np.ndarray:
    """Relative flux of the target: ``'sine'`` (1.5 cycles over the night), ``'transit'``
    (centred, 45 % of the night long, curved limb-darkened-like bottom ``amplitude`` deep) or
    ``'flat'`` (ones)."""
    t = np.asarray(time, dtype=float)
    span = max(float(t.max() - t.min()), 1e-3)
    if kind == "flat":
        return np.ones_like(t)
    if kind == "sine":
        return 1.0 + amplitude * np.sin(2 * np.pi * (t - t.min()) / (span / 1.5))
    if kind == "transit":
        tc, half = 0.5 * (t.min() + t.max()), 0.225 * span
        edge = np.clip((half - np.abs(t - tc)) / (0.3 * half), 0.0, 1.0)
        return 1.0 - amplitude * edge * (1.0 - 0.15 * np.clip((t - tc) / half, -1, 1) ** 2)
    raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {kind!r})")


def illumination(x, y, flat):
    """Smooth part of the flat response at pixel coordinates: 1 - v (r/R)^2 times dust donuts."""
    cx, cy = flat["center"]
    out = 1.0 - flat["vignetting"] * ((x - cx) ** 2 + (y - cy) ** 2) / flat["radius"] ** 2
    for x0, y0, rad, depth in flat["donuts"]:
        rr = np.hypot(x - x0, y - y0)
        out = out * (1.0 - depth * np.exp(-0.5 * ((rr - rad) / (0.3 * rad)) ** 2))
    return out


def frame_dims(size) -> tuple:
    """(width, height) in px of a frame whose ``size`` is one number (square) or (width, height)."""
    if np.ndim(size) == 0:
        return int(size), int(size)
    width, height = size
    return int(width), int(height)


def sky_plane(x, y, size, gradient):
    """Relative sky level at (x, y): 1 at the frame centre with a linear gradient."""
    if np.ndim(size) == 0:
        cx = cy = (size - 1) / 2.0
    else:
        cx, cy = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    return 1.0 + gradient[0] * (x - cx) + gradient[1] * (y - cy)


def star_positions(x0, y0, dx, dy, rotation=None, centre=None):
    """Pixel positions (stars x frames) of stars at (x0, y0) on the first frame, given each
    frame's pointing offset (dx, dy) and field rotation (deg, counter-clockwise in x, y) about
    ``centre``; without rotation simply x0 + dx, y0 + dy."""
    x0, y0 = np.asarray(x0, float)[:, None], np.asarray(y0, float)[:, None]
    dx, dy = np.asarray(dx, float)[None], np.asarray(dy, float)[None]
    if rotation is None or not np.any(rotation):
        return x0 + dx, y0 + dy
    th = np.radians(np.asarray(rotation, float))[None]
    cx, cy = centre
    c, s = np.cos(th), np.sin(th)
    return (cx + (x0 - cx) * c - (y0 - cy) * s + dx, cy + (x0 - cx) * s + (y0 - cy) * c + dy)


_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def doughnut_table(diameter, obstruction, seeing, step=0.05):
    """Radial profile (r px, surface brightness per px^2, enclosed fraction) of a defocused star.

    The pupil's image, a uniform annulus of outer ``diameter`` px with a central obstruction of
    ``obstruction`` x the diameter, convolved with Gaussian seeing of FWHM ``seeing`` px (the
    radial convolution integral, with ``scipy.special.i0e``), normalised to a total of 1.
    """
    from scipy.special import i0e

    sig = float(seeing) * _FWHM_TO_SIGMA
    outer = 0.5 * float(diameter)
    inner = float(obstruction) * outer
    r = np.arange(0.0, outer + 7.0 * sig + step, step)
    n = max(64, int(8 * (outer - inner) / min(sig, 1.0)))
    rho = inner + (np.arange(n) + 0.5) * (outer - inner) / n  # midpoints across the annulus
    x = r[:, None] * rho[None] / sig ** 2
    kern = np.exp(-0.5 * ((r[:, None] - rho[None]) / sig) ** 2) * i0e(x) * rho[None] / sig ** 2
    surf = kern.sum(axis=1) * (outer - inner) / n
    ring = 2.0 * np.pi * r * surf
    enclosed = np.concatenate([[0.0], np.cumsum(0.5 * (ring[1:] + ring[:-1]) * step)])
    return r, surf / enclosed[-1], enclosed / enclosed[-1]


def doughnut_profile(r, diameter, obstruction, seeing):
    """Surface brightness (fraction of the total flux per px^2) at radius ``r`` px of a
    defocused star (:func:`doughnut_table`); 0 beyond its table."""
    rr, surf, _ = doughnut_table(diameter, obstruction, seeing)
    return np.interp(r, rr, surf, right=0.0)


def doughnut_enclosed(radius, diameter, obstruction, seeing):
    """Fraction of a defocused star's flux inside a circle of ``radius`` px (numerical)."""
    rr, _, enc = doughnut_table(diameter, obstruction, seeing)
    return np.interp(radius, rr, enc, right=1.0)
