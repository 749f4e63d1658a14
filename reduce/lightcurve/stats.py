"""Robust statistics of light curves: NaN-ignoring medians and the point-to-point scatter.

``nanmedian`` is sort-based because ``np.nanmedian`` falls back to a Python loop over slices when
NaNs are present (see benchmarks/bench_diffphot.py); everything here ignores NaNs without warnings.
"""
from __future__ import annotations

import numpy as np

__all__ = ["nanmedian", "frame_median", "p2p_scatter"]


MAD_TO_SIGMA = 1.482602218505602


def nanmedian(x, axis=-1, keepdims=False):
    """Median ignoring NaNs (NaN where a slice is all-NaN or empty), without warnings.

    Sort-based: several times faster than ``np.nanmedian`` on long axes with a few NaNs
    (numpy then falls back to a Python loop over slices; see benchmarks/bench_diffphot.py).
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    nan = np.isnan(x)
    if x.shape[-1] == 0:
        out = np.full(x.shape[:-1] + (1,), np.nan)
    elif not nan.any():
        out = np.median(x, axis=-1, keepdims=True)
    else:
        srt = np.sort(x, axis=-1)  # NaNs sort last
        n = np.sum(~nan, axis=-1, keepdims=True)
        lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0), axis=-1)
        hi = np.take_along_axis(srt, np.maximum(n // 2, 0), axis=-1)
        out = np.where(n > 0, 0.5 * (lo + hi), np.nan)
    out = np.moveaxis(out, -1, axis)
    return out if keepdims else np.squeeze(out, axis=axis)


def p2p_scatter(x, axis=-1, *, clip=5.0):
    """Robust point-to-point scatter: white noise per point, insensitive to slow trends and outliers.

    RMS of the successive differences within ``clip`` MAD-sigmas of their median, over sqrt(2)
    (nearly as efficient as a plain RMS, unlike a pure MAD); NaNs are ignored (a NaN frame
    spoils its two differences).
    """
    d = np.moveaxis(np.diff(np.asarray(x, dtype=float), axis=axis), axis, -1)
    med = nanmedian(d, axis=-1, keepdims=True)
    dev = np.abs(d - med)
    s0 = MAD_TO_SIGMA * nanmedian(dev, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = dev <= clip * s0
        ms = np.sum(np.where(ok, dev ** 2, 0.0), axis=-1) / np.sum(ok, axis=-1)
    return np.sqrt(ms / 2.0)


def frame_median(x, frames):
    """Median of ``x`` (n_apertures, n_stars, n_frames) over each aperture's usable ``frames``.

    Returns (n_apertures, n_stars, 1). Apertures sharing a frame mask (the usual case) are done
    together on the selected frames, so NaN-free data take numpy's fast partition median.
    """
    frames = np.asarray(frames, bool)
    if frames.all():
        return nanmedian(x, axis=-1, keepdims=True)
    out = np.full(x.shape[:-1] + (1,), np.nan)
    groups: dict[bytes, list[int]] = {}
    for a, row in enumerate(np.packbits(frames, axis=1)):
        groups.setdefault(row.tobytes(), []).append(a)
    for idx in groups.values():
        mask = frames[idx[0]]
        if mask.any():
            sub = x if len(idx) == x.shape[0] else x[idx]
            out[idx] = nanmedian(sub[..., mask], axis=-1, keepdims=True)
    return out
