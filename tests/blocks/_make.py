"""Synthetic frames with known truth for block tests (pure numpy, no simulator dependency).

Stars are Moffat or Gaussian profiles evaluated at pixel centres, so the injected FWHM is exactly
the FWHM a fitted model of the same family should recover. Calibration frames share one bias
level, one dark current and one flat response so masters can be checked against them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StarField", "star_field", "moffat_alpha", "CalibrationTruth", "calibration_set",
           "write_fits"]


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha (px) giving ``fwhm`` (px) for power index ``beta``."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


@dataclass
class StarField:
    data: np.ndarray          # (h, w) float64 image: sky + stars + noise
    xy: np.ndarray            # (n, 2) true positions, 0-based
    flux: np.ndarray          # (n,) total fluxes (ADU)
    fwhm: float
    sky: float


def star_field(shape=(300, 300), *, n=40, fwhm=4.0, beta=3.0, model="moffat", sky=200.0,
               noise=5.0, flux_range=(2e4, 3e5), margin=15, min_sep=12.0, ellipticity=0.0,
               theta=0.0, seed=0) -> StarField:
    """An image of ``n`` well-separated stars on a flat sky with Gaussian noise."""
    rng = np.random.default_rng(seed)
    h, w = shape
    xy = []
    while len(xy) < n:
        p = rng.uniform([margin, margin], [w - margin - 1, h - margin - 1])
        if all(np.hypot(*(p - q)) >= min_sep for q in xy):
            xy.append(p)
    xy = np.array(xy)
    flux = np.exp(rng.uniform(np.log(flux_range[0]), np.log(flux_range[1]), n))
    data = np.full(shape, float(sky))
    yy, xx = np.mgrid[0:h, 0:w]
    q = 1.0 - ellipticity
    ct, st = np.cos(theta), np.sin(theta)
    r = int(8 * fwhm) + 3
    for (x0, y0), f in zip(xy, flux):
        ix, iy = int(round(x0)), int(round(y0))
        sl = (slice(max(iy - r, 0), iy + r + 1), slice(max(ix - r, 0), ix + r + 1))
        dx, dy = xx[sl] - x0, yy[sl] - y0
        u, v = dx * ct + dy * st, (-dx * st + dy * ct) / q
        r2 = u * u + v * v
        if model == "moffat":
            a = moffat_alpha(fwhm, beta)
            prof = (beta - 1) / (np.pi * a * a * q) * (1 + r2 / a ** 2) ** (-beta)
        else:
            s = fwhm / 2.3548200450309493
            prof = np.exp(-r2 / (2 * s * s)) / (2 * np.pi * s * s * q)
        data[sl] += f * prof
    data += rng.normal(0.0, noise, shape)
    return StarField(data, xy, flux, fwhm, sky)


@dataclass
class CalibrationTruth:
    bias: float               # ADU
    dark_rate: float          # ADU/s
    flat: np.ndarray          # (h, w) response, median 1
    shape: tuple


def flat_response(shape, seed=0) -> np.ndarray:
    """A smooth vignetting-like response times pixel-to-pixel variations, median 1."""
    rng = np.random.default_rng(seed + 100)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    f = (1.0 - 0.4 * r2) * (1 + 0.01 * rng.standard_normal(shape))
    return f / np.median(f)


def calibration_set(shape=(64, 80), *, bias=1000.0, dark_rate=2.0, read_noise=5.0,
                    n_bias=7, n_dark=5, n_flat=5, dark_exptime=60.0, flat_level=20000.0,
                    flat_exptime=5.0, seed=0):
    """Raw bias, dark and flat arrays (lists of (data, exptime)) plus the truth they came from."""
    rng = np.random.default_rng(seed)
    flat = flat_response(shape, seed)
    noise = lambda: rng.normal(0, read_noise, shape)  # noqa: E731
    biases = [(bias + noise(), 0.0) for _ in range(n_bias)]
    darks = [(bias + dark_rate * dark_exptime + noise(), dark_exptime) for _ in range(n_dark)]
    flats = []
    for i in range(n_flat):
        level = flat_level * (1 + 0.1 * i)
        flats.append((bias + dark_rate * flat_exptime + level * flat + noise(), flat_exptime))
    # a cosmic ray in one dark and one flat: sigma clipping must reject it
    darks[0][0][10, 10] += 5000.0
    flats[1][0][20, 20] += 8000.0
    return biases, darks, flats, CalibrationTruth(bias, dark_rate, flat, shape)


def write_fits(path, data, *, exptime=None, imagetyp=None, header=None, dtype=None, bzero=None):
    """Write ``data`` to ``path`` (optionally as integers with BZERO) with a small header."""
    from astropy.io import fits

    hdr = fits.Header()
    if exptime is not None:
        hdr["EXPTIME"] = exptime
    if imagetyp is not None:
        hdr["IMAGETYP"] = imagetyp
    hdr["DATE-OBS"] = "2024-03-01T22:00:00"
    for k, v in (header or {}).items():
        hdr[k] = v
    arr = np.asarray(data)
    if dtype is not None:
        if bzero is not None:
            hdu = fits.PrimaryHDU(header=hdr)
            hdu.data = np.clip(np.round(arr), 0, 65535).astype(np.uint16)
            hdu.writeto(path, overwrite=True)
            return path
        arr = np.round(arr).astype(dtype)
    fits.PrimaryHDU(arr, header=hdr).writeto(path, overwrite=True)
    return path
