"""The shape of an empirical PSF: peaked (focused, seeing-limited), doughnut or flat-topped.

A defocused telescope with a central obstruction images each star as a ring (dark in the middle,
a "doughnut"); less defocus, or no obstruction, gives a flat top. Neither has a meaningful Moffat
FWHM, and a peak-fitting centroid locks onto the brightest spot of the rim. The shape is read from
the ePSF's azimuthal profile about its centre of light:

* ``doughnut``: the centre is at most ``1 - DIP`` of the profile's maximum, reached off-centre;
* ``flat``: the profile stays within 10 % of its centre out to more than ``PLATEAU`` of its
  half-maximum radius (a Gaussian: 0.39, a Moffat less);
* ``peaked`` otherwise, and whenever the rim is not lit all round (the faintest of 8 sectors
  below ``ROUND`` of the brightest): a star blended with a brighter neighbour also has a dark
  centre of light.

Its width is the equivalent FWHM ``2 r_half`` (``r_half`` the radius enclosing half the light: a
Gaussian's FWHM exactly), which scales apertures on every shape; ``r_outer`` encloses 97 %.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["psf_shape", "half_light_radius", "DIP", "PLATEAU", "SHAPES"]

SHAPES = ("peaked", "doughnut", "flat")
DIP = 0.2       # a central dip at least this deep (relative to the rim) makes a doughnut
PLATEAU = 0.6   # r(90 % of the centre) / r(half maximum) above this makes a flat top
ROUND = 0.2     # ... and the faintest of 8 sectors of its rim at least this fraction of the brightest


@lru_cache(maxsize=8)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (y, x) indices of an ePSF of this shape (read-only; one ePSF size per night)."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    y.flags.writeable = x.flags.writeable = False
    return y, x


def _centre(epsf: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Centre of light (x, y) of the positive part of ``epsf`` and that part (median-subtracted)."""
    ny, nx = epsf.shape
    w = np.clip(epsf - np.median(epsf), 0.0, None)
    tot = w.sum()
    if not tot > 0:
        return (nx - 1) / 2.0, (ny - 1) / 2.0, w
    y, x = _grid((ny, nx))
    return float((w * x).sum() / tot), float((w * y).sum() / tot), w


def _radii(shape, x0, y0) -> np.ndarray:
    y, x = _grid(tuple(shape))
    return np.hypot(x - x0, y - y0)


def half_light_radius(epsf: np.ndarray, fraction: float = 0.5) -> float:
    """Radius (px, interpolated) enclosing ``fraction`` of the positive light of ``epsf``."""
    x0, y0, w = _centre(np.asarray(epsf, float))
    return float(_enclosing(w, _radii(w.shape, x0, y0), [fraction])[0])


def _enclosing(w: np.ndarray, r: np.ndarray, fractions) -> np.ndarray:
    """Radii (px, interpolated) enclosing each of ``fractions`` of the light ``w`` at radii ``r``."""
    order = np.argsort(r, axis=None)
    cum = np.cumsum(w.ravel()[order])
    if not cum[-1] > 0:
        return np.full(len(fractions), np.nan)
    return np.interp(np.asarray(fractions) * cum[-1], cum, r.ravel()[order])


def _profile(w: np.ndarray, r: np.ndarray, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean profile of ``w`` in rings ``step`` px wide: (ring centres, means)."""
    k = np.floor(r / step).astype(int).ravel()
    n = np.bincount(k)
    s = np.bincount(k, weights=w.ravel())
    ok = n > 0
    return (np.arange(len(n))[ok] + 0.5) * step, s[ok] / n[ok]


def psf_shape(epsf: np.ndarray) -> dict:
    """The shape of ``epsf``: ``kind`` (one of :data:`SHAPES`), ``dip`` (1 - centre / maximum of
    the azimuthal profile), ``plateau`` (r90 / r50, see the module), ``r_peak`` (radius of the
    profile's maximum), ``r_half``, ``r_outer`` (97 % of the light) and ``fwhm_eq`` (2 r_half), px;
    ``round`` (the rim's sector ratio) when the profile alone looks like a doughnut or flat top."""
    epsf = np.asarray(epsf, float)
    x0, y0, w = _centre(epsf)
    r = _radii(w.shape, x0, y0)
    rc, prof = _profile(w, r)
    lim = min(x0, y0, w.shape[1] - 1 - x0, w.shape[0] - 1 - y0)
    inside = rc <= max(lim, 1.0)
    rc, prof = rc[inside], prof[inside]
    top = float(prof.max()) if len(prof) else 0.0
    centre = float(w[r <= 1.0].mean()) if (r <= 1.0).any() else 0.0
    r_half, r_outer = (float(v) for v in _enclosing(w, r, (0.5, 0.97)))
    out = {"kind": "peaked", "dip": 0.0, "plateau": 0.0, "r_peak": 0.0, "r_half": r_half,
           "r_outer": r_outer, "fwhm_eq": 2.0 * r_half}
    if not top > 0:
        return out
    out["dip"] = 1.0 - centre / top
    out["r_peak"] = float(rc[np.argmax(prof)])
    ref = max(centre, 1e-30)
    r50 = _crossing(rc, prof, 0.5 * top)
    r90 = _crossing(rc, prof, 0.9 * ref)
    out["plateau"] = r90 / r50 if r50 > 0 else 0.0
    if out["dip"] >= DIP and out["r_peak"] >= 1.5:
        out["round"] = _roundness(w, r, x0, y0, out["r_peak"])
        out["kind"] = "doughnut" if out["round"] >= ROUND else "peaked"
    elif out["plateau"] > PLATEAU and r50 >= 2.0:
        out["round"] = _roundness(w, r, x0, y0, 0.7 * r50)
        out["kind"] = "flat" if out["round"] >= ROUND else "peaked"
    return out


def _roundness(w: np.ndarray, r: np.ndarray, x0: float, y0: float, radius: float) -> float:
    """Faintest / brightest mean light of 8 sectors of the annulus ``radius`` +- 1 px."""
    y, x = _grid(w.shape)
    sector = (np.floor((np.arctan2(y - y0, x - x0) + np.pi) / (np.pi / 4)).astype(int)) % 8
    ring = np.abs(r - radius) <= 1.0
    n = np.bincount(sector[ring], minlength=8)
    if (n == 0).any():
        return 0.0
    mean = np.bincount(sector[ring], weights=w[ring], minlength=8) / n
    return float(mean.min() / mean.max()) if mean.max() > 0 else 0.0


def _crossing(rc: np.ndarray, prof: np.ndarray, level: float) -> float:
    """First radius (interpolated) beyond the profile's maximum where it falls below ``level``."""
    start = int(np.argmax(prof))
    below = np.flatnonzero(prof[start:] < level)
    if not len(below):
        return float(rc[-1])
    k = start + below[0]
    if k == 0:
        return float(rc[0])
    r0, r1, p0, p1 = rc[k - 1], rc[k], prof[k - 1], prof[k]
    return float(r0 + (r1 - r0) * (p0 - level) / (p0 - p1)) if p0 != p1 else float(r1)
