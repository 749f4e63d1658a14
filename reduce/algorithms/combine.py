"""Frame combination: sigma-clipping builds a mask, then a (nan)median or mean combines.

Pure array code (ccdproc's Combiner design): rejection and combination are separate steps, and
:func:`tiled_combine` bounds memory by combining row tiles, asking the caller for only the rows
it needs, so hundreds of frames fit in a fixed budget.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["sigma_clip_mask", "combine_stack", "tiled_combine", "rows_per_tile"]


def sigma_clip_mask(stack: np.ndarray, *, sigma: float = 3.0, maxiters: int = 3) -> np.ndarray:
    """Boolean mask (True = rejected) of values more than ``sigma`` robust std from the median.

    ``stack`` has shape ``(n_frames, ...)``; statistics are per pixel along axis 0, the std from
    the median absolute deviation (x1.4826) so a single outlier cannot hide itself. Non-finite
    values are always rejected.
    """
    stack = np.asarray(stack)
    mask = ~np.isfinite(stack)
    if stack.shape[0] < 3 or sigma is None or sigma <= 0:
        return mask
    for _ in range(maxiters):
        work = np.where(mask, np.nan, stack)
        med = np.nanmedian(work, axis=0)
        mad = np.nanmedian(np.abs(work - med), axis=0) * 1.4826
        # a MAD of 0 (repeated integer values) must not clip everything: floor it with a
        # fraction of the plain std; per pixel only, so tiling cannot change the result
        floor = 0.3 * np.nanstd(work, axis=0)
        std = np.maximum(np.nan_to_num(mad, nan=0.0), np.nan_to_num(floor, nan=0.0))
        new = mask | (np.abs(stack - med) > sigma * std)
        new &= ~np.all(new, axis=0, keepdims=True) | mask  # never reject every frame of a pixel
        if np.array_equal(new, mask):
            break
        mask = new
    return mask


def combine_stack(stack: np.ndarray, *, method: str = "median", sigma: float | None = 3.0,
                  maxiters: int = 3) -> np.ndarray:
    """Combine ``stack`` (n_frames, ...) along axis 0 after sigma-clip rejection; float32 out.

    Pixels with every value rejected or non-finite come out NaN (never a sentinel).
    """
    if method not in ("median", "mean"):
        raise ValueError(f"method must be 'median' or 'mean', not {method!r}")
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim < 2 or stack.shape[0] == 0:
        raise ValueError(f"need a stack of shape (n_frames, ...), got {stack.shape}")
    mask = sigma_clip_mask(stack, sigma=sigma, maxiters=maxiters) if sigma else ~np.isfinite(stack)
    work = np.where(mask, np.nan, stack)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels -> NaN, on purpose
        out = np.nanmedian(work, axis=0) if method == "median" else np.nanmean(work, axis=0)
    return out.astype(np.float32)


def rows_per_tile(n_frames: int, shape: tuple[int, int], mem_limit_bytes: int) -> int:
    """How many image rows of all frames fit in ``mem_limit_bytes`` (float32 stack + workspace)."""
    per_row = n_frames * shape[1] * 4 * 4  # stack, masked copy, deviations, mask (approx.)
    return max(1, min(shape[0], int(mem_limit_bytes // max(per_row, 1))))


def tiled_combine(n_frames: int, shape: tuple[int, int], get_rows: Callable[[int, int, int], np.ndarray],
                  *, method: str = "median", sigma: float | None = 3.0, maxiters: int = 3,
                  mem_limit_bytes: int = 512 * 2**20) -> np.ndarray:
    """Combine ``n_frames`` frames of ``shape`` tile by tile within ``mem_limit_bytes``.

    ``get_rows(i, r0, r1)`` returns rows ``r0:r1`` of frame ``i`` (already pre-processed). With a
    budget large enough for everything it is called once per frame with the full row range.
    """
    if n_frames <= 0:
        raise ValueError("nothing to combine")
    h, w = shape
    step = rows_per_tile(n_frames, shape, mem_limit_bytes)
    out = np.empty(shape, dtype=np.float32)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        tile = np.empty((n_frames, r1 - r0, w), dtype=np.float32)
        for i in range(n_frames):
            rows = np.asarray(get_rows(i, r0, r1))
            if rows.shape != (r1 - r0, w):
                raise ValueError(f"frame {i} rows {r0}:{r1} have shape {rows.shape}, expected {(r1 - r0, w)}")
            tile[i] = rows
        out[r0:r1] = combine_stack(tile, method=method, sigma=sigma, maxiters=maxiters)
        del tile
    return out


def n_tiles(n_frames: int, shape: tuple[int, int], mem_limit_bytes: int) -> int:
    """Number of row tiles :func:`tiled_combine` will use."""
    return math.ceil(shape[0] / rows_per_tile(n_frames, shape, mem_limit_bytes))
