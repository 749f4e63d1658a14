"""Colour-filter-array (Bayer) frames: the pattern from a header, 2x2 superpixels and channels.

A one-shot colour camera puts a 2x2 pattern of red, green and blue filters over its pixels
(``RGGB``: red at the first pixel, green at the next one of the first row and the first of the
second, blue at the last). The pattern is read as the first two rows of pixels *as stored in the
file* (``data[0, 0:2]`` then ``data[1, 0:2]``), the ASCOM/MaxIm convention of ``BAYERPAT``, moved
by ``XBAYROFF``/``YBAYROFF`` when the header has them. Any 2x2 window holds one pixel of each
phase, so a superpixel (their sum) is the same whatever the phase; a single channel needs it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["PATTERNS", "CHANNELS", "MODES", "normalise_pattern", "shift_pattern", "pattern_from_header",
           "channel_offsets", "bin_superpixels", "bin_mask", "lattice_fractions", "channel_balance",
           "cell_weights", "phase_modulation", "green_slopes", "red_weights"]

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
CHANNELS = ("R", "G", "B")
MODES = ("superpixel", *CHANNELS)

#: header keywords that name the pattern, in the order they are tried (FILTER only when it is one)
PATTERN_KEYWORDS = ("BAYERPAT", "COLORTYP", "CFA-PAT", "CFAPAT", "BAYER", "FILTER")


def normalise_pattern(value) -> str | None:
    """``'RGGB'`` from a header or config value (``'rggb'``, ``' R G G B '``), None when it is not
    one of the four Bayer patterns."""
    if value is None or isinstance(value, bool):
        return None
    text = "".join(str(value).split()).upper()
    return text if text in PATTERNS else None


def shift_pattern(pattern: str, dx: int, dy: int) -> str:
    """The pattern seen from pixel (dx, dy) of ``pattern``'s grid (offsets modulo 2)."""
    dx, dy = int(dx) % 2, int(dy) % 2
    rows = [pattern[0:2], pattern[2:4]]
    rows = rows[dy:] + rows[:dy]
    return "".join(r[dx:] + r[:dx] for r in rows)


def _offset(header, key: str) -> int:
    """An integer Bayer offset keyword, 0 when absent or unusable."""
    try:
        v = header.get(key)
        return int(v) if v is not None and float(v) == int(v) else 0
    except (TypeError, ValueError):
        return 0


def pattern_from_header(header) -> tuple[str, str] | None:
    """(pattern at file pixel (0, 0), keyword it came from) or None for a monochrome frame."""
    if header is None:
        return None
    for key in PATTERN_KEYWORDS:
        try:
            value = header.get(key)
        except Exception:  # an unusual header object
            value = None
        pattern = normalise_pattern(value)
        if pattern is not None:
            return shift_pattern(pattern, _offset(header, "XBAYROFF"), _offset(header, "YBAYROFF")), key
    return None


def channel_offsets(pattern: str, channel: str) -> list[tuple[int, int]]:
    """(dx, dy) inside a 2x2 cell of the pixels of ``channel`` (two for G)."""
    return [(i % 2, i // 2) for i, c in enumerate(pattern) if c == channel]


def _cells(shape, x0: int, y0: int) -> tuple[slice, slice, int, int]:
    """Rows, columns and size (ny, nx) of the whole 2x2 cells starting at pixel (x0, y0)."""
    h, w = shape
    ny, nx = (h - y0) // 2, (w - x0) // 2
    return slice(y0, y0 + 2 * ny), slice(x0, x0 + 2 * nx), ny, nx


def bin_superpixels(data: np.ndarray, x0: int, y0: int, offsets=None, weights=None) -> np.ndarray:
    """Sum of each 2x2 cell starting at (x0, y0) (float32); only the ``offsets`` pixels of the
    cell when given (a channel); each pixel times ``weights[dy, dx]`` (2x2) when given."""
    rows, cols, ny, nx = _cells(data.shape, x0, y0)
    cells = np.asarray(data[rows, cols], np.float32).reshape(ny, 2, nx, 2)
    if offsets is None and weights is not None:
        w = np.asarray(weights, np.float32).reshape(1, 2, 1, 2)
        return (cells * w).sum(axis=(1, 3), dtype=np.float32)
    if offsets is None:
        return cells.sum(axis=(1, 3), dtype=np.float32)
    out = np.zeros((ny, nx), np.float32)
    for dx, dy in offsets:
        out += cells[:, dy, :, dx]
    return out


def bin_mask(mask: np.ndarray | None, shape, x0: int, y0: int, offsets=None) -> np.ndarray | None:
    """OR of each cell's ``PixelFlag`` bits (of its ``offsets`` pixels when given): a superpixel
    is saturated when any raw pixel in it is."""
    if mask is None:
        return None
    rows, cols, ny, nx = _cells(shape, x0, y0)
    cells = mask[rows, cols].reshape(ny, 2, nx, 2)
    if offsets is None:
        return np.bitwise_or.reduce(np.bitwise_or.reduce(cells, axis=3), axis=1)
    out = np.zeros((ny, nx), mask.dtype)
    for dx, dy in offsets:
        out |= cells[:, dy, :, dx]
    return out


def lattice_fractions(data: np.ndarray, xy: np.ndarray, sky: float, half: int = 3) -> np.ndarray:
    """(n, 4) share of each star's light (box of 2*half px, sky removed) on the four 2x2
    sub-lattices (x even/odd, y even/odd, in ``data``'s pixels): ~1/4 each on a monochrome
    sensor, far from it on a colour one. NaN rows for stars too close to an edge."""
    h, w = data.shape
    out = np.full((len(xy), 4), np.nan)
    for k, (x, y) in enumerate(np.asarray(xy, float)):
        i0, j0 = int(round(y)) - half, int(round(x)) - half
        if i0 < 0 or j0 < 0 or i0 + 2 * half > h or j0 + 2 * half > w:
            continue
        box = np.asarray(data[i0:i0 + 2 * half, j0:j0 + 2 * half], float) - sky
        parts = np.array([box[(i0 + dy) % 2::2, (j0 + dx) % 2::2].sum() for dy in (0, 1) for dx in (0, 1)])
        total = parts.sum()
        if np.isfinite(total) and total > 0:
            out[k] = parts / total
    return out


def cell_weights(pattern: str, balance: dict) -> np.ndarray:
    """2x2 weights [dy, dx] of a cell of ``pattern`` from per-channel ``balance`` (R, G, B)."""
    return np.array([[balance[pattern[0]], balance[pattern[1]]], [balance[pattern[2]], balance[pattern[3]]]], float)


def channel_balance(data: np.ndarray, xy, pattern: str, x0: int, y0: int, half: int = 4,
                    min_stars: int = 5, gain: float = 1.0) -> dict | None:
    """{'R': .., 'G': 1, 'B': ..}: the factors that give red and blue pixels the response of the
    green ones to the stars at ``xy`` (in ``data``'s pixels, whose cells of ``pattern`` start at
    (x0, y0)); None with fewer than ``min_stars`` usable stars.

    An undersampled star puts more or less than a quarter of its light on each sub-lattice of
    the 2x2 cells depending on where it falls, but for a separable PSF the fractions obey
    f00 f11 = f01 f10 whatever the position: log(L_R L_B / (L_G L_G')) of the light each
    sub-lattice receives is log(r_R r_B / r_G^2) for every star, and log(L_R / L_B) is
    log(r_R / r_B) plus the share of the star's light on red columns and rows, which the two
    greens' ratio measures free of colour (fitted on the cosines of the distances to a red
    column and row). Medians over the stars give r_R and r_B (each star's sky taken per
    sub-lattice around it). That fit says how much the light moves between sub-lattices: ``modulation`` is the relative RMS, over
    positions, of a plain sum of the cell that this causes, ``noise`` a star's relative noise
    (median over the stars, in a box of ``2 half`` px, ``gain`` e-/ADU).
    """
    k = pattern.index("R")
    rx, ry = x0 + k % 2, y0 + k // 2  # a red pixel
    greens = [i for i, c in enumerate(pattern) if c == "G"]
    beside = 0 if greens[0] // 2 == k // 2 else 1  # the green in the red pixel's row
    a, b, g, phase, noise, used = [], [], [], [], [], []
    for i, (x, y) in enumerate(np.asarray(xy, float)):
        light = _cell_light(data, x, y, pattern, x0, y0, half)
        if light is None:
            continue
        used.append(i)
        a.append(np.log(light["R"] * light["B"] / (light["G"][0] * light["G"][1])))
        b.append(np.log(light["R"] / light["B"]))
        g.append(np.log(light["G"][beside] / light["G"][1 - beside]))
        phase.append((np.cos(np.pi * (x - rx)), np.cos(np.pi * (y - ry))))
        total = light["R"] + light["B"] + sum(light["G"])
        noise.append(np.sqrt(4 * half * half * light["sky_var"] + total / gain) / total)  # brightest first
    if len(a) < min_stars:
        return None
    A, phase = float(np.median(a)), np.asarray(phase)
    # the greens differ only by where the star falls: log(G beside / G below) = -u + v, where
    # log(L_R / L_B) = log(r_R / r_B) + u + v (u, v: the column and row shares, ~ cosines)
    _, (gx, gy) = _robust_fit(np.asarray(g), phase)
    slopes = (-gx, gy)
    own = np.asarray(b) - phase @ np.asarray(slopes)  # each star's log(r_R / r_B)
    B = float(np.median(own))
    r_red, r_blue = np.exp((A + B) / 2), np.exp((A - B) / 2)
    colours = np.full((len(xy), 2), np.nan)  # each star's (r_R, r_B), relative to green
    colours[used] = np.column_stack([np.exp((np.asarray(a) + own) / 2), np.exp((np.asarray(a) - own) / 2)])
    return {"R": float(1 / r_red), "G": 1.0, "B": float(1 / r_blue), "colours": colours,
            "eps": (abs(slopes[0]) / 4, abs(slopes[1]) / 4), "red": (rx, ry),
            "modulation": _modulation(r_red, r_blue, slopes), "noise": float(np.median(noise))}


def _modulation(r_red: float, r_blue: float, slopes) -> float:
    """Relative RMS over positions in the cell of the plain sum R + G + G' + B of a star whose
    light on the red sub-lattice columns (rows) is 1/2 + e cos(pi dx), e = slope / 4 (log(L_R /
    L_B) ~ 4 e cos + ...), with responses r_red, r_blue relative to green."""
    ex, ey = (abs(float(v)) / 4 for v in slopes)
    t = (np.arange(16) + 0.5) / 16
    cx, cy = np.meshgrid(np.cos(np.pi * t), np.cos(np.pi * t))
    p, q = 0.5 + ex * cx, 0.5 + ey * cy
    total = r_red * p * q + (1 - p) * q + p * (1 - q) + r_blue * (1 - p) * (1 - q)
    return float(np.std(total) / np.mean(total))


def _robust_fit(values: np.ndarray, phase: np.ndarray) -> tuple[float, tuple[float, float]]:
    """(intercept, slopes) of ``values`` fitted on the two phase cosines, refitted without what
    lies beyond 3 robust sigmas; the median and no slope with fewer than 8 stars."""
    if len(values) < 8:
        return float(np.median(values)), (0.0, 0.0)
    design = np.column_stack([np.ones(len(values)), phase])
    keep = np.ones(len(values), bool)
    for _ in range(2):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        resid = values - design @ coef
        mad = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
        keep = np.abs(resid) <= max(3 * mad, 1e-6)
        if keep.sum() < 8:
            return float(np.median(values)), (0.0, 0.0)
    coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
    return float(coef[0]), (float(coef[1]), float(coef[2]))


def _cell_light(data, x, y, pattern: str, x0: int, y0: int, half: int) -> dict | None:
    """Sky-subtracted light of a star on each sub-lattice of a 2x2-pixel box around (x, y)
    ({'R': .., 'G': [.., ..], 'B': .., 'sky_var': mean sky variance per pixel}); None near an
    edge or when one is not positive."""
    h, w = data.shape
    i0, j0 = int(round(y)) - half, int(round(x)) - half
    if i0 - 4 < 0 or j0 - 4 < 0 or i0 + 2 * half + 4 > h or j0 + 2 * half + 4 > w:
        return None
    big = np.asarray(data[i0 - 4:i0 + 2 * half + 4, j0 - 4:j0 + 2 * half + 4], float)
    ring = np.ones(big.shape, bool)  # the sky: 4 px around the star's box
    ring[4:4 + 2 * half, 4:4 + 2 * half] = False
    light = {"G": [], "sky_var": 0.0}
    for k, c in enumerate(pattern):
        sl = (slice((y0 + k // 2 - (i0 - 4)) % 2, None, 2), slice((x0 + k % 2 - (j0 - 4)) % 2, None, 2))
        sub, sky = big[sl], ring[sl]
        light["sky_var"] += float(np.var(sub[sky])) / 4
        total = float((sub[~sky] - np.median(sub[sky])).sum())
        if not np.isfinite(total) or total <= 0:
            return None
        if c == "G":
            light["G"].append(total)
        else:
            light[c] = total
    return light


def equalise_cells(flat: np.ndarray) -> np.ndarray:
    """``flat`` with each of its four 2x2 sub-lattices (file pixels: even/odd x and y) divided by
    its own median: a colour sensor's master flat then corrects pixel to pixel and vignetting
    without giving red and blue pixels the green ones' level (which amplifies their noise)."""
    out = np.array(flat, np.float32, copy=True)
    for dy in (0, 1):
        for dx in (0, 1):
            cell = out[dy::2, dx::2]
            lit = cell[np.isfinite(cell) & (cell > 0)]
            if lit.size:
                cell /= np.float32(np.median(lit))
    return out


def red_weights(pattern: str, mode: str, balance: dict | None) -> tuple[float, float, float]:
    """(w_R, w_G, w_B): what each colour's pixels count for in the measured values (a superpixel,
    with the balance when there is one, or one channel)."""
    if mode == "superpixel":
        b = balance or {"R": 1.0, "G": 1.0, "B": 1.0}
        return float(b["R"]), float(b["G"]), float(b["B"])
    return tuple(1.0 if c == mode else 0.0 for c in "RGB")


def phase_modulation(x, y, colours, weights, eps, red) -> np.ndarray:
    """Each star's measured flux over its mean over positions in the 2x2 cell, at file pixels
    (x, y): light 1/2 + e cos(pi (x - red_x)) on the red pixels' columns (the same for rows)
    recorded with each colour's response ``colours`` (n, 2: r_R, r_B relative to green) times
    its ``weights`` (w_R, w_G, w_B)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    p = 0.5 + eps[0] * np.cos(np.pi * (x - red[0]))
    q = 0.5 + eps[1] * np.cos(np.pi * (y - red[1]))
    wr, wg, wb = weights
    rr, rb = np.asarray(colours, float)[:, 0] * wr, np.asarray(colours, float)[:, 1] * wb
    total = rr * p * q + wg * ((1 - p) * q + p * (1 - q)) + rb * (1 - p) * (1 - q)
    return total / ((rr + 2 * wg + rb) / 4)


def green_slopes(beside: np.ndarray, below: np.ndarray, x, y, red) -> tuple[float, float] | None:
    """(e_x, e_y) of a frame from its stars' light on the green pixel beside a red one and the
    one below it: log(beside / below) = -4 e_x cos(pi (x - red_x)) + 4 e_y cos(pi (y - red_y)),
    whatever the stars' colours; None with fewer than 8 usable stars."""
    ok = np.isfinite(beside) & np.isfinite(below) & (beside > 0) & (below > 0)
    if ok.sum() < 8:
        return None
    g = np.log(beside[ok] / below[ok])
    phase = np.column_stack([np.cos(np.pi * (np.asarray(x, float)[ok] - red[0])),
                             np.cos(np.pi * (np.asarray(y, float)[ok] - red[1]))])
    _, (sx, sy) = _robust_fit(g, phase)
    return max(-sx, 0.0) / 4, max(sy, 0.0) / 4
