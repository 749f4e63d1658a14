"""Detector defects that no calibration frame removes: cosmic-ray hits.

Shared by the simulator (light, dark and flat frames) and by tests that add hits to real frames
(the HAT-P-32 night with 60 hits per frame), so both draw the same kind of hit.
"""
from __future__ import annotations

import numpy as np

__all__ = ["cosmic_ray_hits", "add_cosmic_rays"]


def cosmic_ray_hits(rng, shape, n: int, ceiling: float, *, track_fraction: float = 0.4,
                    max_length: int = 8) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``n`` cosmic-ray hits on a frame of ``shape`` (ny, nx): each is (y, x, adu) of its pixels.

    A hit is a single pixel (sometimes with one or two lit neighbours), or, for
    ``track_fraction`` of them, a short straight track of 2..``max_length`` pixels. Deposits are
    drawn log-uniformly from 100 ADU to twice ``ceiling`` (a third of them reach it), so hits
    range from faint to clipped at the converter's ceiling, as real ones do.
    """
    ny, nx = shape
    hits = []
    for _ in range(int(n)):
        y0, x0 = float(rng.uniform(0, ny)), float(rng.uniform(0, nx))
        if rng.uniform() < track_fraction:
            length = int(rng.integers(2, max_length + 1))
            ang = rng.uniform(0, np.pi)
            s = np.arange(length)
            ys, xs = y0 + s * np.sin(ang), x0 + s * np.cos(ang)
        else:
            extra = int(rng.integers(0, 3))
            ys = y0 + np.concatenate([[0.0], rng.integers(-1, 2, extra)])
            xs = x0 + np.concatenate([[0.0], rng.integers(-1, 2, extra)])
        y = np.clip(np.rint(ys).astype(int), 0, ny - 1)
        x = np.clip(np.rint(xs).astype(int), 0, nx - 1)
        peak = float(np.exp(rng.uniform(np.log(100.0), np.log(2.0 * ceiling))))
        adu = peak * np.exp(-0.5 * rng.uniform(0, 1.5, y.size))
        hits.append((y, x, adu))
    return hits


def add_cosmic_rays(data: np.ndarray, rng, n: int, ceiling: float) -> list:
    """Add ``n`` hits (:func:`cosmic_ray_hits`) to ``data`` in place, clipped at ``ceiling``;
    return the hits' pixels as [[x, y], ...] lists (one per hit) for a truth record."""
    out, work = [], data.astype(np.float64)
    for y, x, adu in cosmic_ray_hits(rng, data.shape, n, ceiling):
        np.add.at(work, (y, x), adu)
        out.append([[int(a), int(b)] for a, b in zip(x, y)])
    np.clip(work, None, ceiling, out=work)
    data[...] = np.rint(work) if data.dtype.kind in "iu" else work
    return out
