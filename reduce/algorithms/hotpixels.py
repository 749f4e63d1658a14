"""A night's hot pixels: found in the median of a few frames, repaired from their neighbours.

A pixel is hot when it is sharp (:mod:`reduce.algorithms.sharpness`: brighter than its
neighbours on both axes by more than any star) in the median of frames spread over the night:
a cosmic-ray hit is in one frame and leaves the median, a star is never sharp (so a field that
does not drift keeps its stars), a hot pixel stays. The repair replaces its value with what its
good neighbours say: ``2 N - D`` (N the mean of the 4 side neighbours, D of the 4 diagonal ones),
exact for a quadratic profile, so a star's peak crossing a hot pixel keeps most of its light
(0.96 of a FWHM 3.5 px peak, where the side mean gives 0.80), and never below the darkest good
neighbour; with a neighbour missing, the mean of the good ones.
"""
from __future__ import annotations

import numpy as np

from .sharpness import MIN_RATIO, axis_neighbours, sharp, sharp_above_ring, sharp_at, sharp_map

__all__ = ["find_hot_pixels", "repair_weights", "repair", "MIN_SIGMA"]

#: noise sigmas of the sharpness test in the median of frames: 1, not detection's 3, since a
#: star that sits still in the median and is taken for hot only has its peak pixel interpolated
#: (by the same rule on every frame), while a faint hot pixel left there biases every aperture
MAP_K = 1.0
#: least excess (in single-frame background sigmas) of a hot pixel above its neighbours: a
#: pixel 3 sigma up in every frame biases an aperture crossing it as much as its sky noise
MIN_SIGMA = 3.0

_SIDES = ((0, -1), (0, 1), (-1, 0), (1, 0))
_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def find_hot_pixels(stack: np.ndarray, rms: float, *, min_sigma: float = MIN_SIGMA,
                    passes: int = 6, min_ratio: float = MIN_RATIO) -> np.ndarray:
    """Boolean map of the hot pixels of ``stack`` (frames, ny, nx), same-shaped calibrated frames
    spread over a night (3 or more), ``rms`` their single-frame background noise (ADU).

    Candidates are sharp in the median of the frames; each must be sharp in most frames too
    (:func:`_voted`), since where stars drift slowly the median can stitch pieces of different
    frames' stars into a sharp-looking pixel. Each pass repairs what the previous found, so a
    pixel beside a hot one on both axes (an L, a 2x2 cluster) is judged on its own next.
    A float32 ``stack`` is repaired in place (no copy of a large stack). ``min_ratio``: the least
    axis ratio of a star on these pixels (:func:`~reduce.algorithms.sharpness.star_min_ratio`)."""
    from ..blocks.detection import global_background

    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim != 3 or len(stack) < 3:
        raise ValueError("hot pixels are found in a stack of 3 or more frames")
    med = _median(stack)
    bkg, med_rms = global_background(med)
    hot = np.zeros(med.shape, bool)
    if not (np.isfinite(bkg) and np.isfinite(med_rms) and med_rms > 0):
        return hot
    excess = max(min_sigma * float(rms), 6.0 * med_rms)
    levels = [global_background(frame)[0] for frame in stack]
    cand = np.flatnonzero(sharp_map(med, bkg, med_rms, min_excess=excess, k=MAP_K, min_ratio=min_ratio))
    for _ in range(passes):
        new = np.zeros_like(hot)
        new.flat[_voted(stack, levels, med, cand, min_ratio)] = True
        if not new.any():
            break
        hot |= new
        weights = repair_weights(hot)  # all found so far, anew: none is repaired from another
        med = repair(med, *weights)
        for frame in stack:
            repair(frame, *weights)
        cand = _around(new, hot, med, bkg, med_rms, excess, min_ratio)
    return hot


def _around(new, hot, med, bkg, rms, excess, min_ratio=MIN_RATIO) -> np.ndarray:
    """Flat indices of the candidates within 2 px of the pixels ``new`` just repaired (the only
    ones whose neighbours or ring changed), not yet ``hot``: the next pass looks only there."""
    ny, nx = med.shape
    y, x = np.nonzero(new)
    ys = np.clip((y[:, None] + np.repeat(np.arange(-2, 3), 5)[None]).ravel(), 1, ny - 2)
    xs = np.clip((x[:, None] + np.tile(np.arange(-2, 3), 5)[None]).ravel(), 1, nx - 2)
    index = np.unique(ys * nx + xs)
    index = index[~hot.ravel()[index]]
    y, x = np.unravel_index(index, med.shape)
    return index[sharp_at(med, x, y, bkg, rms, min_excess=excess, k=MAP_K, min_ratio=min_ratio)]


def _median(stack: np.ndarray, band: int = 1 << 20) -> np.ndarray:
    """The median over frames of ``stack``, in row bands of about ``band`` pixels (np.median
    copies what it sorts: a band, not the whole stack)."""
    _, ny, nx = stack.shape
    out = np.empty((ny, nx), np.float32)
    rows = max(1, band // nx)
    for r0 in range(0, ny, rows):
        out[r0:r0 + rows] = np.median(stack[:, r0:r0 + rows], axis=0)
    return out


def _voted(stack, levels, med, index, min_ratio=MIN_RATIO) -> np.ndarray:
    """The flat ``index`` of the candidates that, in more than half the frames, stand above their
    least axis mean by half their excess in the median and are sharp above the frame's
    background ``levels`` or above their ring (as :func:`sharp_map`, with no noise margin)."""
    if index.size == 0:
        return index
    y, x = np.unravel_index(index, med.shape)
    value, least = axis_neighbours(med, x, y)
    half = 0.5 * (value - least)
    votes = np.zeros(index.size, int)
    for frame, b in zip(stack, levels):
        v, m = axis_neighbours(frame, x, y)
        votes += (v - m > half) & (sharp(v - b, m - b, 0.0, min_ratio=min_ratio)
                                   | sharp_above_ring(frame, x, y, 0.0, min_ratio=min_ratio))
    return index[votes > len(stack) // 2]


def repair_weights(hot: np.ndarray, bad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel, neighbours, weights) to repair the pixels True in ``hot``: flat indices (k,), the
    flat indices of their 8 neighbours (k, 8) and the weights (k, 8) of ``2 N - D`` when all 8
    are good (not hot, not ``bad``, on the frame), else of the mean of the good ones (all zero
    when none is: the pixel is then left to the mask)."""
    ny, nx = hot.shape
    y, x = np.nonzero(hot)
    offsets = _SIDES + _DIAGONALS
    ys = np.stack([y + dy for dy, _ in offsets], axis=1)
    xs = np.stack([x + dx for _, dx in offsets], axis=1)
    inside = (ys >= 0) & (ys < ny) & (xs >= 0) & (xs < nx)
    ys, xs = np.clip(ys, 0, ny - 1), np.clip(xs, 0, nx - 1)
    unusable = hot if bad is None else hot | bad
    good = inside & ~unusable[ys, xs]
    w = np.where(good, 1.0, 0.0)
    n = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(n > 0, w / n, 0.0)
    full = good.all(axis=1)
    w[full] = np.array([0.5] * 4 + [-0.25] * 4)  # 2 N - D
    return y * nx + x, ys * nx + xs, w


def repair(data: np.ndarray, pixels: np.ndarray, neighbours: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``data`` with ``pixels`` replaced from their ``neighbours`` (see :func:`repair_weights`);
    a pixel without a good neighbour becomes NaN (to be masked). Changes ``data`` in place when
    it is a writeable float array."""
    if data.dtype.kind != "f" or not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, dtype=data.dtype if data.dtype.kind == "f" else np.float32, order="C")
    flat = data.reshape(-1)
    around = flat[neighbours]
    good = weights != 0
    values = (around * weights).sum(axis=1)
    # 2 N - D never goes below the darkest good neighbour (beside a star's steep wing it could)
    values = np.maximum(values, np.where(good, around, np.inf).min(axis=1))
    values[~good.any(axis=1)] = np.nan
    flat[pixels] = values
    return data
