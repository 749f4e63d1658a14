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

__all__ = ["with_bayer_block", "note_colour", "cfa_record", "mosaic_evidence", "balance_colour",
           "with_phase_correction"]

log = logging.getLogger("reduce.run")

#: a star's light on the brightest of the four 2x2 sub-lattices over that on the faintest, median
#: over the stars, above which frames look like a colour mosaic: ~1.0-1.1 on a monochrome sensor
#: (undersampled stars average out over many stars), 1.5-4 behind R, G and B filters
MOSAIC_RATIO = 1.35
MOSAIC_MIN_STARS = 8

#: superpixels reweigh red and blue pixels (BayerBin's balance) when the stars' flux moves with
#: their place in the 2x2 cell by more than this fraction of their noise: above it the movement
#: costs more than the ~4 % of signal-to-noise that reweighting costs (0.3^2 = 9 % in variance)
BALANCE_WHEN = 0.3


def with_bayer_block(blocks: list, n_calibration: int) -> list:
    """``blocks`` (the reference chain) with a BayerBin after the calibration section's blocks
    (Calibration, Trim), unless the recipe already has one."""
    from ..blocks.bayer import BayerBin

    if any(isinstance(b, BayerBin) for b in blocks):
        return blocks
    return [*blocks[:n_calibration], BayerBin(), *blocks[n_calibration:]]


def balance_colour(blocks: list, ref, loader, name: str = ""):
    """The reference measured again with the BayerBin of ``blocks`` weighing red and blue pixels
    to the green ones' response to starlight, when its stars are undersampled enough to need it
    (:func:`~reduce.algorithms.bayer.channel_balance` on its calibrated mosaic); else ``ref``."""
    from ..blocks.bayer import BayerBin
    from .reference import _prepare

    info = ref.computed.get("cfa")
    block = next((b for b in blocks if isinstance(b, BayerBin)), None)
    if not info or info["mode"] != "superpixel" or block is None or not block.auto_balance:
        return ref
    found = _measure_balance(blocks[:blocks.index(block)], ref, loader)
    if found is None or not _needs_balance(found, name):
        return ref
    block.balance = {c: found[c] for c in "RGB"}
    again = _prepare(blocks, ref.path, loader)
    if again is None:
        block.balance = None
        return ref
    return again


def with_phase_correction(phot: list, blocks: list, ref, loader, name: str = "") -> list:
    """``phot`` with a CFAPhaseCorrection at its end, given each measured star's colour on the
    reference's mosaic, when the reference is a colour frame (else ``phot`` as it is)."""
    from ..algorithms.bayer import red_weights
    from ..blocks.bayer import BayerBin, CFAPhaseCorrection

    info = ref.computed.get("cfa")
    block = next((b for b in blocks if isinstance(b, BayerBin)), None)
    placed = next((b for b in phot if isinstance(b, CFAPhaseCorrection)), None)  # by the recipe
    if not info or block is None:
        return phot
    found = _measure_balance(blocks[:blocks.index(block)], ref, loader, every_star=True)
    if found is None:
        return phot
    colours = np.asarray(found["colours"], float)
    bad = ~np.all(np.isfinite(colours) & (colours > 0.05) & (colours < 20), axis=1)
    colours[bad] = np.nanmedian(colours[~bad], axis=0) if (~bad).any() else 1.0
    corr = placed or CFAPhaseCorrection()
    k = info["pattern"].index("R")
    corr.colours, corr.red = colours, (info["start"][0] + k % 2, info["start"][1] + k // 2)
    corr.weights = red_weights(info["pattern"], info["mode"], block.balance)
    corr.eps = found["eps"]
    moves = _phase_rms(corr)
    log.info("%s: colour sensor: each star's flux is corrected for its place in the 2x2 cell and its "
             "colour (it moves by %.2f %% (median), %.2f %% noise)", name, 100 * moves, 100 * found["noise"])
    return phot if placed is not None else [*phot, corr]


def _phase_rms(corr) -> float:
    """Median over the stars of the relative RMS of their flux over places in the 2x2 cell, as
    :class:`CFAPhaseCorrection` predicts it with the reference's split of the light."""
    from ..algorithms.bayer import phase_modulation

    t = (np.arange(8) + 0.5) / 4  # two cells' worth of positions, in file pixels
    gx, gy = (v.ravel() + r for v, r in zip(np.meshgrid(t, t), corr.red))
    rms = [np.std(phase_modulation(gx, gy, np.repeat(c[None], gx.size, 0), corr.weights, corr.eps, corr.red))
           for c in corr.colours]
    return float(np.median(rms))


def _measure_balance(before: list, ref, loader, every_star: bool = False) -> dict | None:
    """:func:`channel_balance` of the reference's unsaturated stars (``every_star``: of all its
    measured stars, for their colours) on its mosaic as calibrated by the ``before`` blocks (those
    ahead of BayerBin); None when it cannot be measured."""
    from ..algorithms.bayer import channel_balance
    from ..blocks.bayer import grid_to_file
    from ..core.sequence import run_frame

    mosaic = run_frame(before, ref.path, loader)
    if mosaic.flags or mosaic.data is None:
        return None
    s, info = ref.sources, ref.computed["cfa"]
    keep = np.arange(len(s)) if every_star else np.flatnonzero(~np.asarray(s.saturated, bool))[:50]
    x0, _, y0, _ = mosaic.computed.get("trim", (0, None, 0, None))
    fx, fy = grid_to_file(ref, s.x[keep], s.y[keep])
    sx, sy = info["start"]
    gain = ref.gain if ref.gain is not None and np.isfinite(ref.gain) and ref.gain > 0 else 1.0
    found = channel_balance(mosaic.data, np.column_stack([fx - x0, fy - y0]), info["pattern"],
                            sx - x0, sy - y0, gain=float(gain))
    if found is None or not all(np.isfinite(found[c]) and 0.2 < found[c] < 5 for c in "RGB"):
        return None
    return found


def _needs_balance(found: dict, name: str) -> bool:
    """Whether the stars' flux moves with their place in the cell by more than ``BALANCE_WHEN``
    of their noise (logged either way)."""
    if found["modulation"] > BALANCE_WHEN * found["noise"]:
        return True
    log.info("%s: colour sensor: the stars are sampled well enough for a plain superpixel sum "
             "(their flux moves by %.2f %% with their place in the 2x2 cell, %.2f %% noise): red "
             "and blue pixels are not reweighted", name, 100 * found["modulation"], 100 * found["noise"])
    return False


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
        if info.get("balance"):
            b = info["balance"]
            what += (f", red pixels x{b['R']:.3f} and blue x{b['B']:.3f} so each carries a green "
                     "pixel's share of a star's light (undersampled stars; measured on the reference's stars)")
        log.info("%s: colour sensor (pattern %s at file pixel 0,0, from %s): measured on %s, after "
                 "calibration on the raw mosaic; positions are given in file pixels", name,
                 info["pattern"], info["source"], what)
        return
    if getattr(ref.instrument, "bayer", None) == "none":
        return  # the configuration says monochrome
    found = mosaic_evidence(ref)
    if found is not None and found[0] > MOSAIC_RATIO:
        ratio, guess = found
        w = {"code": "looks_like_colour_sensor", "frames": 0, "message":
             f"the stars put {ratio:.2f}x more light on one of the four 2x2 pixel sub-lattices than on "
             "another (a monochrome sensor gives ~1): these frames look like a raw colour (Bayer) "
             "mosaic without a BAYERPAT keyword; if so, set `bayer:` to the camera's pattern for this "
             f"instrument in the config (the greens sit as in {guess}) to measure them on 2x2 "
             "superpixels, or `bayer: none` to keep measuring them as monochrome"}
        log.warning("%s: %s", name, w["message"])
        warnings.append(w)


def mosaic_evidence(ref) -> tuple[float, str] | None:
    """(median over the reference's bright stars of their light on the brightest 2x2 sub-lattice
    over that on the faintest, the patterns whose greens sit on the brighter diagonal), or None
    with too few stars."""
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
    x0, _, y0, _ = ref.computed.get("trim", (0, None, 0, None))
    diagonal = mean[0] + mean[3] > mean[1] + mean[2]  # greens at (0, 0) and (1, 1) of the grid
    diagonal ^= bool((int(x0) + int(y0)) % 2)          # ... of the file
    return float(mean.max() / mean.min()), ("GRBG or GBRG" if diagonal else "RGGB or BGGR")
