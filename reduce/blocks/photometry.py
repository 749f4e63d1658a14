"""Aperture photometry at many radii, local annulus sky, and the GetFluxes collector.

Apertures use sep's exact circle/pixel overlap (``subpix=0``) in one call for every star and
radius; it agrees with photutils ``aperture_photometry(method='exact')`` to < 1e-6 relative and
is ~20x faster for 30 radii (tests/blocks/test_photometry.py, benchmarks/bench_alignment.py).
Non-finite pixels count as missing: they are left out of both the sum and the area.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Literal

import numpy as np
import sep

from ..algorithms.centroids import box_max, cutouts
from ..core.block import Block
from ..core.errors import Flag, FrameRejected
from ..fluxes import Fluxes

__all__ = ["AperturePhotometry", "AnnulusBackground", "GetFluxes"]

_SCALES = ("fwhm", "pixels")


def _check_scale(scale) -> str:
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    return scale


def _pixel_scale(image, scale: str, block: str) -> float:
    """1 for ``scale='pixels'``, else the frame's FWHM (px); a frame without one is rejected."""
    if scale == "pixels":
        return 1.0
    fwhm = image.fwhm
    if fwhm is None or not np.isfinite(fwhm) or fwhm <= 0:
        raise FrameRejected(f"{block}: radii are in FWHM units but the frame has no valid fwhm ({fwhm})")
    return float(fwhm)


def _native(data: np.ndarray) -> np.ndarray:
    """``data`` as a writeable, C-contiguous, native-endian float array (what sep accepts: it refuses
    read-only buffers such as memory-mapped FITS data), copying only if needed."""
    if data.dtype not in (np.float32, np.float64) or not data.dtype.isnative:
        data = data.astype(np.float64)
    data = np.ascontiguousarray(data)
    return data if data.flags.writeable else data.copy()


class AperturePhotometry(Block):
    """Sums in exact circular apertures of every radius around every source.

    ``radii``: 1-D radii, in units of the frame FWHM (``scale='fwhm'``, default 30 values from 0.5
    to 5) or in pixels (``scale='pixels'``, default 30 values from 1 to 20 px).
    Sets ``image.aperture = {'radii': (n_radii,) px, 'fluxes': (n_sources, n_radii) raw sums (ADU),
    'areas': (n_sources, n_radii) exact areas of finite in-frame pixels (px^2), 'peak':
    (n_sources,) brightest pixel in a 5x5 box (ADU), 'edge': (n_sources, n_radii) aperture
    crosses the frame edge}``. Sources with NaN positions get NaN.
    """

    requires = ("sources", "fwhm")
    provides = ("aperture",)

    def __init__(self, *, radii: list[float] | None = None, scale: Literal["fwhm", "pixels"] = "fwhm"):
        self.scale = _check_scale(scale)
        if radii is None:
            r = np.linspace(0.5, 5.0, 30) if scale == "fwhm" else np.linspace(1.0, 20.0, 30)
        else:
            r = np.atleast_1d(np.asarray(radii, dtype=float))
            if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r) & (r > 0)):
                raise ValueError(f"radii must be a non-empty list of positive numbers, got {radii!r}")
        self.radii = radii
        self._radii = r
        self.requires = ("sources",) if scale == "pixels" else ("sources", "fwhm")

    def run(self, image) -> None:
        radii = self._radii * _pixel_scale(image, self.scale, self.name)
        xy = image.sources.coords if image.sources is not None else np.zeros((0, 2))
        data = _native(image.data)
        fluxes, areas, edge = aperture_sums(data, xy, radii)
        image.aperture = {"radii": radii, "fluxes": fluxes, "areas": areas, "edge": edge,
                          "peak": box_max(data, xy, 5)}


@lru_cache(maxsize=2)
def _ones(shape: tuple) -> np.ndarray:
    """A float32 frame of ones (exact areas of edge-truncated apertures), reused."""
    return np.ones(shape, np.float32)  # sep refuses read-only buffers; never written


def aperture_sums(data: np.ndarray, xy: np.ndarray, radii: np.ndarray):
    """Exact-overlap circular sums ``(n, n_radii)``, their areas of finite pixels and whether
    each aperture is truncated by the frame edge (sep, ``subpix=0``)."""
    n, m = len(xy), len(radii)
    fluxes = np.full((n, m), np.nan)
    areas = np.full((n, m), np.nan)
    edge = np.ones((n, m), bool)
    ok = np.isfinite(xy).all(axis=1)
    if not ok.any():
        return fluxes, areas, edge
    k = int(ok.sum())
    x = np.repeat(xy[ok, 0], m)
    y = np.repeat(xy[ok, 1], m)
    r = np.tile(np.asarray(radii, float), k)
    s, _, flag = sep.sum_circle(data, x, y, r, subpix=0)
    s, flag = s.reshape(k, m), flag.reshape(k, m)
    a = np.broadcast_to(np.pi * np.asarray(radii, float) ** 2, (k, m)).copy()
    trunc = (flag & sep.APER_TRUNC) != 0
    bad = ~np.isfinite(s)
    finite = None
    if bad.any():  # NaN/inf pixels: sum the finite ones, count only their area
        finite = np.isfinite(data)
        redo = np.repeat(bad.any(axis=1), m)
        s.reshape(-1)[redo] = sep.sum_circle(np.where(finite, data, 0.0), x[redo], y[redo], r[redo], subpix=0)[0]
        trunc |= redo.reshape(k, m)
    if trunc.any():
        w = _ones(data.shape) if finite is None else finite.astype(np.float32)
        redo = np.repeat(trunc.any(axis=1), m)
        a.reshape(-1)[redo] = sep.sum_circle(w, x[redo], y[redo], r[redo], subpix=0)[0]
    s[a <= 0] = np.nan  # no finite pixel in the aperture (e.g. off the frame): not measured
    fluxes[ok], areas[ok], edge[ok] = s, a, (flag & sep.APER_TRUNC) != 0
    return fluxes, areas, edge


class AnnulusBackground(Block):
    """Local sky per star: sigma-clipped median of the pixels whose centres lie in an annulus.

    ``inner``/``outer`` radii in FWHM units (``scale='fwhm'``) or pixels; ``sigma`` the clipping
    threshold (iterated to convergence, like astropy ``sigma_clipped_stats``). Sets
    ``image.annulus = {'median', 'std', 'error' (std / sqrt(npix)), 'area' (npix kept),
    'inner', 'outer' (px)}``, each per star (n,). No pixel in the annulus gives NaN.
    """

    requires = ("sources", "fwhm")
    provides = ("annulus",)

    def __init__(self, *, inner: float = 5.0, outer: float = 8.0, scale: Literal["fwhm", "pixels"] = "fwhm",
                 sigma: float = 3.0):
        if not (np.isfinite(inner) and np.isfinite(outer) and inner >= 0 and outer > 0):
            raise ValueError(f"annulus radii must be finite and non-negative, got inner={inner!r}, outer={outer!r}")
        if not inner < outer:
            raise ValueError(f"annulus inner radius ({inner}) must be smaller than the outer one ({outer}); "
                             "were they swapped?")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        self.inner = float(inner)
        self.outer = float(outer)
        self.scale = _check_scale(scale)
        self.sigma = float(sigma)
        self.requires = ("sources",) if scale == "pixels" else ("sources", "fwhm")

    def run(self, image) -> None:
        k = _pixel_scale(image, self.scale, self.name)
        inner, outer = self.inner * k, self.outer * k
        xy = image.sources.coords if image.sources is not None else np.zeros((0, 2))
        med, std, npix = annulus_stats(image.data, xy, inner, outer, self.sigma)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = std / np.sqrt(npix)
        image.annulus = {"median": med, "std": std, "error": err, "area": npix.astype(float),
                         "inner": inner, "outer": outer}


def annulus_stats(data: np.ndarray, xy: np.ndarray, inner: float, outer: float, sigma: float = 3.0,
                  maxiters: int = 10):
    """Sigma-clipped (median, std, npix) of each star's annulus pixels (centres with
    ``inner <= r < outer``), vectorised over stars.

    Each star's annulus values are sorted once into one padded row; clipping then only moves the
    [lo, hi) bounds of the kept range (binary searches), running sums giving the mean and std, so
    iterations are nearly free. Same result as astropy ``sigma_clipped_stats`` (median, std).
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, int)
    size = 2 * int(np.ceil(outer)) + 3
    work = np.float32 if data.dtype == np.float32 else float
    stack, x0, y0 = cutouts(data, xy, size, dtype=work)
    g = np.arange(size, dtype=float)
    dx2 = (g[None, :] - (xy[:, 0] - x0)[:, None]) ** 2
    dy2 = (g[None, :] - (xy[:, 1] - y0)[:, None]) ** 2
    r2 = dy2[:, :, None] + dx2[:, None, :]
    use = (r2 >= inner * inner) & (r2 < outer * outer) & np.isfinite(stack)
    counts = use.reshape(n, -1).sum(axis=1)
    width = max(int(counts.max()), 1)
    vals = np.sort(np.where(use, stack, np.inf).reshape(n, -1), axis=1)[:, :width].astype(float)
    rows = np.arange(n)
    lo, hi = np.zeros(n, int), counts.copy()
    med0 = np.nan_to_num(_range_median(vals, lo, hi, rows))
    vals -= med0[:, None]  # centred values keep the running sums accurate
    fin = np.where(np.isfinite(vals), vals, 0.0)
    zero = np.zeros((n, 1))
    c1 = np.concatenate([zero, np.cumsum(fin, axis=1)], axis=1)
    c2 = np.concatenate([zero, np.cumsum(fin * fin, axis=1)], axis=1)
    # one monotonic key array (row offsets) so every row's bounds come from one searchsorted call
    span = 2.0 * (np.abs(fin).max() + 1.0)
    keys = (np.where(np.isfinite(vals), vals, span) + (rows * 2 * span)[:, None]).ravel()
    base = rows * width
    for _ in range(maxiters):
        med, std = _range_stats(vals, c1, c2, lo, hi, rows)
        ok = hi > lo
        off = rows * 2 * span
        new_lo = np.searchsorted(keys, np.where(ok, med - sigma * std, 0.0) + off, "left") - base
        new_hi = np.searchsorted(keys, np.where(ok, med + sigma * std, 0.0) + off, "right") - base
        new_lo, new_hi = np.where(ok, new_lo, lo), np.where(ok, np.minimum(new_hi, counts), hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    med, std = _range_stats(vals, c1, c2, lo, hi, rows)
    return med + med0, std, (hi - lo)


def _range_median(vals, lo, hi, rows):
    """Median of each sorted row's values in [lo, hi) (NaN when empty)."""
    kk = np.maximum(hi - lo, 1)
    a = np.clip(lo + (kk - 1) // 2, 0, vals.shape[1] - 1)
    b = np.clip(lo + kk // 2, 0, vals.shape[1] - 1)
    with np.errstate(invalid="ignore"):
        med = 0.5 * (vals[rows, a] + vals[rows, b])
    return np.where(hi > lo, med, np.nan)


def _range_stats(vals, c1, c2, lo, hi, rows):
    """Median and population std of each sorted row's values in [lo, hi) (NaN when empty);
    ``c1``/``c2`` are the rows' running sums of values and squares."""
    kk = np.maximum(hi - lo, 1)
    mean = (c1[rows, hi] - c1[rows, lo]) / kk
    var = np.maximum((c2[rows, hi] - c2[rows, lo]) / kk - mean ** 2, 0.0)
    return _range_median(vals, lo, hi, rows), np.where(hi > lo, np.sqrt(var), np.nan)


def _num(v) -> float:
    """A float, NaN for None or non-numbers."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


class GetFluxes(Block):
    """Collect every frame's photometry into a :class:`~reduce.fluxes.Fluxes` (``self.fluxes``).

    Per frame: time (``image.jd``), background-subtracted fluxes ``sum - median * area`` for every
    star and radius, their 1-sigma errors from the CCD equation in ADU::

        var = (F g + A (S g + RN^2) + A^2 (sigma_S g)^2) / g^2

    (F flux, A aperture area, S annulus median, sigma_S its standard error, all ADU; gain g in
    e-/ADU and read noise RN in e- from the image, 1 and 0 when unknown; F and S clipped at 0),
    the frame's fwhm, sky, airmass, dx, dy, exposure, flags, file, and per star x, y, peak and
    annulus sky ``bkg``. Frames rejected upstream (no photometry) get NaN rows with their flags.
    Without AnnulusBackground in the chain, sums are not sky-subtracted.
    Flags the frame TARGET_SATURATED when the target's peak reaches 95 % of ``image.saturation``
    and TARGET_NEAR_EDGE when the target's largest aperture leaves the frame (or the target does).
    """

    collector = True

    def __init__(self, *, target: int = 0):
        if int(target) != target or target < 0:
            raise ValueError(f"target must be a non-negative star index, got {target!r}")
        self.target = int(target)
        self._rows: list[dict] = []
        self.fluxes: Fluxes | None = None

    def setup(self, context=None) -> None:
        """Start a new collection (a Sequence may be run more than once)."""
        self._rows = []
        self.fluxes = None

    def run(self, image) -> None:
        row = {"time": _num(image.jd), "file": image.path or "", "fwhm": _num(image.fwhm), "sky": _num(image.bkg),
               "airmass": _num(image.airmass), "dx": _num(image.dx), "dy": _num(image.dy),
               "exposure": _num(image.exposure)}
        ap = image.aperture
        if ap is not None and image.sources is not None and len(ap.get("fluxes", ())) == len(image.sources):
            row.update(self._measure(image, ap))
            self._flag_target(image, row)
        row["flags"] = int(image.flags)
        self._rows.append(row)

    @staticmethod
    def _measure(image, ap) -> dict:
        """Sky-subtracted fluxes, CCD-equation errors and per-star values of one frame."""
        sums, area = np.asarray(ap["fluxes"], float), np.asarray(ap["areas"], float)
        n = len(sums)
        an = image.annulus
        if an is not None and len(an["median"]) == n:
            sky, sky_err = np.asarray(an["median"], float), np.asarray(an["error"], float)
        else:
            sky, sky_err = np.zeros(n), np.zeros(n)
        gain = _num(image.gain)
        gain = gain if np.isfinite(gain) and gain > 0 else 1.0
        rn = _num(image.read_noise)
        rn = rn if np.isfinite(rn) and rn >= 0 else 0.0
        flux = sums - sky[:, None] * area
        var = (np.clip(flux, 0, None) * gain + area * (np.clip(sky, 0, None)[:, None] * gain + rn ** 2)
               + (area * sky_err[:, None] * gain) ** 2) / gain ** 2
        return {"flux": flux, "error": np.sqrt(var), "radii": np.asarray(ap["radii"], float),
                "x": image.sources.x.copy(), "y": image.sources.y.copy(),
                "peak": np.asarray(ap.get("peak", np.full(n, np.nan)), float), "bkg": sky,
                "edge": np.asarray(ap.get("edge", np.zeros(sums.shape, bool)))[:, -1] | image.sources.edge}

    def _flag_target(self, image, row) -> None:
        t = self.target
        if t >= len(row["flux"]):
            return
        sat = _num(image.saturation)
        if np.isfinite(sat) and row["peak"][t] >= 0.95 * sat:
            image.flag(Flag.TARGET_SATURATED, f"target peak {row['peak'][t]:.0f} >= 95% of saturation {sat:.0f}",
                       self.name)
        if row["edge"][t]:
            image.flag(Flag.TARGET_NEAR_EDGE, "target aperture crosses the frame edge", self.name)

    def finish(self) -> None:
        """Assemble the collected rows into ``self.fluxes`` (NaN for frames without photometry)."""
        rows = self._rows
        shapes = [r["flux"].shape for r in rows if "flux" in r]
        n_star, n_ap = max(set(shapes), key=shapes.count) if shapes else (0, 0)
        n = len(rows)
        flux = np.full((n_ap, n_star, n), np.nan)
        error = np.full_like(flux, np.nan)
        radii = np.full((n_ap, n), np.nan)
        star = {k: np.full((n_star, n), np.nan) for k in ("x", "y", "peak", "bkg")}
        flags = np.array([r["flags"] for r in rows], dtype=np.int64)
        for i, r in enumerate(rows):
            if "flux" not in r:
                continue
            if r["flux"].shape != (n_star, n_ap):
                flags[i] |= int(Flag.UNEXPECTED)  # a different star list: not comparable with the others
                continue
            flux[:, :, i], error[:, :, i], radii[:, i] = r["flux"].T, r["error"].T, r["radii"]
            for k in star:
                star[k][:, i] = r[k]
        data = {k: np.array([r[k] for r in rows], dtype=float)
                for k in ("fwhm", "sky", "airmass", "dx", "dy", "exposure")}
        data.update(star)
        data["radii"] = radii
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no frame measured
            apertures = np.nanmedian(radii, axis=1) if n else np.full(n_ap, np.nan)
        self.fluxes = Fluxes(np.array([r["time"] for r in rows], dtype=float), flux, error, apertures,
                             target=self.target, data=data, flags=flags,
                             files=np.array([r["file"] for r in rows], dtype=object))
