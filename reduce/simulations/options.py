"""Checks of the simulator's options (clear errors) and preparation of the destination folder."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .conventions import DTYPES, MIN_SIZE
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
    _check_int("size", size, MIN_SIZE)
    if size > 8192:
        raise ValueError(f"size must be at most 8192 px (got {size})")
    _check_int("n_stars", n_stars, 4)
    if n_stars > size * size // 400:
        raise ValueError(f"n_stars={n_stars} is too many for {size}x{size} px (at most "
                         f"{size * size // 400}: one star per 20x20 px)")
    if isinstance(shift, bool) or not isinstance(shift, (int, float, np.number)) or \
            not math.isfinite(shift) or shift < 0:
        raise ValueError(f"shift must be a number of pixels >= 0 (got {shift!r})")
    if size - 2 * 18 - shift < size / 4:
        raise ValueError(f"shift={shift:g} px is too large for {size}x{size} px frames (at most "
                         f"{0.75 * size - 36:g} px keeps the stars in the frame)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    for name, v in (("n_bias", n_bias), ("n_darks", n_darks), ("n_flats", n_flats)):
        _check_int(name, v, 0)
    for v in dark_exptimes:
        _check_positive("dark exposure time", v)


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
