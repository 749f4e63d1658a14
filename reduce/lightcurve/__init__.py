"""The light-curve layer: Fluxes, the differential maths and the one product writer.

- ``fluxes``: the Fluxes class (apertures x stars x frames, and every method on it);
- the maths, pure numpy: ``ensemble`` (usable frames, comparison stars, Broeg weights, division by
  the ensemble), ``aperture_choice`` (the least scattered aperture), ``binning``, ``clipping``
  (frames outlying in sky, FWHM, ...), ``stats`` (NaN-ignoring medians, point-to-point scatter);
- the product: ``tables`` (the light-curve table, written as CSV, ECSV and FITS), ``schema``
  (columns and keywords), ``ecsv``, ``fitsproduct``; ``exports`` (AAVSO, EXOTIC text).
"""
from .fluxes import Fluxes

__all__ = ["Fluxes"]
