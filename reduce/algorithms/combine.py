"""Frame combination: sigma-clipping builds a mask, then a (nan)median or mean combines.

Pure array code (ccdproc's Combiner design): rejection and combination are separate steps, and
:func:`tiled_combine` bounds memory by combining row tiles, asking the caller for only the rows
it needs, so hundreds of frames fit in a fixed budget. The rules are astropy's ``sigma_clip(
cenfunc='median', stdfunc='mad_std')`` but for a floor on the MAD (0.3 std: a MAD of 0 on repeated
integer values must not clip everything) and never rejecting every frame of a pixel; a median
master is 2-3x faster than astropy's, in half its workspace (benchmarks/bench_pipeline.py).
"""
from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np

__all__ = ["sigma_clip_mask", "combine_stack", "tiled_combine", "rows_per_tile"]


# up to this many frames, sorting along the frame axis uses a compare-exchange network of
# elementwise min/max over whole frames (much faster than np.sort(axis=0) for a few frames)
_NETWORK_MAX = 12


def _sort_frames(stack: np.ndarray) -> np.ndarray:
    """A copy of ``stack`` sorted along axis 0 (put missing values at +inf so they sort last)."""
    out = np.array(stack, copy=True)
    n = out.shape[0]
    if n > _NETWORK_MAX:
        out.sort(axis=0)
        return out
    tmp = np.empty_like(out[0])
    for i in range(1, n):  # insertion network: after pass i, out[:i + 1] is sorted
        for j in range(i, 0, -1):
            np.minimum(out[j - 1], out[j], out=tmp)
            np.maximum(out[j - 1], out[j], out=out[j])
            out[j - 1] = tmp
    return out


def _pick(srt: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``srt[index[p], p]`` for every pixel ``p`` (index < len(srt))."""
    if srt.shape[0] > _NETWORK_MAX:
        return np.take_along_axis(srt, index[None], 0)[0]
    out = srt[0].copy()
    for i in range(1, srt.shape[0]):
        np.copyto(out, srt[i], where=index == i)
    return out


def _median_sorted(srt: np.ndarray, count) -> np.ndarray:
    """Per-pixel median of the first ``count`` values of a stack sorted along axis 0 (NaN where
    ``count`` is 0); ``count`` is an array, or an int when the same for every pixel."""
    half = srt.dtype.type(0.5)
    if np.isscalar(count):
        if count == 0:
            return np.full(srt.shape[1:], np.nan, dtype=srt.dtype)
        return (srt[(count - 1) // 2] + srt[count // 2]) * half
    a = _pick(srt, np.maximum(count - 1, 0) // 2)
    b = _pick(srt, np.minimum(count // 2, srt.shape[0] - 1))
    with np.errstate(invalid="ignore"):
        med = (a + b) * half
    med[count == 0] = np.nan
    return med


def _nan_median0(stack: np.ndarray) -> np.ndarray:
    """``np.nanmedian(stack, axis=0)`` (NaN where every value is NaN), much faster for few frames."""
    missing = np.isnan(stack)
    work = np.where(missing, stack.dtype.type(np.inf), stack)
    return _median_sorted(_sort_frames(work), stack.shape[0] - np.count_nonzero(missing, axis=0))


def sigma_clip_mask(stack: np.ndarray, *, sigma: float = 3.0, maxiters: int = 3) -> np.ndarray:
    """Boolean mask (True = rejected) of values more than ``sigma`` robust std from the median.

    ``stack`` has shape ``(n_frames, ...)``; statistics are per pixel along axis 0, the std from
    the median absolute deviation (x1.4826) so a single outlier cannot hide itself. Non-finite
    values are always rejected.
    """
    return _clip(np.asarray(stack), sigma=sigma, maxiters=maxiters)[0]


def _clip(stack: np.ndarray, *, sigma, maxiters) -> tuple[np.ndarray, np.ndarray | None]:
    """(rejection mask, median of the kept values or None when not computed).

    Each pixel's statistics depend on its own column only, so after the first pass only the
    columns whose mask changed are processed again (typically a few cosmic-ray pixels): the
    result is the same as re-clipping the whole stack every pass.
    """
    mask = ~np.isfinite(stack)
    if stack.shape[0] < 3 or sigma is None or sigma <= 0:
        return mask, None
    shape = stack.shape
    flat = stack.reshape(shape[0], -1)
    fmask = mask.reshape(shape[0], -1)
    med = np.full(flat.shape[1], np.nan, dtype=np.float32 if stack.dtype == np.float32 else np.float64)
    active = None  # None: every column
    for _ in range(maxiters):
        sub = flat if active is None else flat[:, active]
        old = fmask if active is None else fmask[:, active]
        m, new = _clip_pass(sub, old, sigma)
        changed = np.flatnonzero((new != old).any(axis=0))
        if active is None:
            med[:] = m
            fmask[:] = new
            active = changed
        else:
            med[active] = m
            fmask[:, active] = new
            active = active[changed]
        if len(active) == 0:
            return mask, med.reshape(shape[1:])
    if len(active):  # columns changed by the last pass: their median with the final mask
        med[active] = _nan_median0(np.where(fmask[:, active], np.nan, flat[:, active]))
    return mask, med.reshape(shape[1:])


def _clip_pass(stack: np.ndarray, mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """One clipping pass on (n_frames, n_pixels): (median of the kept values, new mask)."""
    inf = stack.dtype.type(np.inf) if stack.dtype.kind == "f" else np.inf
    if mask.any():
        work = np.where(mask, inf, stack)  # rejected values sort last and deviate infinitely
        count = stack.shape[0] - mask.sum(axis=0, dtype=np.intp)
    else:
        work, count = stack, stack.shape[0]
    med = _median_sorted(_sort_frames(work), count)
    with np.errstate(invalid="ignore"):
        dev = np.abs(work - med)
    mad = _median_sorted(_sort_frames(dev), count) * 1.4826
    # a MAD of 0 (repeated integer values) must not clip everything: floor it with a
    # fraction of the plain std; per pixel only, so tiling cannot change the result
    floor = 0.3 * _masked_std0(stack, mask, count)
    std = np.maximum(np.nan_to_num(mad, nan=0.0), np.nan_to_num(floor, nan=0.0))
    with np.errstate(invalid="ignore"):
        new = mask | (dev > sigma * std)
    new &= ~np.all(new, axis=0, keepdims=True) | mask  # never reject every frame of a pixel
    return med, new


def _masked_std0(stack: np.ndarray, mask: np.ndarray, count) -> np.ndarray:
    """Population std along axis 0 of the unmasked values (NaN where none), like np.nanstd."""
    zero = stack.dtype.type(0)
    k = np.asarray(count, dtype=stack.dtype if stack.dtype.kind == "f" else np.float64)
    masked = not np.isscalar(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(mask, zero, stack) if masked else stack).sum(axis=0) / k
        dev = stack - mean
        if masked:
            dev[mask] = zero
        dev *= dev
        return np.sqrt(dev.sum(axis=0) / k)


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
    if sigma:
        mask, med = _clip(stack, sigma=sigma, maxiters=maxiters)
    else:
        mask, med = ~np.isfinite(stack), None
    if method == "median":
        if med is None:
            med = _nan_median0(np.where(mask, np.nan, stack))
        return med.astype(np.float32)
    count = stack.shape[0] - np.count_nonzero(mask, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(mask, 0.0, stack).sum(axis=0, dtype=np.float64) / count
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
        out[r0:r1] = _combine_in_threads(tile, method=method, sigma=sigma, maxiters=maxiters)
        del tile
    return out


#: stacks smaller than this (values) are combined in one thread: starting threads would cost more
_THREADED_MIN = 2_000_000


def _combine_in_threads(tile: np.ndarray, **kwargs) -> np.ndarray:
    """:func:`combine_stack` of ``tile`` with its rows shared among the usable cores (numpy's sorts
    and ufuncs release the GIL; every pixel depends on its own column only, so the result is
    the same to the bit): the masters are built while the frames' workers are not started yet."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parts = min(cores, 4, tile.shape[1])
    if parts < 2 or tile.size < _THREADED_MIN:
        return combine_stack(tile, **kwargs)
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, tile.shape[1], parts + 1).round().astype(int)
    with ThreadPoolExecutor(parts, thread_name_prefix="reduce-combine") as pool:
        rows = list(pool.map(lambda r: combine_stack(tile[:, r[0]:r[1]], **kwargs), zip(bounds, bounds[1:])))
    return np.concatenate(rows, axis=0)


def n_tiles(n_frames: int, shape: tuple[int, int], mem_limit_bytes: int) -> int:
    """Number of row tiles :func:`tiled_combine` will use."""
    return math.ceil(shape[0] / rows_per_tile(n_frames, shape, mem_limit_bytes))
