"""Detector sections written FITS/IRAF style (``[x1:x2,y1:y2]``, 1-based, inclusive) as numpy slices,
and the overscan level such a section gives."""
from __future__ import annotations

import re

import numpy as np

__all__ = ["parse_section", "is_section", "overscan_level"]


_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


def parse_section(section: str, shape: tuple[int, int] | None = None) -> tuple[slice, slice]:
    """``'[x1:x2,y1:y2]'`` (FITS/IRAF, 1-based inclusive, spaces allowed) -> numpy (rows, cols) slices."""
    m = _SECTION.match(str(section).strip())
    if not m:
        raise ValueError(f"not a FITS section '[x1:x2,y1:y2]': {section!r}")
    x1, x2, y1, y2 = (int(v) for v in m.groups())
    if min(x1, x2, y1, y2) < 1 or x2 < x1 or y2 < y1:
        raise ValueError(f"invalid section {section!r} (1-based, x1<=x2, y1<=y2)")
    if shape is not None and (y2 > shape[0] or x2 > shape[1]):
        raise ValueError(f"section {section!r} falls outside the {shape[1]}x{shape[0]} frame")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def is_section(text) -> bool:
    """True when ``text`` is written as a section (``TRIMSEC`` values that are not are ignored)."""
    return bool(_SECTION.match(str(text).strip()))


def overscan_level(data: np.ndarray, section: str) -> np.ndarray:
    """Overscan level to subtract: per-line medians of the section, smoothed over 15 lines.

    A strip narrower than it is tall gives one level per row (shape (h, 1)); a wide strip one
    level per column (shape (1, w)).
    """
    from scipy.ndimage import median_filter

    rows, cols = parse_section(section, data.shape)
    region = data[rows, cols]
    vertical = region.shape[1] <= region.shape[0]
    lines = np.nanmedian(region, axis=1 if vertical else 0)
    if lines.size >= 5:
        lines = median_filter(lines, size=min(15, lines.size), mode="nearest")
    n = data.shape[0] if vertical else data.shape[1]
    level = np.full(n, np.nanmedian(lines), dtype=np.float32)
    level[rows if vertical else cols] = lines
    return level[:, None] if vertical else level[None, :]
