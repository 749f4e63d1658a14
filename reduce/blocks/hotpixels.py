"""RepairHotPixels: the night's hot pixels replaced from their neighbours on every frame.

The runner finds them once per group (:mod:`reduce.run.hotpixels`) and puts this block right
after the calibration section, so detection, PSF, centroids and apertures never see them. They
are repaired, not masked: an aperture overlapping a masked pixel is NaN, and a star drifting over
a hot pixel would be lost for those frames (or, for a star sitting on one, the whole night).
"""
from __future__ import annotations

import numpy as np

from ..algorithms.hotpixels import repair, repair_weights
from ..core.block import Block
from ..model.image import PixelFlag

__all__ = ["RepairHotPixels"]

#: a hot pixel's dark signal is subtracted (not repaired from its neighbours) where their range
#: exceeds this many times the signal's shot noise (sqrt of it in ADU, gain 1): a star's wing
STEEP = 10.0


class RepairHotPixels(Block):
    """Replace the pixels True in ``hot`` (a map of the calibrated, trimmed frame) with the
    ``2 N - D`` of their neighbours (:func:`~reduce.algorithms.hotpixels.repair_weights`).

    A repaired pixel loses its ``SATURATED`` bit (a saturated hot pixel says nothing about a
    star); one without a good neighbour becomes NaN and ``NONFINITE``. Frames of another shape
    are left as they are. Added by the runner, not a recipe block.
    """

    requires = ("data",)
    provides = ("data",)
    modifies_data = True
    register = False

    def __init__(self, hot: np.ndarray, excess: np.ndarray | None = None):
        hot = np.asarray(hot, bool)
        if hot.ndim != 2:
            raise ValueError("hot must be a 2-D boolean map of the frame")
        self.shape = hot.shape
        self.count = int(hot.sum())
        self._pixels, self._neighbours, self._weights = repair_weights(hot)
        # a steady hot pixel's own dark signal (ADU; the order of np.nonzero(hot), which
        # repair_weights keeps; NaN: none) is subtracted instead where a star's steep light
        # covers its neighbours (their range > STEEP x the signal's shot noise): the repair from
        # them misses the star's light there, while on the sky it also takes the pixel's noise
        self._dark = None
        if excess is not None:
            excess = np.asarray(excess, float)
            if excess.shape != (self.count,):
                raise ValueError(f"excess must hold one value per hot pixel ({self.count})")
            self._dark = excess

    def params(self) -> dict:
        """The number of pixels repaired (for provenance), not the map."""
        return {"pixels": self.count}

    def run(self, image) -> None:
        if image.data is None or image.data.shape != self.shape or self.count == 0:
            return
        if self._dark is not None:
            data = image.data
            if data.dtype.kind != "f" or not data.flags.writeable or not data.flags.c_contiguous:
                data = np.array(data, dtype=data.dtype if data.dtype.kind == "f" else np.float32, order="C")
            flat = data.reshape(-1)
            own = flat[self._pixels] - self._dark
            around = flat[self._neighbours]
            steep = np.ptp(around, axis=1) > STEEP * np.sqrt(np.abs(self._dark) + 1.0)
            use = np.isfinite(own) & steep
            image.data = repair(data, self._pixels, self._neighbours, self._weights)
            image.data.reshape(-1)[self._pixels[use]] = own[use]
        else:
            image.data = repair(image.data, self._pixels, self._neighbours, self._weights)
        image.computed["hot_pixels"] = self.count
        image.computed["hot_pixel_index"] = self._pixels  # flat indices (CosmicRays on a colour mosaic)
        if image.mask is None:
            return
        flat = image.mask.reshape(-1)
        lost = self._pixels[~np.isfinite(image.data.reshape(-1)[self._pixels])]
        every = self._pixels
        if not flat[every].any() and not lost.size:
            return  # nothing to change (the common case): no pass over the whole mask
        flat[every] &= np.uint8(~PixelFlag.SATURATED & 0xFF)
        flat[lost] |= np.uint8(PixelFlag.NONFINITE)
        image.set_mask(image.mask)
