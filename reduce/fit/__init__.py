"""From a light curve to a result: transit fits (batman + emcee) and times of minimum (Kwee-van
Woerden), written beside the product. ``reduce fit`` is the command; these are its functions."""
from __future__ import annotations

from pathlib import Path

from ..model.errors import ReduceError
from .minimum import Minimum, time_of_minimum
from .planet import EXAMPLE, Planet, load_planet
from .product import LightCurve, read_product

__all__ = ["fit_product", "minimum_of_product", "load_planet", "read_product", "Planet", "LightCurve",
           "Minimum", "EXAMPLE", "require_fit_packages"]


def require_fit_packages() -> None:
    """batman and emcee are the fit's own dependencies (the ``fit`` extra): a clear error without."""
    missing = []
    for module, package in (("batman", "batman-package"), ("emcee", "emcee")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ReduceError(f"transit fits need {' and '.join(missing)}: pip install 'reduce[fit]' "
                          f"(or pip install {' '.join(missing)})")


def fit_product(product, planet, outdir=None, *, max_steps: int = 20000, seed: int | None = 1,
                show_progress: bool = False, aavso: bool = True):
    """Fit the transit of a light-curve product with a planet file (path or :class:`Planet`);
    writes ``<stem>_fit.json``, ``.png`` and the AAVSO report into ``outdir`` (default: beside
    the product). Returns (TransitFit, written paths)."""
    require_fit_packages()
    from .report import write_transit
    from .transit import fit_transit

    lc = read_product(product)
    planet = planet if isinstance(planet, Planet) else load_planet(planet)
    fit = fit_transit(lc, planet, max_steps=max_steps, seed=seed, show_progress=show_progress)
    out = Path(outdir) if outdir is not None else lc.path.parent
    return fit, write_transit(fit, lc, planet, out, aavso=aavso)


def minimum_of_product(product, outdir=None):
    """The time of minimum of a product's light curve; writes ``<stem>_fit.json`` and ``.png``.
    Returns (Minimum, written paths)."""
    from .report import write_minimum

    lc = read_product(product)
    result = time_of_minimum(lc)
    out = Path(outdir) if outdir is not None else lc.path.parent
    return result, write_minimum(result, lc, out)
