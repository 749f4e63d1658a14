"""PSF blocks: cutouts of isolated stars, their median (empirical PSF) and analytic fits.

``Moffat2D`` reports the Moffat FWHM ``2 alpha sqrt(2^(1/beta) - 1)``, not the Gaussian formula
(prose's Moffat2D over-reports by ~2.3x). The fitted FWHM scales apertures downstream.

The fit blocks first read the ePSF's shape (:func:`reduce.algorithms.psf_shape.psf_shape`, into
``image.computed['psf_shape']``). On a doughnut or flat-topped night (the reference's shape, set by
the runner as their ``shape``) no analytic profile is fitted: the FWHM is the ePSF's
equivalent width ``2 r_half`` (a Gaussian's FWHM), so the apertures enclose the ring.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.neighbors import Neighbors
from ..algorithms.psf_shape import psf_shape
from ..algorithms.psf import (GAUSSIAN_FWHM, _moments, extract_stamps, fit_gaussian, fit_moffat,
                              median_epsf)
from ..core.block import Block
from ..model.errors import NoSources, PSFFailed

__all__ = ["Cutouts", "MedianEPSF", "Moffat2D", "Gaussian2D"]


def _isolated(xy: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of positions with no other position within ``radius`` px (a NaN position is
    never isolated, nor anyone's neighbour; a lone position is isolated).

    The close pairs come from :meth:`Neighbors.query_pairs` (a window on x): the same answer as
    ``nearest_distance(xy) > radius`` without its all-pairs query (~1 ms for a frame's ~150
    stars, 0.15 ms this way) and, for the ~1,000 stars of a dense reference, without the k-d
    tree's ``import scipy.spatial`` (~0.4 s of a whole run)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(xy) < 2:
        return np.ones(len(xy), bool)
    out = np.isfinite(xy).all(axis=1)
    out[Neighbors(xy).query_pairs(radius).ravel()] = False
    return out


class Cutouts(Block):
    """Square, background-subtracted stamps of isolated, unsaturated, non-edge stars.

    Parameters
    ----------
    size : int
        Stamp side in px (odd; an even value is rounded up); the one positional parameter, as
        in ``Cutouts(21)``.
    max_sources : int
        Use at most this many of the brightest eligible stars.
    isolation : float, optional
        Minimum distance (px) to any other detected source; default ``size / 2``.

    Stamps are re-centred to sub-pixel accuracy on each star, so ``image.cutouts`` has shape
    ``(k, size, size)`` with every star on the central pixel; the source indices used are in
    ``image.computed['cutout_index']``.
    """

    requires = ("data", "sources")
    provides = ("cutouts",)

    def __init__(self, size: int = 21, *, max_sources: int = 30, isolation: float | None = None):
        if int(size) < 5:
            raise ValueError(f"size must be at least 5 px, got {size}")
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.size = int(size) | 1
        self.max_sources = int(max_sources)
        self.isolation = isolation

    def run(self, image) -> None:
        src = image.sources
        if src is None or len(src) == 0:
            raise NoSources("no sources to cut out")
        radius = self.isolation if self.isolation is not None else self.size / 2
        ok = ~src.saturated & ~src.edge & _isolated(src.coords, radius)
        index = np.flatnonzero(ok)[: self.max_sources]
        stamps, keep = extract_stamps(image.data, src.coords[index], self.size)
        if image.bkg is not None and np.isfinite(image.bkg):
            stamps -= float(image.bkg)  # on the stamps, not the whole frame (the shift is linear)
        finite = np.isfinite(stamps).all(axis=(1, 2))
        stamps, index = stamps[finite], index[keep][finite]
        if len(stamps) == 0:
            raise NoSources("no isolated, unsaturated star away from the edges for the PSF")
        image.cutouts = stamps.astype(np.float32)
        image.computed["cutout_index"] = index


class MedianEPSF(Block):
    """Empirical PSF: the median of the cutouts, each normalised to unit flux (sums to 1).

    Parameters
    ----------
    max_sources : int
        Use the first (brightest) ``max_sources`` cutouts.
    """

    requires = ("cutouts",)
    provides = ("epsf",)

    def __init__(self, *, max_sources: int = 30):
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.max_sources = int(max_sources)

    def run(self, image) -> None:
        cutouts = image.cutouts
        if cutouts is None or len(cutouts) == 0:
            raise NoSources("no cutouts to build the PSF from")
        try:
            image.epsf = median_epsf(cutouts[: self.max_sources]).astype(np.float32)
        except ValueError as exc:
            raise NoSources(f"empirical PSF: {exc}") from None


class _PSFFit(Block):
    """Fit an analytic model to ``image.epsf`` on a stamp cropped to ~3 FWHM."""

    requires = ("epsf",)
    provides = ("fwhm", "ellipticity", "theta", "psf_params")
    register = False
    _fit = staticmethod(fit_moffat)

    def __init__(self, *, crop: float = 3.0):
        if crop <= 0:
            raise ValueError("crop must be a positive multiple of the FWHM")
        self.crop = float(crop)
        # the reference's ePSF shape (set by the runner, not a recipe parameter): every frame of
        # a doughnut night is measured as one, whatever the noise makes of its own ePSF
        self.shape: str | None = None

    def _stamp(self, epsf: np.ndarray) -> tuple[np.ndarray, int]:
        """The central part of the ePSF: half-width ``crop`` x a half-light-radius FWHM guess."""
        c = epsf.shape[0] // 2
        sigma = _moments(epsf)[3]
        half = int(np.clip(np.ceil(self.crop * GAUSSIAN_FWHM * sigma), 4, c))
        return epsf[c - half:c + half + 1, c - half:c + half + 1], c - half

    def _fit_stamp(self, stamp: np.ndarray) -> dict:
        return type(self)._fit(stamp)

    def _kind(self, image) -> str:
        """The shape to measure: the reference's when set, else the frame's own ePSF's (read
        into ``image.computed['psf_shape']``; a peaked night's frames skip it)."""
        if self.shape is not None:
            return self.shape
        image.computed["psf_shape"] = psf_shape(image.epsf)
        return image.computed["psf_shape"]["kind"]

    def run(self, image) -> None:
        if image.epsf is None:
            raise NoSources("no empirical PSF to fit")
        kind = self._kind(image)
        image.computed["psf_kind"] = kind
        if kind != "peaked":
            return _equivalent_width(image, kind)
        stamp, offset = self._stamp(np.asarray(image.epsf, dtype=float))
        params = self._fit_stamp(stamp)
        fwhm = params["fwhm"]
        if not params["success"]:
            raise PSFFailed(f"the PSF fit did not converge (fwhm={fwhm:g})")
        if not np.isfinite(fwhm) or fwhm <= 0 or fwhm > 2 * image.epsf.shape[0]:
            raise PSFFailed(f"the PSF fit failed (fwhm={fwhm:g})")
        params["x"] += offset
        params["y"] += offset
        image.fwhm = float(fwhm)
        image.ellipticity = float(params["ellipticity"])
        image.theta = float(params["theta"])
        image.psf_params = params


def _equivalent_width(image, kind: str) -> None:
    """A doughnut or flat-topped ePSF: its equivalent FWHM (2 r_half) and shape, no fit."""
    shape = image.computed.get("psf_shape") or psf_shape(image.epsf)
    image.computed["psf_shape"] = shape
    fwhm = shape["fwhm_eq"]
    if not np.isfinite(fwhm) or fwhm <= 0:
        raise PSFFailed(f"the {kind} PSF has no half-light radius (fwhm={fwhm:g})")
    image.fwhm = float(fwhm)
    image.ellipticity, image.theta = 0.0, 0.0
    image.psf_params = {"model": kind, "fwhm": float(fwhm), "success": True,
                        **{k: v for k, v in shape.items() if k != "kind"}}


class Moffat2D(_PSFFit):
    """Fit an elliptical Moffat to the ePSF: sets fwhm (px), ellipticity, theta (rad), psf_params.

    Parameters
    ----------
    crop : float
        Half-width of the fitted stamp in units of a first FWHM estimate.
    """

    register = True

    def __init__(self, *, crop: float = 3.0):
        super().__init__(crop=crop)
        # set by the runner to the reference's fit, not a recipe parameter: the frames' fits start
        # from its profile (fit_moffat's ``like``: the same FWHM in about half the steps)
        self.like: dict | None = None

    def _fit_stamp(self, stamp: np.ndarray) -> dict:
        return fit_moffat(stamp, like=self.like)


class Gaussian2D(_PSFFit):
    """Fit an elliptical Gaussian to the ePSF: sets fwhm (px), ellipticity, theta (rad), psf_params.

    Parameters
    ----------
    crop : float
        Half-width of the fitted stamp in units of a first FWHM estimate.
    """

    register = True
    _fit = staticmethod(fit_gaussian)
