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
RIM_MIN = 0.12     # the circle's darkest point / its median: a ring stays lit all the way round
HOLE_MAX = 0.7     # the centre / the circle's median: a ring is darker inside


def _groups(xy: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Connected-component label of each point, linking pairs closer than 2.5 x their summed sizes."""
    label = np.arange(len(xy))
    pairs = Neighbors(xy).query_pairs(5.0 * float(size.max()))
    if len(pairs) == 0:
        return label
    i, j = pairs[:, 0], pairs[:, 1]
    keep = np.hypot(*(xy[i] - xy[j]).T) < 2.5 * (size[i] + size[j])
    for a, b in pairs[keep]:  # union-find over the few links between fragments
        ra, rb = _root(label, a), _root(label, b)
        if ra != rb:
            label[max(ra, rb)] = min(ra, rb)
    return np.array([_root(label, k) for k in range(len(label))])


def _root(label, k):
    while label[k] != k:
        label[k] = label[label[k]]
        k = label[k]
    return k


def _sample(sub: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of ``sub`` at (x, y) (NaN off the frame)."""
    ny, nx = sub.shape
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    out = np.full(x.shape, np.nan)
    out[ok] = sub[iy[ok], ix[ok]]
    return out


def ring_groups(sub: np.ndarray, xy: np.ndarray, flux: np.ndarray, size: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the groups of points (deblended fragments) that are one ring in ``sub``
    (background-subtracted pixels): lit all round a circle through them, dark at its centre."""
    if len(xy) < 2:
        return []
    label = _groups(xy, size)
    out = []
    for g in np.unique(label):
        idx = np.flatnonzero(label == g)
        if len(idx) < 2:
            continue
        w = np.clip(flux[idx], 1e-12, None)
        c = (xy[idx] * w[:, None]).sum(axis=0) / w.sum()
        radius = float(np.median(np.hypot(*(xy[idx] - c).T)))
        if radius < 1.5:
            continue
        rim = _sample(sub, c[0] + radius * np.cos(_ANGLES), c[1] + radius * np.sin(_ANGLES))
        if not np.isfinite(rim).all():
            continue
        level = float(np.median(rim))
        centre = float(np.nanmean(_sample(sub, c[0] + np.array([0.0, 1, -1, 0, 0]),
                                          c[1] + np.array([0.0, 0, 0, 1, -1]))))
        if level > 0 and rim.min() > RIM_MIN * level and centre < HOLE_MAX * level:
            out.append(idx)
    return out


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


def merge_ring_fragments(objects: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """sep ``objects`` with each ring split by deblending (see :func:`ring_groups`) merged into one
    source at its centre of mass: fluxes summed, peak the brightest fragment's, size the ring's
    radius. Returns ``objects`` itself when nothing was merged."""
    merged = np.flatnonzero((objects["flag"] & OBJ_MERGED) != 0)
    if len(merged) < 2:
        return objects
    xy = np.column_stack([objects["x"][merged], objects["y"][merged]]).astype(float)
    size = np.sqrt(np.abs(objects["a"][merged] * objects["b"][merged])).astype(float)
    groups = ring_groups(sub, xy, objects["flux"][merged].astype(float), size)
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
