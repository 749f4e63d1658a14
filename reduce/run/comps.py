"""Comparison stars given by position (``differential: {comps: [{x: .., y: ..}, ...]}``): each
position, read on the same frame as a pixel target (the night's first light frame, or the frame
named with ``--target X,Y@FILE``), is mapped onto the reference and snapped to the nearest
measured star; a position with no measured star near it is an error, never a silent choice.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..blocks.bayer import file_to_grid, grid_scale, grid_to_file
from ..model.errors import ReduceError
from .target import _alignment_blocks, _same_file, target_frame

__all__ = ["place_comparisons", "snap_positions"]

log = logging.getLogger("reduce.run")


def place_comparisons(spec, ref, target: int, *, frames=(), night=None, pre=(), phot=(), loader=None):
    """``spec`` with ``differential.comps`` set to the star indices of its ``comp_positions``
    (unchanged without them); the placement is kept in ``ref.computed['comparisons_placed']``."""
    dspec = spec.differential
    if not dspec.comp_positions:
        return spec
    frame = target_frame(getattr(spec.target, "frame", None), frames, night)
    grid, how = _map_points(ref, frame, dspec.comp_positions, pre, _alignment_blocks(phot, ref), loader)
    idx, record = snap_positions(ref, grid, dspec.comp_positions, target, Path(str(frame)).name)
    for r in record:
        r["mapped_by"] = how
    ref.computed["comparisons_placed"] = record
    return dataclasses.replace(spec, differential=dataclasses.replace(dspec, comps=tuple(idx)))


def snap_positions(ref, grid_xy, given, target: int, frame_name: str) -> tuple[list, list]:
    """(indices, records): the measured star nearest each position (measured-grid pixels of the
    reference) within 1.5 FWHM (at least 3 px); ReduceError naming the position and the nearest
    star when none is near, or when it is the target or another comparison's star."""
    s = ref.sources
    radius = max(3.0, 1.5 * float(ref.fwhm or 3.0))
    scale = grid_scale(ref)
    idx, record = [], []
    for k, ((gx, gy), (x, y)) in enumerate(zip(grid_xy, given)):
        what = f"comparison {k} at ({x:g}, {y:g}) of {frame_name}"
        d = np.hypot(s.x - gx, s.y - gy)
        i = int(np.argmin(d)) if len(d) else -1
        sx, sy = (float(v) for v in grid_to_file(ref, s.x[i], s.y[i])) if i >= 0 else (np.nan, np.nan)
        if i < 0 or d[i] > radius:
            near = f"; the nearest is star #{i} at ({sx:.1f}, {sy:.1f}), {d[i] * scale:.1f} px away" if i >= 0 else ""
            raise ReduceError(f"{what}: no measured star within {radius * scale:.1f} px of it on the "
                              f"reference{near}. Check the position (0-based pixels, as --target X,Y; "
                              "DS9/AstroImageJ show 1-based ones: subtract 1), or give comps by index")
        if i == int(target):
            raise ReduceError(f"{what} is the target (star #{i} at ({sx:.1f}, {sy:.1f})): a comparison "
                              "must be another star")
        if i in idx:
            raise ReduceError(f"{what} is star #{i} at ({sx:.1f}, {sy:.1f}), already comparison "
                              f"{idx.index(i)}: give each comparison star once")
        log.info("%s -> star #%d at (%.1f, %.1f) on the reference, %.1f px away", what, i, sx, sy,
                 d[i] * scale)
        idx.append(i)
        record.append({"given": {"x": float(x), "y": float(y), "frame": frame_name}, "index": i,
                       "snapped": [sx, sy], "snap_distance_px": float(d[i] * scale)})
    return idx, record


def _map_points(ref, frame, points, pre, align, loader) -> tuple[np.ndarray, str]:
    """((n, 2) positions on the reference's measured grid, how) of file pixels ``points`` of
    ``frame`` (through the frame's alignment on the reference, as a pixel target is placed)."""
    from ..algorithms.asterism import apply_transform
    from ..core.sequence import run_frame

    pts = np.asarray(points, float).reshape(-1, 2)
    if _same_file(frame, ref.path):
        return np.column_stack(file_to_grid(ref, pts[:, 0], pts[:, 1])), "identity (the reference frame itself)"
    name = Path(str(frame)).name
    image = run_frame(pre, frame, loader)
    if image.flags or image.sources is None or not len(image.sources):
        raise ReduceError(f"comparison positions cannot be read on {name}: "
                          + ("; ".join(m for _, _, m in image.issues) or "no stars detected")
                          + ". Give the comparisons by index, or the target's frame with --target X,Y@FILE")
    g = np.column_stack(file_to_grid(image, pts[:, 0], pts[:, 1]))
    for block in align:
        block.setup(None)
        try:
            block.run(image)
        except Exception as e:
            raise ReduceError(f"comparison positions: {name} is not aligned on the reference ({e}); "
                              "give the comparisons by index") from None
    t = np.linalg.inv(np.asarray(image.transform, float))
    return np.asarray(apply_transform(t, g), float).reshape(-1, 2), f"alignment ({align[-1].name})"
