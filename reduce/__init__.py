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
    "Image": "reduce.image",
    "Sequence": "reduce.core.sequence",
    "Block": "reduce.core.block",
    "Fluxes": "reduce.lightcurve.fluxes",
    "simulate_observation": "reduce.simulations",
    "load_config": "reduce.config",
}
_SUBMODULES = {"blocks", "simulations", "config"}

__all__ = sorted(_LAZY) + ["blocks", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"reduce.{name}")
    raise AttributeError(f"module 'reduce' has no attribute {name!r}")


def __dir__():
    return __all__
