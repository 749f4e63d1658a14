"""The CosmicRays block: find and repair cosmic-ray hits around the stars that are measured."""
from __future__ import annotations

import numpy as np

from ..algorithms.cosmics import core_hits, find_hits, repair_hits
from ..core.block import Block
from ..model.image import PixelFlag

__all__ = ["CosmicRays"]


class CosmicRays(Block):
    """Cosmic-ray hits within ``radius`` FWHM of every star (their apertures and sky annuli).

    A hit is a pixel sharper than the frame's PSF allows (:mod:`reduce.algorithms.cosmics`:
    ``sigma`` noise sigmas and the star-shape limit above its 3x3 median). Hits are repaired
    with the median of their non-hit neighbours, except those within ``core`` FWHM of a star
    where it holds light above the noise (the median is wrong on a star's peak): those are
    masked (``PixelFlag.COSMIC``), so an aperture over them is NaN (a comparison then leaves
    that frame's ensemble; the target's frame is flagged ``COSMIC_RAY``). A hit is never
    saturation of a star: its pixels lose the ``SATURATED`` bit. Sets
    ``image.computed['cosmics'] = {'hits', 'repaired', 'masked'}`` (pixel counts).
    """

    requires = ("sources", "fwhm")
    modifies_data = True

    def __init__(self, *, radius: float = 8.0, core: float = 1.5, sigma: float = 5.0):
        if not (np.isfinite(radius) and radius > 0 and np.isfinite(core) and core >= 0):
            raise ValueError(f"radius must be > 0 and core >= 0 (FWHM units), got {radius!r}, {core!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        self.radius, self.core, self.sigma = float(radius), float(core), float(sigma)

    def run(self, image) -> None:
        image.computed["cosmics"] = {"hits": 0, "repaired": 0, "masked": 0}
        fwhm = float(image.fwhm or np.nan)
        if image.sources is None or len(image.sources) == 0 or not np.isfinite(fwhm):
            return
        sky, noise = _sky(image)
        xy = image.sources.coords
        data = image.data
        hits = find_hits(data, xy, self.radius * fwhm, sky=sky, noise=noise, fwhm=fwhm,
                         gain=float(image.gain or 1.0), sigma=self.sigma)
        if len(hits) == 0:
            return
        before = data.ravel().take(hits).astype(np.float64)
        value = repair_hits(data, hits)
        # in a star's core, where the repair stands on the star's light, the median is wrong
        lit = np.isnan(value) | (value - sky > self.sigma * noise)
        bad = lit & core_hits(hits, data.shape, xy, self.core * fwhm)
        if bad.any():
            y, x = np.divmod(hits[bad], data.shape[1])
            data[y, x] = before[bad].astype(data.dtype)
        _mark(image, hits, bad)
        image.computed["cosmics"] = {"hits": int(len(hits)), "repaired": int((~bad).sum()),
                                     "masked": int(bad.sum())}


def _sky(image) -> tuple[float, float]:
    """The frame's sky level and per-pixel noise (ADU): the detection's, else the data's."""
    sky, rms = image.bkg, image.bkg_rms
    if sky is not None and rms is not None and np.isfinite(sky) and np.isfinite(rms) and rms > 0:
        return float(sky), float(rms)
    sample = np.asarray(image.data, float).ravel()[::7]
    sample = sample[np.isfinite(sample)]
    med = float(np.median(sample)) if sample.size else np.nan
    mad = float(np.median(np.abs(sample - med))) if sample.size else np.nan
    return med, 1.4826 * mad


def _mark(image, hits: np.ndarray, bad: np.ndarray) -> None:
    """Hit pixels lose the SATURATED bit; the unrepaired ones get COSMIC."""
    image.ensure_mask()
    mask = image.mask
    if mask is None and not bad.any():
        return
    mask = np.zeros(image.shape, np.uint8) if mask is None else mask.copy()
    flat = mask.reshape(-1)
    flat[hits] &= np.uint8(~PixelFlag.SATURATED & 0xFF)
    flat[hits[bad]] |= np.uint8(PixelFlag.COSMIC)
    image.set_mask(mask)
