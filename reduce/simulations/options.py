"""Checks of the simulator's options (clear errors) and preparation of the destination folder."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .conventions import BAYER_PATTERNS, DTYPES, MIN_SIZE, PSFS
from .truth import load_truth


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number (got {value!r})")


def _validate(*, seed, size, n_stars, shift, dtype, n_bias, n_darks, n_flats, dark_exptimes):
    """Clear errors for options that cannot make a sensible night."""
    _check_int("seed", seed, 0)
    nx, ny = _check_size(size)
    _check_int("n_stars", n_stars, 3)
    if n_stars > nx * ny // 100:
        raise ValueError(f"n_stars={n_stars} is too many for {nx}x{ny} px (at most "
                         f"{nx * ny // 100}: one star per 10x10 px)")
    _check_non_negative("shift", shift)
    small = min(nx, ny)
    if small - 2 * 18 - shift < small / 4:
        raise ValueError(f"shift={shift:g} px is too large for {nx}x{ny} px frames (at most "
                         f"{0.75 * small - 36:g} px keeps the stars in the frame)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    for name, v in (("n_bias", n_bias), ("n_darks", n_darks), ("n_flats", n_flats)):
        _check_int(name, v, 0)
    for v in dark_exptimes:
        _check_positive("dark exposure time", v)


def _check_size(size) -> tuple:
    """(width, height) of ``size``: an integer (square) or a (width, height) pair, each >= MIN_SIZE."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be one number or (width, height) (got {size!r})")
        names = ("size width", "size height")
    else:
        size, names = (size, size), ("size", "size")
    for name, v in zip(names, size):
        _check_int(name, v, MIN_SIZE)
        if v > 8192:
            raise ValueError(f"size must be at most 8192 px (got {v})")
    return int(size[0]), int(size[1])


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of pixels >= 0 (got {value!r})")


def _validate_conditions(*, size, fwhm, jitter, jump, rotation, twilight, dead_columns,
                         saturated_neighbour):
    """Clear errors for the hostile conditions (issue 9) that cannot make a sensible night."""
    nx, _ = _check_size(size)
    if fwhm is not None:
        _check_positive("fwhm", fwhm)
        if not 0.8 <= fwhm <= 25:
            raise ValueError(f"fwhm must be between 0.8 and 25 px (got {fwhm:g})")
    for name, v in (("jitter", jitter), ("jump", jump), ("saturated_neighbour", saturated_neighbour)):
        _check_non_negative(name, v)
    if isinstance(rotation, bool) or not isinstance(rotation, (int, float, np.number)) or \
            not math.isfinite(rotation) or abs(rotation) > 20:
        raise ValueError(f"rotation must be a number of degrees within +-20 (got {rotation!r})")
    if isinstance(twilight, bool) or not isinstance(twilight, (int, float, np.number)) or \
            not math.isfinite(twilight) or twilight < 0:
        raise ValueError(f"twilight must be a number of minutes >= 0 (got {twilight!r})")
    _check_int("dead_columns", dead_columns, 0)
    if 4 * dead_columns >= nx:
        raise ValueError(f"dead_columns={dead_columns} leaves too little of a {nx} px wide frame "
                         f"(at most {(nx - 1) // 4} at each end)")
    if 0 < saturated_neighbour < 3:
        raise ValueError(f"saturated_neighbour must be 0 (none) or at least 3 px (got {saturated_neighbour:g})")


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False (got {value!r})")


def _validate_camera(*, calibration, uncalibrated, hot_pixels, cosmic_rays):
    """Clear errors for issue 18's camera conditions (uncalibrated lights, hot pixels, hits)."""
    _check_flag("uncalibrated", uncalibrated)
    if uncalibrated and not calibration:
        raise ValueError("uncalibrated=True keeps the camera signature (bias, dark, hot pixels) in "
                         "the lights and writes no calibration frames; calibration=False removes "
                         "the signature too: pass one or the other")
    if isinstance(hot_pixels, bool) or not isinstance(hot_pixels, (int, float, np.number)) or \
            not math.isfinite(hot_pixels) or not 0 <= hot_pixels <= 0.01:
        raise ValueError(f"hot_pixels must be the fraction of hot pixels, from 0 (the camera's "
                         f"own few) to 0.01 (got {hot_pixels!r}); e.g. 1e-3")
    _check_int("cosmic_rays", cosmic_rays, 0)
    if cosmic_rays > 10000:
        raise ValueError(f"cosmic_rays must be at most 10000 hits per light frame (got {cosmic_rays})")


def _validate_psf(*, psf, obstruction, fwhm):
    """Clear errors for option ``psf`` ('moffat' or 'doughnut') and its ``obstruction``."""
    if psf not in PSFS:
        raise ValueError(f"psf must be one of {', '.join(PSFS)} (got {psf!r})")
    if isinstance(obstruction, bool) or not isinstance(obstruction, (int, float, np.number)) or \
            not 0.2 <= obstruction <= 0.6:
        raise ValueError(f"obstruction must be the central obstruction's fraction of the pupil "
                         f"diameter, 0.2 to 0.6 (got {obstruction!r})")
    if psf == "moffat" and obstruction != 0.4:
        raise ValueError("obstruction applies to psf='doughnut' only")
    if psf == "doughnut" and fwhm is not None and fwhm < 8:
        raise ValueError(f"with psf='doughnut', fwhm is the ring's outer diameter: at least 8 px "
                         f"for a dark centre through 2.5-3 px seeing (got {fwhm:g})")


def _validate_sky_and_colour(*, clouds, bayer):
    """Clear errors for options ``clouds`` (a number of passing clouds) and ``bayer`` (a pattern)."""
    _check_int("clouds", clouds, 0)
    if clouds > 20:
        raise ValueError(f"clouds must be at most 20 passing clouds (got {clouds})")
    if bayer is not None and bayer not in BAYER_PATTERNS:
        raise ValueError(f"bayer must be None (a mono sensor) or one of {', '.join(BAYER_PATTERNS)} "
                         f"(got {bayer!r})")


def _prepare_destination(dest: Path, overwrite: bool) -> Path:
    """Make the folder; a non-empty one needs ``overwrite`` (previous simulation files go)."""
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dest} is not empty; choose a new folder or overwrite it")
        _remove_previous(dest)
    for sub in ("light", "calibration"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    return dest


def _remove_previous(dest: Path) -> None:
    """Delete the files a previous simulation listed in DEST/truth.json (and nothing else)."""
    try:
        old = load_truth(dest)
        names = list(old["frames"]["file"]) + [f for v in old["calibration"].values() for f in v]
    except (OSError, ValueError, KeyError, TypeError):
        return
    root = dest.resolve()
    for name in names + ["truth.json"]:
        path = (dest / str(name)).resolve()
        if root in path.parents and path.is_file():
            path.unlink()
