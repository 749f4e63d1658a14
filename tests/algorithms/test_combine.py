"""Sigma-clipped frame combination: same masks and medians as the direct nanmedian definition."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from reduce.algorithms.combine import combine_stack, sigma_clip_mask, tiled_combine


def _reference_mask(stack, sigma=3.0, maxiters=3):
    """The definition, with numpy's nan-aware reductions (slow but obvious)."""
    mask = ~np.isfinite(stack)
    if stack.shape[0] < 3:
        return mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(maxiters):
            work = np.where(mask, np.nan, stack)
            med = np.nanmedian(work, axis=0)
            mad = np.nanmedian(np.abs(work - med), axis=0) * 1.4826
            floor = 0.3 * np.nanstd(work, axis=0)
            std = np.maximum(np.nan_to_num(mad), np.nan_to_num(floor))
            new = mask | (np.abs(stack - med) > sigma * std)
            new &= ~np.all(new, axis=0, keepdims=True) | mask
            if np.array_equal(new, mask):
                break
            mask = new
    return mask


def _stack(n, seed):
    rng = np.random.default_rng(seed)
    st = rng.normal(1000, 10, (n, 60, 70)).astype(np.float32)
    st[1, rng.random((60, 70)) < 0.02] = 6e4                 # cosmic rays
    st[n - 1, rng.random((60, 70)) < 0.05] += 35              # mild outliers: several passes
    st[0, :2] = np.nan
    st[:, 5, 5] = np.nan                                      # every value missing
    st[:, 6, 6] = 7.0                                         # constant pixel (MAD 0)
    st[2:, 8, 8] = np.round(st[2:, 8, 8])
    st[1, 9, 9] = np.inf
    return st


@pytest.mark.parametrize("n", [3, 4, 5, 8, 15])
def test_mask_and_median_equal_the_definition(n):
    st = _stack(n, n)
    for maxiters in (1, 3, 10):
        assert np.array_equal(sigma_clip_mask(st, maxiters=maxiters), _reference_mask(st, maxiters=maxiters))
    mask = _reference_mask(st)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(mask, np.nan, st), axis=0)
        mean = np.nanmean(np.where(mask, np.nan, st).astype(float), axis=0)
    out = combine_stack(st)
    assert out.dtype == np.float32 and np.array_equal(out, expected.astype(np.float32), equal_nan=True)
    assert np.isnan(out[5, 5]) and out[6, 6] == 7.0
    assert np.allclose(combine_stack(st, method="mean"), mean, equal_nan=True, rtol=1e-6)
    no_clip = combine_stack(st, sigma=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.array_equal(no_clip, np.nanmedian(np.where(np.isfinite(st), st, np.nan), axis=0)
                              .astype(np.float32), equal_nan=True)


def test_tiled_combine_equals_one_tile():
    st = _stack(5, 1)
    whole = combine_stack(st)
    tiled = tiled_combine(5, st.shape[1:], lambda i, r0, r1: st[i, r0:r1], mem_limit_bytes=5 * 70 * 4 * 4 * 7)
    assert np.array_equal(whole, tiled, equal_nan=True)


@pytest.mark.parametrize("n, method", [(5, "median"), (15, "mean"), (25, "median")])
def test_rows_shared_among_threads_give_the_same_bits(n, method):
    """Masters are combined with their rows shared among the cores: each pixel depends on its own
    column only, so the result must be the single-thread one to the bit (NaN and outliers too)."""
    from reduce.algorithms.combine import _combine_in_threads

    rng = np.random.default_rng(n)
    stack = rng.normal(100, 5, (n, 300, 700)).astype(np.float32)
    stack[0, 3, 4] = 1e5
    stack[2, 10:20, 5] = np.nan
    stack[:, 50, 60] = np.nan
    one = combine_stack(stack, method=method, sigma=3.0)
    assert _combine_in_threads(stack, method=method, sigma=3.0, maxiters=3).tobytes() == one.tobytes()
