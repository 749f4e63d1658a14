"""The Trim block: crop a frame to its useful pixels (a margin, the instrument's ``trim`` or the
header's TRIMSEC), moving its sources, mask and WCS to the new pixel grid."""
from __future__ import annotations

import logging

import numpy as np

from ..algorithms.sections import is_section, parse_section
from ..core.block import Block

__all__ = ["Trim"]

log = logging.getLogger("reduce")


class Trim(Block):
    """Crop the frame: ``margin`` px on each side, else the instrument's ``trim``, else TRIMSEC.

    ``margin`` is an int or an ``(x, y)`` pair. Sources and the WCS, when present, are moved to the
    new pixel grid (sources falling outside are dropped). With no section anywhere, the frame is
    left untouched.
    """

    requires = ("data",)
    provides = ("data",)
    modifies_data = True

    def __init__(self, *, margin: int | tuple[int, int] | None = None):
        if margin is not None:
            m = (margin, margin) if np.isscalar(margin) else tuple(margin)
            if len(m) != 2 or any(int(v) != v or v < 0 for v in m):
                raise ValueError(f"margin must be a non-negative int or (x, y) pair, got {margin!r}")
        self.margin = margin

    def _slices(self, image) -> tuple[slice, slice] | None:
        h, w = image.data.shape
        if self.margin is not None:
            mx, my = (self.margin, self.margin) if np.isscalar(self.margin) else self.margin
            if 2 * mx >= w or 2 * my >= h:
                raise ValueError(f"margin {self.margin} leaves nothing of a {w}x{h} frame")
            return slice(int(my), h - int(my)), slice(int(mx), w - int(mx))
        inst = getattr(image, "instrument", None)
        if inst is not None and getattr(inst, "trim", None):
            return parse_section(inst.trim, (h, w))
        header = image.header
        sec = header.get("TRIMSEC") if header is not None else None
        if sec and is_section(sec):
            return parse_section(str(sec), (h, w))
        return None

    def run(self, image) -> None:
        sl = self._slices(image)
        if sl is None:
            return
        rows, cols = sl
        image.ensure_mask()  # the raw pixels' mask, when no Calibration built one
        image.data = image.data[rows, cols]
        if image.mask is not None:
            image.set_mask(np.ascontiguousarray(image.mask[rows, cols]))
        image.computed["trim"] = (cols.start, cols.stop, rows.start, rows.stop)
        if image.sources is not None and len(image.sources):
            xy = image.sources.coords - [cols.start, rows.start]
            h, w = image.data.shape
            inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
            src = image.sources[np.flatnonzero(inside)]
            src.coords = xy[inside]
            image.sources = src
        if image.wcs is not None:
            try:
                image.wcs = image.wcs.slice((rows, cols))
            except Exception as exc:  # a WCS that cannot be sliced is dropped, not kept wrong
                log.warning("Trim: WCS dropped (%s)", exc)
                image.wcs = None
