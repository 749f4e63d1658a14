"""Fluxes: the photometry of a night (apertures x stars x frames) and what is derived from it.

Constructed by the ``GetFluxes`` block (or by hand); differential photometry, binning, plots and
tables are methods (see ``reduce.diffphot`` for the weighting maths).
"""
from __future__ import annotations

import numpy as np

__all__ = ["Fluxes"]


class Fluxes:
    """Raw or differential fluxes.

    Parameters
    ----------
    time : (n_frames,) JD UTC at mid-exposure.
    flux, error : (n_apertures, n_stars, n_frames) background-subtracted flux and 1-sigma error (ADU).
    apertures : (n_apertures,) or (n_apertures, n_frames) aperture radii in pixels.
    target : index of the target star.
    data : per-frame arrays keyed by name (``fwhm``, ``sky``, ``airmass``, ``dx``, ``dy``,
        ``exposure``) and per-star-per-frame arrays of shape (n_stars, n_frames) (``x``, ``y``,
        ``peak``, ``bkg``).
    flags : (n_frames,) int bit masks (see ``reduce.core.errors.Flag``).
    files : (n_frames,) source file names.
    meta : free metadata (comparison stars, weights, chosen aperture, ...).
    """

    def __init__(self, time, flux, error=None, apertures=None, target: int = 0, data=None,
                 flags=None, files=None, meta=None):
        self.time = np.asarray(time, dtype=float)
        flux = np.asarray(flux, dtype=float)
        if flux.ndim == 1:
            flux = flux[None, None, :]
        elif flux.ndim == 2:
            flux = flux[None, :, :]
        if flux.ndim != 3 or flux.shape[-1] != self.time.size:
            raise ValueError(f"flux must have shape (n_apertures, n_stars, n_frames={self.time.size}), "
                             f"got {flux.shape}")
        self.flux = flux
        self.error = (np.full_like(flux, np.nan) if error is None
                      else np.asarray(error, dtype=float).reshape(flux.shape))
        self.apertures = (np.arange(flux.shape[0], dtype=float) if apertures is None
                          else np.asarray(apertures, dtype=float))
        self.target = int(target)
        self.data = {k: np.asarray(v) for k, v in (data or {}).items()}
        self.flags = (np.zeros(self.time.size, dtype=np.int64) if flags is None
                      else np.asarray(flags, dtype=np.int64).reshape(self.time.size))
        self.files = (np.array([""] * self.time.size, dtype=object) if files is None
                      else np.asarray(files, dtype=object))
        self.meta = dict(meta or {})

    @property
    def shape(self):
        """(n_apertures, n_stars, n_frames)."""
        return self.flux.shape

    def __len__(self) -> int:
        return self.time.size

    def __getattr__(self, name):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"'Fluxes' has no attribute {name!r}")
