"""The light-curve layer: Fluxes, the differential maths and the one product writer.

``fluxes`` (the Fluxes class), ``ensemble`` (usable frames, comparison stars, Broeg weights,
division by the ensemble), ``tables`` (the light-curve table and its CSV/ECSV/FITS files) and
``exports`` (AAVSO and EXOTIC text).
"""
from .fluxes import Fluxes

__all__ = ["Fluxes"]
