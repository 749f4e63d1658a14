"""Colour (CFA) sensors in the runner: the BayerBin block put after Trim in every chain, what the
log says about it, and a warning when frames that no keyword calls colour look like a mosaic.

BayerBin passes monochrome frames through untouched, so it is in every chain the runner builds
(unless the recipe places one itself): frames with ``BAYERPAT`` (or ``COLORTYP``, a 2x2 ``FILTER``
such as ``'RGGB'``, or the configuration's ``bayer:``) are measured on 2x2 superpixels, after
calibration on the raw mosaic, with no option.
"""
from __future__ import annotations

import logging

import numpy as np

__all__ = ["with_bayer_block", "note_colour", "cfa_record", "mosaic_evidence"]

log = logging.getLogger("reduce.run")

#: a star's light on the brightest of the four 2x2 sub-lattices over that on the faintest, median
#: over the stars, above which frames look like a colour mosaic: ~1.0-1.1 on a monochrome sensor
#: (undersampled stars average out over many stars), 1.5-4 behind R, G and B filters
MOSAIC_RATIO = 1.35
MOSAIC_MIN_STARS = 8


def with_bayer_block(blocks: list, n_calibration: int) -> list:
    """``blocks`` (the reference chain) with a BayerBin after the calibration section's blocks
    (Calibration, Trim), unless the recipe already has one."""
    from ..blocks.bayer import BayerBin

    if any(isinstance(b, BayerBin) for b in blocks):
        return blocks
    return [*blocks[:n_calibration], BayerBin(), *blocks[n_calibration:]]


def cfa_record(ref) -> dict | None:
    """What the provenance says about a colour frame (pattern, keyword, mode, grid), or None."""
    info = ref.computed.get("cfa")
    if not info:
        return None
    return {**info, "positions": "x, y of the table, STARS and target are 0-based file pixels; fwhm, "
            "dx, dy in file pixels; apertures in measured (2x2 superpixel) pixels"}


def note_colour(ref, name: str, warnings: list) -> None:
    """Log how a colour reference is measured; warn when a mono-looking one looks like a mosaic."""
    info = ref.computed.get("cfa")
    if info:
        what = ("2x2 superpixels (the sum of R, G, G and B)" if info["mode"] == "superpixel"
                else f"the {info['mode']} channel" + (" (both greens summed)" if info["mode"] == "G" else ""))
        log.info("%s: colour sensor (pattern %s at file pixel 0,0, from %s): measured on %s, after "
                 "calibration on the raw mosaic; positions are given in file pixels", name,
                 info["pattern"], info["source"], what)
        return
    ratio = mosaic_evidence(ref)
    if ratio is not None and ratio > MOSAIC_RATIO:
        w = {"code": "looks_like_colour_sensor", "frames": 0, "message":
             f"the stars put {ratio:.2f}x more light on one of the four 2x2 pixel sub-lattices than on "
             "another (a monochrome sensor gives ~1): these frames look like a raw colour (Bayer) "
             "mosaic without a BAYERPAT keyword; if so, set `bayer: RGGB` (the camera's pattern) for "
             "this instrument in the config to measure them on 2x2 superpixels"}
        log.warning("%s: %s", name, w["message"])
        warnings.append(w)


def mosaic_evidence(ref) -> float | None:
    """Median over the reference's bright stars of their light on the brightest 2x2 sub-lattice
    over that on the faintest (None with too few stars)."""
    from ..algorithms.bayer import lattice_fractions

    s = ref.sources
    if ref.data is None or s is None or len(s) < MOSAIC_MIN_STARS:
        return None
    keep = ~np.asarray(s.saturated, bool)
    xy = s.coords[keep][:50]
    sky = float(ref.bkg) if ref.bkg is not None and np.isfinite(ref.bkg) else float(np.nanmedian(ref.data))
    f = lattice_fractions(ref.data, xy, sky)
    f = f[np.all(np.isfinite(f), axis=1) & np.all(f > 0, axis=1)]
    if len(f) < MOSAIC_MIN_STARS:
        return None
    mean = np.median(f, axis=0)  # the pattern is the same for every star: average first
    return float(mean.max() / mean.min())
