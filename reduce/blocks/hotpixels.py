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

    def __init__(self, hot: np.ndarray):
        hot = np.asarray(hot, bool)
        if hot.ndim != 2:
            raise ValueError("hot must be a 2-D boolean map of the frame")
        self.shape = hot.shape
        self.count = int(hot.sum())
        self._pixels, self._neighbours, self._weights = repair_weights(hot)

    def params(self) -> dict:
        """The number of pixels repaired (for provenance), not the map."""
        return {"pixels": self.count}

    def run(self, image) -> None:
        if image.data is None or image.data.shape != self.shape or self.count == 0:
            return
        image.data = repair(image.data, self._pixels, self._neighbours, self._weights)
        image.computed["hot_pixels"] = self.count
        if image.mask is None:
            return
        flat = image.mask.reshape(-1)
        lost = self._pixels[~np.isfinite(image.data.reshape(-1)[self._pixels])]
        if not flat[self._pixels].any() and not lost.size:
            return  # nothing to change (the common case): no pass over the whole mask
        flat[self._pixels] &= np.uint8(~PixelFlag.SATURATED & 0xFF)
        flat[lost] |= np.uint8(PixelFlag.NONFINITE)
        image.set_mask(image.mask)
