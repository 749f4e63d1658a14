"""FITSImage: read one FITS frame into an :class:`~reduce.model.image.Image` (float32 pixels + metadata).

Handles integer data with or without BZERO (uint16 cameras, signed 12-bit ones), data in an
extension HDU, Rice-compressed ``.fits.fz`` and gzipped files. Metadata (mid-exposure JD UTC,
exposure, filter, gain, ...) come from :func:`reduce.index.headers.describe` through the instrument
configuration, so the loader and the index agree. Failures raise
:class:`~reduce.model.errors.Unreadable`, which a Sequence turns into an UNREADABLE flag.
"""
from __future__ import annotations

import os
import warnings

from ..model.errors import Unreadable
from ..model.image import Image
from .fits import read_image

__all__ = ["FITSImage", "celestial_wcs"]


def celestial_wcs(header):
    """An astropy WCS when the header holds a celestial one (RA/DEC axes), else None."""
    ctype1 = str(header.get("CTYPE1", ""))
    if not ctype1 or not any(t in ctype1.upper() for t in ("RA", "DEC", "GLON", "ELON")):
        return None
    from astropy.wcs import WCS

    header = header.to_astropy() if hasattr(header, "to_astropy") else header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header)
    except Exception:  # a broken WCS is treated as no WCS, never as a failure to read pixels
        return None
    return wcs if wcs.has_celestial else None


def FITSImage(path, config=None) -> Image:
    """Load ``path`` into an Image: float32 data, header, metadata, WCS (when present).

    Parameters
    ----------
    path : str or path-like
        A FITS file (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``, or a tile-compressed
        ``.fz``).
    config : reduce.config.Config, optional
        Instrument definitions (keyword roles, gain, saturation, overscan...); built-ins when None.

    Raises
    ------
    Unreadable
        The file is missing, corrupt, truncated or holds no 2D image.
    """
    from ..index.headers import describe

    path = os.fspath(path)
    try:
        data, header, hdu, lookup = read_image(path)
    except Unreadable as exc:
        raise Unreadable(f"{path}: {exc}") from None
    except Exception as exc:  # astropy raises many kinds on corrupt or non-FITS files
        raise Unreadable(f"{path}: unreadable FITS: {exc}") from None
    config = config or _default_config()
    instrument = config.instrument_for(lookup)
    try:
        info = describe(lookup, path, instrument, hdu=hdu, shape=data.shape)
    except Exception as exc:
        raise Unreadable(f"{path}: unusable header: {exc}") from None
    return Image(data=data, header=header, path=path, jd=info.jd, exposure=info.exptime,
                 filter=info.filter or None, airmass=info.airmass, gain=info.gain,
                 read_noise=info.read_noise, saturation=info.saturation,
                 telescope=info.telescope or None, target=info.target or None, ra=info.ra,
                 dec=info.dec, type=info.type, instrument=instrument,
                 wcs=celestial_wcs(header) if _celestial(lookup) else None)


def _celestial(header) -> bool:
    """True when CTYPE1 names a celestial axis (only then is a WCS built)."""
    ctype1 = str(header.get("CTYPE1", "") or "").upper()
    return any(t in ctype1 for t in ("RA", "DEC", "GLON", "ELON"))


_CONFIG = None


def _default_config():
    """The built-in configuration, built once per process."""
    global _CONFIG
    if _CONFIG is None:
        from ..config import Config

        _CONFIG = Config()
    return _CONFIG
