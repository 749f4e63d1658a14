"""Point-source detection with sep: background-subtracted, deblended, flagged, brightest first."""
from __future__ import annotations

import logging

import numpy as np

from ..algorithms.rings import merge_ring_fragments
from ..algorithms.sharpness import axis_neighbours, sharp, star_min_ratio
from ..algorithms.stats import median, sorted_median
from ..core.block import Block
from ..model.errors import NoSources
from ..model.image import PixelFlag, Sources
from .bayer import grid_scale

__all__ = ["PointSourceDetection", "global_background", "QUICK_MIN"]

# fewest stars a quick (raised-threshold) detection must find to be kept: enough for the
# alignment's asterisms (30 stars) and the PSF's cutouts
QUICK_MIN = 40
# deblending thresholds of a quick detection (at most): its stars stand far above the threshold,
# where 8 levels split the blends 16 split on 135 of the 142 HAT-P-32 frames, in 0.4 ms less.
# Nor does it smooth the frame first (sep's matched filter lifts faint stars out of the noise,
# which a threshold of ~100 sigma does not need): another 0.5 ms of a HAT-P-32 frame
QUICK_LEVELS = 8

log = logging.getLogger("reduce")


def global_background(data: np.ndarray, *, n_samples: int = 5_000, sigma: float = 3.0,
                      maxiters: int = 3, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Sigma-clipped median and robust std (ADU) of a regular pixel subsample (pixels True in
    ``mask`` and non-finite ones left out).

    Much cheaper than a background map (~0.1 ms on 600x600) and enough for detection; photometry
    measures local sky in annuli anyway. The sample is sorted once, so each clipping pass keeps a
    contiguous slice and its median is read directly; the MAD uses one partition.
    """
    step = max(1, int(np.sqrt(data.size / n_samples)))
    sample = data[step // 2::step, step // 2::step].ravel()
    good = np.isfinite(sample)
    if mask is not None:
        good &= ~mask[step // 2::step, step // 2::step].ravel()
    sample = np.sort(sample[good].astype(np.float32))
    if sample.size == 0:
        return float("nan"), float("nan")
    kept = sample
    med, std = float(sorted_median(sample)), float("nan")
    for i in range(maxiters):
        if i:
            lo = np.searchsorted(sample, med - sigma * std, side="right")  # |v - med| < sigma std
            hi = np.searchsorted(sample, med + sigma * std, side="left")
            kept = sample[lo:hi] if hi > lo else kept
        med = float(sorted_median(kept))
        dev = np.abs(kept - np.float32(med))
        std = float(1.4826 * median(dev))
        if std <= 0:
            std = float(np.std(kept))
        if std <= 0:
            break
    return med, std


# sep allocates its pixel stack (default 300,000 pixels, ~12 MB) on every extract call: about
# 0.7 ms of a 600x600 frame's ~4 ms. Pixels above threshold are a small part of a star field, so
# the stack is sized to the frame; a crowded frame that overflows it raises this process's floor.
_PIXSTACK_MIN, _PIXSTACK_MAX = 50_000, 300_000
_pixstack_floor = 0


def _pixstack_for(n_pixels: int) -> int:
    """sep pixel-stack size for a frame of ``n_pixels``: an eighth of it, within sep's range, or
    more after an overflow in this process."""
    return max(min(max(n_pixels // 8, _PIXSTACK_MIN), _PIXSTACK_MAX), _pixstack_floor)


def _extract(sub, threshold, err, mask, min_area, levels, *, matched_filter: bool = True):
    """sep.extract with room made for crowded frames (pixel stack / sub-object limits);
    ``matched_filter=False`` thresholds the pixels themselves (no 3x3 convolution)."""
    import sep

    global _pixstack_floor
    kw = dict(err=err, mask=mask, minarea=min_area, deblend_nthresh=max(1, levels),
              deblend_cont=0.005 if levels > 1 else 1.0)
    if not matched_filter:
        kw["filter_kernel"] = None
    stack = _pixstack_for(sub.size)
    if sep.get_extract_pixstack() != stack:
        sep.set_extract_pixstack(stack)
    for _ in range(3):
        try:
            return sep.extract(sub, threshold, **kw)
        except Exception as exc:  # sep raises plain Exception for buffer overflows
            msg = str(exc).lower()
            if "pixel buffer" in msg or "pixstack" in msg:
                _pixstack_floor = 4 * sep.get_extract_pixstack()
                sep.set_extract_pixstack(_pixstack_floor)
            elif "deblend" in msg or "sub_object" in msg:
                sep.set_sub_object_limit(4 * sep.get_sub_object_limit())
            else:
                raise
    return sep.extract(sub, threshold, **kw)


def _saturated(image, xpeak, ypeak) -> np.ndarray:
    """True for sources with a raw-saturated pixel (``Image.mask``) in the 3x3 box of their peak."""
    n = len(xpeak)
    image.ensure_mask()
    if not (image.mask_bits or 0) & PixelFlag.SATURATED:
        return np.zeros(n, bool)
    from ..algorithms.centroids import cutouts

    box, _, _ = cutouts(image.mask, np.c_[xpeak, ypeak].astype(float), 3, dtype=np.uint8, fill=0)
    return ((box & np.uint8(PixelFlag.SATURATED)) != 0).any(axis=(1, 2))


def _round_enough(objects, sub, rms, image):
    """The objects whose peak is not sharper than a star allows (:mod:`reduce.algorithms.sharpness`:
    hot pixels, cosmic-ray hits); how many were left out is ``image.computed['sharp_sources']``."""
    if len(objects) == 0:
        return objects
    peak, least = axis_neighbours(sub, objects["xpeak"], objects["ypeak"])
    spike = sharp(peak, least, rms, min_ratio=star_min_ratio(grid_scale(image)))
    image.computed["sharp_sources"] = int(spike.sum())
    return objects[~spike] if spike.any() else objects


class PointSourceDetection(Block):
    """Detect stars with sep on the background-subtracted frame.

    Parameters
    ----------
    threshold : float
        Detection threshold in units of the background rms.
    min_separation : float, optional
        Drop a source closer than this (px) to a brighter one.
    min_area : int
        Minimum number of connected pixels above threshold.
    n : int, optional
        Keep only the ``n`` brightest sources.
    deblend : bool
        Split blended sources (sep multi-threshold deblending).
    deblend_levels : int
        Number of deblending thresholds (SExtractor uses 32; fewer is faster, 16 loses little).
    edge : float
        Sources within this many pixels of the border get the ``edge`` flag.
    background : {'global', 'map'}
        'global': sigma-clipped median of a subsample (fast); 'map': sep.Background mesh.
    refine : int
        Refine the positions of this many brightest sources with windowed centroids (sep.winpos).
        Off by default: photometry re-centres every star on every frame anyway, and on the
        simulated nights the alignment error (0.0044 vs 0.0043 px rms), the FWHM and the light
        curves did not change, while it cost 0.3 ms of a 600x600 frame's ~15 ms.

    Sets ``image.sources`` (brightest first, with ``saturated`` and ``edge`` flags),
    ``image.bkg`` and ``image.bkg_rms`` (ADU). Raises NoSources when nothing is found.
    Masked pixels without data (``Image.mask``: unilluminated, non-finite) are left out of the
    background and the detection. A source whose brightest pixel is sharper than any star
    (hot pixel, cosmic-ray hit: :mod:`reduce.algorithms.sharpness`) is left out, and counted in
    ``image.computed['sharp_sources']``; a source is ``saturated`` when a raw-saturated pixel lies in
    the 3x3 box of its peak. A defocused (doughnut) star split by the deblending into its bright
    spots is merged back into one source (:func:`reduce.algorithms.rings.merge_ring_fragments`).

    ``quick_threshold`` (an attribute, not a parameter: the runner sets it for the frames of a
    dense field, whose stars to measure come from the reference) detects above that threshold
    first, and above ``threshold`` only when that finds fewer than ``QUICK_MIN`` stars.
    """

    requires = ("data",)
    provides = ("sources", "bkg", "bkg_rms")

    def __init__(self, *, threshold: float = 5.0, min_separation: float | None = None,
                 min_area: int = 5, n: int | None = None, deblend: bool = True,
                 deblend_levels: int = 16, edge: float = 5, background: str = "global",
                 refine: int = 0):
        if threshold <= 0:
            raise ValueError("threshold must be positive (in units of the background rms)")
        if min_area < 1:
            raise ValueError("min_area must be at least 1 pixel")
        if n is not None and n < 1:
            raise ValueError("n must be a positive number of sources (or None for all)")
        if background not in ("global", "map"):
            raise ValueError(f"background must be 'global' or 'map', not {background!r}")
        if min_separation is not None and min_separation < 0:
            raise ValueError("min_separation must be non-negative")
        self.threshold = float(threshold)
        self.min_separation = min_separation
        self.min_area = int(min_area)
        self.n = n
        self.deblend = bool(deblend)
        if not 1 <= int(deblend_levels) <= 64:
            raise ValueError("deblend_levels must be between 1 and 64")
        self.deblend_levels = int(deblend_levels)
        self.edge = float(edge)
        self.background = background
        self.refine = int(refine)
        # set by the runner for the frames of a dense field, not a recipe parameter: they only need
        # their brightest stars (alignment, PSF), and sep's cost grows with every star it extracts
        self.quick_threshold: float | None = None

    def _background(self, data, mask):
        if self.background == "map":
            import sep

            bk = sep.Background(data, mask=mask)
            return data - bk.back(), float(bk.globalback), float(bk.globalrms)
        bkg, rms = global_background(data, mask=mask)
        return data - np.float32(bkg), bkg, rms

    def run(self, image) -> None:
        data = np.ascontiguousarray(image.data, dtype=np.float32)
        if data.dtype.byteorder not in ("=", "|"):
            data = data.astype(data.dtype.newbyteorder("="))
        finite = np.isfinite(data)
        mask = image.bad_pixels(PixelFlag.no_data())
        if not finite.all():
            mask = ~finite if mask is None else mask | ~finite
        if mask is not None:
            data = np.where(mask, np.float32(0.0), data)
        sub, bkg, rms = self._background(data, mask)
        if not np.isfinite(rms) or rms <= 0:
            raise NoSources(f"the background rms is {rms:g}: a blank or constant frame")
        sub = np.ascontiguousarray(sub, dtype=np.float32)
        if mask is not None:
            sub[mask] = 0.0
        objects = self._objects(sub, rms, mask)
        image.bkg, image.bkg_rms = bkg, rms
        objects = _round_enough(objects, sub, rms, image)  # hot pixels and hits first: never part of a ring
        if len(objects):
            objects = merge_ring_fragments(objects, sub, rms)  # a doughnut split by deblending is one star
        if len(objects) == 0:
            raise NoSources(f"no source above {self.threshold:g} sigma")
        objects = objects[np.argsort(-objects["flux"], kind="stable")]
        xy = np.c_[objects["x"], objects["y"]]
        self._refine(sub, xy, objects)
        keep = self._separated(xy)
        if self.n is not None:
            keep = keep[: self.n]
        objects, xy = objects[keep], xy[keep]
        h, w = data.shape
        edge = ((xy[:, 0] < self.edge) | (xy[:, 1] < self.edge)
                | (xy[:, 0] > w - 1 - self.edge) | (xy[:, 1] > h - 1 - self.edge))
        saturated = _saturated(image, objects["xpeak"], objects["ypeak"])
        image.sources = Sources(xy, flux=objects["flux"], peak=objects["peak"], saturated=saturated,
                                edge=edge, a=objects["a"], b=objects["b"], theta=objects["theta"])

    def _objects(self, sub, rms, mask):
        """sep objects above ``threshold``; first above ``quick_threshold`` when the runner set one
        (frames of a dense field), kept when that finds at least ``QUICK_MIN`` stars."""
        levels = self.deblend_levels if self.deblend else 1
        if self.quick_threshold is not None and self.quick_threshold > self.threshold:
            objects = _extract(sub, self.quick_threshold, rms, mask, self.min_area, min(levels, QUICK_LEVELS),
                               matched_filter=False)
            if len(objects) >= QUICK_MIN:
                return objects
        return _extract(sub, self.threshold, rms, mask, self.min_area, levels)

    def _refine(self, sub, xy, objects) -> None:
        """Windowed centroids for the brightest sources; a refinement that wanders is ignored."""
        k = min(self.refine, len(xy))
        if k <= 0:
            return
        import sep

        # one window for all: the PSF is common, and saturated giants would make it huge
        sig = float(np.clip(np.median(np.sqrt(objects["a"][:k] * objects["b"][:k])), 0.5, 10.0))
        # subpix=1 instead of sep's 11: 4x faster; positions move by < 2e-5 px (measured on the
        # test fields, where the error to the truth is 5e-4 px median)
        wx, wy, flag = sep.winpos(sub, xy[:k, 0], xy[:k, 1], np.full(k, sig), subpix=1)
        ok = (flag == 0) & (np.hypot(wx - xy[:k, 0], wy - xy[:k, 1]) < 1.0)
        xy[:k, 0] = np.where(ok, wx, xy[:k, 0])
        xy[:k, 1] = np.where(ok, wy, xy[:k, 1])

    def _separated(self, xy) -> np.ndarray:
        """Indices (brightest first) of sources with no brighter one within ``min_separation``."""
        idx = np.arange(len(xy))
        if not self.min_separation or len(xy) < 2:
            return idx
        from ..algorithms.neighbors import Neighbors

        drop = np.zeros(len(xy), bool)
        for i, j in Neighbors(xy).query_pairs(self.min_separation):
            drop[max(i, j)] = True  # the fainter of the pair (sorted brightest first)
        return idx[~drop]
