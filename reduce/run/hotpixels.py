"""The group's hot pixels: found once in a few calibrated frames spread over the night, repaired
on every frame by a :class:`~reduce.blocks.hotpixels.RepairHotPixels` block after calibration.

With darks most hot pixels are subtracted and few are left; without them (or with darks of
another temperature) a CCD can have thousands, which detection would take for stars. The log
says how many were found, and warns (with the count in the summary's warnings) when they are
many, suggesting darks when the night has none.
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np

__all__ = ["night_hot_pixels", "SAMPLE", "MANY", "MOST"]

log = logging.getLogger("reduce.run")

#: frames sampled (spread evenly over the group) to find the hot pixels in their median
SAMPLE = 7
#: most bytes the sampled frames may hold (float32): a 26-megapixel camera gets 3 frames
STACK_BYTES = 256 * 2 ** 20
#: above this fraction of the pixels the "hot pixels" are a pattern (e.g. the red and blue
#: pixels of a colour sensor's raw mosaic on a coloured sky), not defects: nothing is repaired
MOST = 0.05
#: the sampled frames are kept unrepaired for :func:`dark_excess` up to this many bytes
KEEP_BYTES = 64 * 2 ** 20
#: a night has "many" hot pixels above this fraction of its pixels (1 in 10,000)
MANY = 1e-4


def night_hot_pixels(plan, cal_blocks, loader, warnings: list | None = None):
    """A RepairHotPixels block for the group's hot pixels (found in the median of ``SAMPLE``
    frames run through ``cal_blocks``), or None when there is none or too few frames (< 3)."""
    from ..algorithms.hotpixels import find_hot_pixels
    from ..algorithms.sharpness import star_min_ratio
    from ..blocks.hotpixels import RepairHotPixels

    stack, rms, binning = _sample(plan.frames, cal_blocks, loader)
    if stack is None:
        return None
    before = stack.copy() if stack.nbytes <= KEEP_BYTES else None
    hot = find_hot_pixels(stack, rms, min_ratio=star_min_ratio(binning))
    n = int(hot.sum())
    if n == 0:
        log.info("%s: no hot pixel in the median of %d frames", plan.name, len(stack))
        return None
    if n > MOST * hot.size:
        log.warning("%s: %d pixels (%.0f %% of the frame) look sharper than any star in the median of "
                    "%d frames: a pattern, not hot pixels (a colour sensor's mosaic?); none repaired",
                    plan.name, n, 100.0 * n / hot.size, len(stack))
        return None
    _report(plan, n, hot.size, len(stack), warnings)
    return RepairHotPixels(hot, excess=None if before is None else dark_excess(before, stack, hot, rms))


def dark_excess(before, repaired, hot, rms: float):
    """Each hot pixel's own dark signal (ADU, in ``hot``'s row-major order of pixels): the median
    over the sampled frames of its value less its neighbours' repair, where that is steady
    (robust spread below a tenth of it or 3 ``rms``); NaN elsewhere (a flickering one, or one
    under a star in most frames, is repaired from its neighbours). Subtracting a
    steady dark signal leaves a star's light on the pixel as it was, whatever its place on the
    star: a repair from the neighbours beside an undersampled star's core misses it by an amount
    that moves with the centring (measured: a 7,000 ADU hot pixel two raw pixels from the second
    brightest star after a re-centring jump gave it 10 ppt of scatter and cost the ensemble that
    comparison)."""
    y, x = np.nonzero(hot)
    e = before[:, y, x].astype(np.float64) - repaired[:, y, x]
    level = np.median(e, axis=0)
    spread = 1.4826 * np.median(np.abs(e - level), axis=0)
    steady = spread < np.maximum(0.1 * np.abs(level), 3.0 * rms)
    return np.where(steady & (level > 0), level, np.nan)


def _sample(frames, cal_blocks, loader, n: int = SAMPLE):
    """(stack, rms, binning): up to ``n`` calibrated frames spread over ``frames`` (fewer, down to
    3, when they would hold more than ``STACK_BYTES``), of their most common shape, their median
    background noise and their pixels' width in raw pixels (2 on a colour sensor's superpixels);
    (None, None, 1) with fewer than 3 usable."""
    from ..blocks.detection import global_background
    from ..blocks.bayer import grid_scale
    from ..core.sequence import run_frame

    if len(frames) < 3:
        return None, None, 1
    for block in cal_blocks:
        block.setup(None)
    image = run_frame(cal_blocks, frames[0], loader)
    binning = grid_scale(image)
    first = _calibrated(image)
    if first is not None:
        n = min(n, max(3, int(STACK_BYTES // (4 * first.size))))
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), n)).round().astype(int))
    images = [] if first is None else [first]
    for i in picks[1:]:
        data = _calibrated(run_frame(cal_blocks, frames[i], loader))
        if data is not None:
            images.append(data)
    if not images:
        return None, None, 1
    shape = Counter(a.shape for a in images).most_common(1)[0][0]
    images = [a for a in images if a.shape == shape]
    if len(images) < 3:
        return None, None, 1
    rms = float(np.nanmedian([global_background(a)[1] for a in images]))
    if not np.isfinite(rms) or rms <= 0:
        return None, None, 1
    return np.stack(images), rms, binning


def _calibrated(image):
    """The image's pixels as float32, or None when the chain rejected it."""
    if image.flags or image.data is None or image.data.ndim != 2:
        return None
    return np.asarray(image.data, dtype=np.float32)


def _report(plan, n: int, size: int, frames: int, warnings) -> None:
    """Log the count; a warning (kept in ``warnings``) when it is above ``MANY`` of the pixels."""
    darks = bool(getattr(plan.calibration, "darks", None))
    what = (f"{n} hot pixel(s) ({100.0 * n / size:.3g} % of the frame), sharper than any star in the "
            f"median of {frames} frames: repaired from their neighbours on every frame")
    if n < MANY * size:
        log.info("%s: %s", plan.name, what)
        return
    hint = ("; take dark frames (same exposure and temperature) to subtract them" if not darks
            else "; the darks do not remove them (another temperature or exposure?)")
    message = what + hint
    log.warning("%s: %s", plan.name, message)
    if warnings is not None:
        warnings.append({"code": "hot_pixels", "pixels": n, "darks": darks, "message": message})
