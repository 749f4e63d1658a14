"""reduce: photometry reduction for ground-based telescopes.

Public names are imported lazily so that ``import reduce`` (and ``reduce --help``) stay fast and
free of side effects: no I/O, no logging configuration, no network.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "FitsManager": "reduce.index.manager",
    "FITSImage": "reduce.io.fitsimage",
    "Image": "reduce.model.image",
    "Sequence": "reduce.core.sequence",
    "Block": "reduce.core.block",
    "Fluxes": "reduce.lightcurve.fluxes",
    "simulate_observation": "reduce.simulations",
    "simulate_night": "reduce.simulations",
    "TargetSpec": "reduce.recipe.targets",          # a target: auto, star N, pixels or RA/Dec
    "target_from_string": "reduce.recipe.targets",  # "auto" | "N" | "X,Y" | "RA DEC", as --target
    "resolve_target": "reduce.run.target",          # the measured star of a reference frame
    "load_config": "reduce.config",
}
_SUBMODULES = {"blocks", "simulations", "config"}

__all__ = sorted(_LAZY) + ["blocks", "__version__"]


def _fits_image(path):
    """The default loader of a Sequence run on paths: the frame read by FITSImage."""
    from .io.fitsimage import FITSImage

    return FITSImage(path)


def _console_progress(description, total, show=True):
    """The default progress display of a Sequence run: the console's."""
    from .console import progress

    return progress(description, total, show=show)


def _wire() -> None:
    """Inject the FITS loader and the console's progress into the core, which imports neither
    (importing the core is light: the standard library and :mod:`reduce.model`)."""
    from .core.sequence import Sequence

    Sequence.default_loader = staticmethod(_fits_image)
    Sequence.default_progress = staticmethod(_console_progress)


_wire()


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"reduce.{name}")
    raise AttributeError(f"module 'reduce' has no attribute {name!r}")


def __dir__():
    return __all__
