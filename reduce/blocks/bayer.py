"""The BayerBin block: measure a colour (CFA) frame on 2x2 superpixels, or on one colour channel.

A one-shot colour sensor's raw frame is a checkerboard of red, green and blue pixels: a star is
measured there as a mono image with a FWHM and centroid that follow the pattern, not the light.
After calibration on the raw mosaic (bias, dark and flat are per pixel, so they apply unchanged)
and Trim, this block sums each 2x2 cell of the pattern (``channel: superpixel``, the default) or
keeps one channel (``R``, ``B``, or ``G``: the sum of both greens). The cells start on the
pattern's phase in the file's pixels, also when Trim cut an odd number of rows or columns. The
mask follows: a superpixel is saturated (or unusable) when any of its pixels is. Frames whose
header names no pattern (``BAYERPAT``, ``COLORTYP``, a ``FILTER`` such as ``'RGGB'``) and whose
instrument configuration sets no ``bayer:`` pass through unchanged, so the runner puts this
block after Trim in every chain (see :func:`reduce.run.group`).
"""
from __future__ import annotations

import logging

import numpy as np

from ..algorithms import bayer as cfa
from ..core.block import Block

__all__ = ["BayerBin", "CFAPhaseCorrection", "cfa_settings", "grid_to_file", "file_to_grid", "wcs_to_grid", "grid_to_wcs",
           "grid_scale", "cfa_keywords"]

log = logging.getLogger("reduce")


class BayerBin(Block):
    """Bin a colour (Bayer) frame into 2x2 superpixels, or keep one channel (R, G or B).

    Parameters
    ----------
    channel : str, optional
        ``superpixel`` (sum of the 4 pixels of each cell), ``R``, ``G`` (sum of the 2 greens) or
        ``B``; None takes the instrument configuration's ``bayer_channel``, else ``superpixel``.
    pattern : str, optional
        The pattern at the file's first pixel (``RGGB``, ``BGGR``, ``GRBG``, ``GBRG``), for frames
        whose header does not say it; None reads the configuration's ``bayer``, else the header.
    balance : bool
        Superpixels: let the runner weigh the red and blue pixels so that each channel's pixels
        carry the green pixels' share of a star's light (measured on the reference's stars, the
        same factors for every frame) when the stars are undersampled enough that their plain
        sum depends on which colour pixel they fall on (see :mod:`reduce.run.colour`).

    Sets ``image.computed['cfa']`` (pattern, where it came from, channel, first cell; on
    superpixels ``'cfa_mosaic'``: the calibrated mosaic, for CosmicRays, which drops it) and scales
    the read noise to the pixels summed. The WCS is left on the file's (trimmed) pixels (astropy
    cannot resample a CD matrix or SIP terms): :func:`wcs_to_grid` and :func:`grid_to_wcs` convert.
    """

    requires = ("data",)
    provides = ("data",)
    modifies_data = True

    def __init__(self, *, channel: str | None = None, pattern: str | None = None, balance: bool = True):
        if channel is not None and _mode(channel) is None:
            raise ValueError(f"channel must be one of {', '.join(cfa.MODES)}, got {channel!r}")
        if pattern is not None and cfa.normalise_pattern(pattern) is None:
            raise ValueError(f"pattern must be one of {', '.join(cfa.PATTERNS)}, got {pattern!r}")
        self.channel = None if channel is None else _mode(channel)
        self.pattern = cfa.normalise_pattern(pattern) if pattern is not None else None
        self.auto_balance = bool(balance)
        self.balance: dict | None = None  # per-channel factors the runner measures on the reference

    def run(self, image) -> None:
        found = cfa_settings(image, self.pattern, self.channel)
        if found is None:
            return
        pattern, source, mode = found
        image.ensure_mask()
        x0, _, y0, _ = image.computed.get("trim", (0, None, 0, None))
        px, py = int(x0) % 2, int(y0) % 2  # cells start on even file pixels: the pattern's phase
        offsets = None if mode == "superpixel" else cfa.channel_offsets(pattern, mode)
        shape, raw = image.data.shape, image.data
        weights = cfa.cell_weights(pattern, self.balance) if self.balance and offsets is None else None
        image.data = cfa.bin_superpixels(image.data, px, py, offsets, weights)
        image.set_mask(cfa.bin_mask(image.mask, shape, px, py, offsets))
        n = 4 if offsets is None else len(offsets)
        if image.read_noise is not None:
            squares = n if weights is None else float(np.sum(weights ** 2))
            image.read_noise = float(image.read_noise) * float(np.sqrt(squares))
        image.computed["cfa"] = {"pattern": pattern, "source": source, "mode": mode, "bin": 2,
                                 "pixels": n, "start": [int(x0) + px, int(y0) + py]}
        if weights is not None:
            image.computed["cfa"]["balance"] = dict(self.balance)
        image.computed["cfa_greens"] = _greens(raw, pattern, px, py)
        if offsets is None:  # the calibrated mosaic, for CosmicRays' test of star cores (no copy)
            image.computed["cfa_mosaic"] = (raw, px, py, weights)
        _move_sources(image, px, py)  # the WCS stays on the file's (trimmed) pixels: see wcs_to_grid


def _greens(data, pattern: str, px: int, py: int) -> tuple:
    """(green beside a red pixel, green below it) of each cell, as two superpixel images: their
    ratio around a star says how its light falls on the cell (see :class:`CFAPhaseCorrection`)."""
    k = pattern.index("R")
    beside = [(i % 2, i // 2) for i, c in enumerate(pattern) if c == "G" and i // 2 == k // 2]
    below = [(i % 2, i // 2) for i, c in enumerate(pattern) if c == "G" and i // 2 != k // 2]
    return cfa.bin_superpixels(data, px, py, beside), cfa.bin_superpixels(data, px, py, below)


class CFAPhaseCorrection(Block):
    """Correct each star's flux on a colour frame for where it falls in its 2x2 cell.

    An undersampled star puts more or less than a quarter of its light on each colour's pixels
    depending on its position in the cell, so a red star reads brighter on a red pixel; as the
    field drifts, each star's measured flux moves with its own colour (5 ppt at 2 px FWHM on
    the simulator's stars). Per frame, how the light splits (``e``: the light on a red pixel's
    columns is 1/2 + e cos(pi dx)) is measured from the two greens around the stars, which no
    colour affects; each star's colour (its red and blue responses relative to green) comes
    from the reference (set by the runner: ``colours``, ``weights``, ``red``, ``eps``); the sky-
    subtracted aperture sums are divided by the predicted factor. Monochrome frames, and frames
    without what the runner sets, pass unchanged.
    """

    requires = ("aperture",)
    provides = ("aperture",)

    def __init__(self):
        self.colours: np.ndarray | None = None
        self.weights: tuple | None = None
        self.red: tuple | None = None
        self.eps: tuple | None = None

    def run(self, image) -> None:
        greens = image.computed.pop("cfa_greens", None)  # not carried further (memory)
        ap = image.aperture
        if self.colours is None or greens is None or ap is None or image.sources is None \
                or len(image.sources) != len(self.colours):
            return
        fx, fy = grid_to_file(image, image.sources.x, image.sources.y)
        beside, below = (_star_light(g, image.sources.coords) for g in greens)
        bright = slice(0, 40)  # the reference's stars come brightest first
        eps = cfa.green_slopes(beside[bright], below[bright], fx[bright], fy[bright], self.red) or self.eps
        factor = cfa.phase_modulation(fx, fy, self.colours, self.weights, eps, self.red)
        sums, areas = np.asarray(ap["fluxes"], float), np.asarray(ap["areas"], float)
        an = image.annulus
        sky = np.asarray(an["median"], float)[:, None] if an is not None and len(an["median"]) == len(sums) else 0.0
        image.aperture = {**ap, "fluxes": sky * areas + (sums - sky * areas) / factor[:, None]}
        image.computed["cfa_phase"] = {"eps": [float(eps[0]), float(eps[1])]}


def _star_light(image: np.ndarray, xy, half: int = 2) -> np.ndarray:
    """Light of each star in a (2 half + 1)^2 box of ``image`` less the median of the ring of
    pixels 1 to 2 px outside it; NaN near an edge."""
    h, w = image.shape
    out = np.full(len(xy), np.nan)
    o = half + 2
    for k, (x, y) in enumerate(np.asarray(xy, float)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        i, j = int(round(y)), int(round(x))
        if i - o < 0 or j - o < 0 or i + o >= h or j + o >= w:
            continue
        box = np.asarray(image[i - o:i + o + 1, j - o:j + o + 1], float)
        ring = np.ones(box.shape, bool)
        ring[2:-2, 2:-2] = False
        out[k] = float(box[2:-2, 2:-2].sum() - np.median(box[ring]) * (2 * half + 1) ** 2)
    return out


def _mode(value) -> str | None:
    """'superpixel', 'R', 'G' or 'B' from a recipe or config value (any case), else None."""
    text = str(value).strip()
    if text.lower() == "superpixel":
        return "superpixel"
    return text.upper() if text.upper() in cfa.CHANNELS else None


def cfa_settings(image, pattern: str | None = None, channel: str | None = None):
    """(pattern at file pixel (0, 0), where it came from, mode) for a colour frame, else None.

    The pattern: ``pattern``, else the instrument configuration's ``bayer`` (``none`` forces a
    monochrome reduction), else the header. The mode: ``channel``, else the configuration's
    ``bayer_channel``, else ``superpixel``.
    """
    inst = getattr(image, "instrument", None)
    configured = getattr(inst, "bayer", None)
    if pattern is not None:
        found = (pattern, "recipe")
    elif configured is not None:
        if str(configured).lower() == "none":
            return None
        found = (configured, "config bayer")
    else:
        found = cfa.pattern_from_header(image.header)
    if found is None:
        return None
    mode = channel or _mode(getattr(inst, "bayer_channel", None) or "superpixel") or "superpixel"
    return found[0], found[1], mode


def _move_sources(image, px: int, py: int) -> None:
    """Sources already found (a chain that detects before binning) move to the new grid."""
    if image.sources is None or not len(image.sources):
        return
    xy = (image.sources.coords - [px + 0.5, py + 0.5]) / 2.0
    image.sources.coords = xy


def grid_to_file(image, x, y):
    """File pixels (0-based) of positions on the grid ``image`` is measured on (after Trim and
    BayerBin: a superpixel's position is the centre of its 2x2 cell)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    info = image.computed.get("cfa")
    if info:
        sx, sy = info["start"]
        return 2.0 * x + sx + 0.5, 2.0 * y + sy + 0.5
    x0, _, y0, _ = image.computed.get("trim", (0, None, 0, None))
    return x + x0, y + y0


def file_to_grid(image, x, y):
    """Positions on the measured grid of file pixels (x, y) (the inverse of :func:`grid_to_file`)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    info = image.computed.get("cfa")
    if info:
        sx, sy = info["start"]
        return (x - sx - 0.5) / 2.0, (y - sy - 0.5) / 2.0
    x0, _, y0, _ = image.computed.get("trim", (0, None, 0, None))
    return x - x0, y - y0


def wcs_to_grid(image, x, y):
    """Measured-grid positions of pixel positions of ``image.wcs`` (the trimmed file pixels: Trim
    moves the WCS, BayerBin does not)."""
    x0, _, y0, _ = image.computed.get("trim", (0, None, 0, None))
    return file_to_grid(image, np.asarray(x, float) + x0, np.asarray(y, float) + y0)


def grid_to_wcs(image, x, y):
    """Pixel positions for ``image.wcs`` of measured-grid positions (see :func:`wcs_to_grid`)."""
    x0, _, y0, _ = image.computed.get("trim", (0, None, 0, None))
    fx, fy = grid_to_file(image, x, y)
    return fx - x0, fy - y0


def grid_scale(image) -> float:
    """File pixels per pixel of the measured grid (2 on superpixels, else 1)."""
    return 2.0 if image.computed.get("cfa") else 1.0


def cfa_keywords(image) -> dict:
    """The product's FITS keywords for a colour frame (BAYERPAT, CFAMODE, CFABIN); {} for mono."""
    info = image.computed.get("cfa")
    if not info:
        return {}
    return {"BAYERPAT": info["pattern"], "CFAMODE": info["mode"], "CFABIN": int(info["bin"])}
