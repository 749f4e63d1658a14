"""Doughnut (defocused) stars split by deblending: find the fragments of one ring and merge them.

sep's multi-threshold deblending splits a ring with bright spots (lobes, spider gaps) into one
source per spot. A group of deblended sources is one ring when a circle through them, about their
common centre, stays bright all the way round while its centre is dark: two or three separate
stars leave the circle dark between them. The merged source sits at the centre of mass of the
ring's pixels. Pure numpy on sep's structured array; no Image or Block.
"""
from __future__ import annotations

import numpy as np

from .neighbors import Neighbors

__all__ = ["merge_ring_fragments", "ring_groups"]

OBJ_MERGED = 1  # sep's flag of a source split off by deblending
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
_CROSS = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
RIM_MIN = 0.3      # the circle's darkest point / its median: a ring stays lit all the way round
RIM_SNR = 5.0      # ... and that darkest point stands this many background sigmas above the sky
HOLE_MAX = 0.7     # the centre / the circle's median: a ring is darker inside


def _groups(xy: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Connected-component label (its smallest member) of each point, linking pairs closer than
    2.5 x their summed sizes (label propagation over the links, vectorised)."""
    label = np.arange(len(xy))
    pairs = Neighbors(xy).query_pairs(5.0 * float(size.max()))
    if len(pairs) == 0:
        return label
    i, j = pairs[:, 0], pairs[:, 1]
    keep = np.hypot(*(xy[i] - xy[j]).T) < 2.5 * (size[i] + size[j])
    i, j = i[keep], j[keep]
    while len(i):
        low = np.minimum(label[i], label[j])
        new = label.copy()
        np.minimum.at(new, i, low)
        np.minimum.at(new, j, low)
        new = new[new]  # jump to the label's own label
        if np.array_equal(new, label):
            break
        label = new
    return label


def _sample(sub: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of ``sub`` at (x, y) (NaN off the frame)."""
    ny, nx = sub.shape
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    out = np.full(x.shape, np.nan)
    out[ok] = sub[iy[ok], ix[ok]]
    return out


def ring_groups(sub: np.ndarray, xy: np.ndarray, flux: np.ndarray, size: np.ndarray,
                rms: float = 0.0) -> list[np.ndarray]:
    """Index arrays of the groups of points (deblended fragments) that are one ring in ``sub``
    (background-subtracted pixels of noise ``rms``): lit all round a circle through them, at
    ``RIM_SNR`` sigmas at least, and dark at its centre."""
    if len(xy) < 2:
        return []
    label = _groups(xy, size)
    roots, inverse, count = np.unique(label, return_inverse=True, return_counts=True)
    if not (count >= 2).any():
        return []
    w = np.clip(flux, 1e-12, None)
    total = np.bincount(inverse, w)
    c = np.column_stack([np.bincount(inverse, w * xy[:, 0]), np.bincount(inverse, w * xy[:, 1])]) / total[:, None]
    radius = np.bincount(inverse, np.hypot(*(xy - c[inverse]).T)) / count
    cand = np.flatnonzero((count >= 2) & (radius >= 1.5))
    if not len(cand):
        return []
    cx, cy, r = c[cand, 0, None], c[cand, 1, None], radius[cand, None]
    rim = _sample(sub, cx + r * np.cos(_ANGLES), cy + r * np.sin(_ANGLES))
    centre = _sample(sub, cx + _CROSS[:, 0], cy + _CROSS[:, 1]).mean(axis=1)
    with np.errstate(invalid="ignore"):
        level = np.median(rim, axis=1)
        low = rim.min(axis=1)
        ring = (level > 0) & (low > RIM_MIN * level) & (low > RIM_SNR * rms) & (centre < HOLE_MAX * level)
    return [np.flatnonzero(inverse == g) for g in cand[ring]]


def _ring_centre(sub, c, radius, iterations=3):
    """Centre of mass of the positive pixels within 1.6 ``radius`` of ``c`` (re-centred)."""
    ny, nx = sub.shape
    r = 1.6 * radius
    for _ in range(iterations):
        x0, x1 = max(0, int(c[0] - r)), min(nx, int(c[0] + r) + 2)
        y0, y1 = max(0, int(c[1] - r)), min(ny, int(c[1] + r) + 2)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        w = np.where(np.hypot(gx - c[0], gy - c[1]) <= r, np.clip(sub[y0:y1, x0:x1], 0, None), 0.0)
        if w.sum() <= 0:
            break
        c = np.array([(w * gx).sum() / w.sum(), (w * gy).sum() / w.sum()])
    return c


def merge_ring_fragments(objects: np.ndarray, sub: np.ndarray, rms: float = 0.0) -> np.ndarray:
    """sep ``objects`` with each ring split by deblending (see :func:`ring_groups`; ``rms`` the
    background noise of ``sub``) merged into one
    source at its centre of mass: fluxes summed, peak the brightest fragment's, size the ring's
    radius. Returns ``objects`` itself when nothing was merged."""
    merged = np.flatnonzero((objects["flag"] & OBJ_MERGED) != 0)
    if len(merged) < 2:
        return objects
    xy = np.column_stack([objects["x"][merged], objects["y"][merged]]).astype(float)
    size = np.sqrt(np.abs(objects["a"][merged] * objects["b"][merged])).astype(float)
    groups = ring_groups(sub, xy, objects["flux"][merged].astype(float), size, rms)
    if not groups:
        return objects
    drop, rows = [], []
    for g in groups:
        idx = merged[g]
        row = objects[idx[np.argmax(objects["peak"][idx])]].copy()
        w = np.clip(objects["flux"][idx], 1e-12, None)
        c = np.array([(objects["x"][idx] * w).sum(), (objects["y"][idx] * w).sum()]) / w.sum()
        radius = float(np.median(np.hypot(objects["x"][idx] - c[0], objects["y"][idx] - c[1])))
        c = _ring_centre(sub, c, radius)
        row["x"], row["y"] = c
        row["flux"] = objects["flux"][idx].sum()
        row["npix"] = objects["npix"][idx].sum()
        row["a"] = row["b"] = radius
        row["theta"] = 0.0
        rows.append(row)
        drop.extend(idx.tolist())
    keep = np.ones(len(objects), bool)
    keep[drop] = False
    return np.concatenate([objects[keep], np.array(rows, dtype=objects.dtype)])
