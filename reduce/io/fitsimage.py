"""FITSImage: read one FITS frame into an :class:`~reduce.image.Image` (float32 pixels + metadata).

Handles integer data with or without BZERO (uint16 cameras, signed 12-bit ones), data in an
extension HDU, Rice-compressed ``.fits.fz`` and gzipped files. Metadata (mid-exposure JD UTC,
exposure, filter, gain, ...) come from :func:`reduce.index.headers.describe` through the instrument
configuration, so the loader and the index agree. Failures raise
:class:`~reduce.core.errors.Unreadable`, which a Sequence turns into an UNREADABLE flag.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..core.errors import Unreadable
from ..image import Image

__all__ = ["FITSImage", "read_pixels", "celestial_wcs"]


def _image_hdu(hdul):
    """(index, hdu) of the first HDU holding image data of at least 2 dimensions."""
    for i, hdu in enumerate(hdul):
        if not getattr(hdu, "is_image", False):
            continue
        naxis = hdu.header.get("ZNAXIS", hdu.header.get("NAXIS", 0))
        if naxis and naxis >= 2:
            return i, hdu
    raise Unreadable("no image data (header only)")


def read_pixels(path) -> tuple[np.ndarray, Any, int]:
    """(data as a float32 2D array, header, hdu index) of the first image HDU of ``path``.

    Integer data are scaled by BSCALE/BZERO (astropy) before the float32 conversion, so a
    uint16 frame stored as int16 + BZERO 32768 reads back 0..65535.
    """
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(os.fspath(path), memmap=False) as hdul:
            index, hdu = _image_hdu(hdul)
            data = hdu.data
            header = hdu.header.copy()
    if data is None:
        raise Unreadable("no image data (header only)")
    data = np.asarray(data)
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise Unreadable(f"not a 2D image (shape {data.shape})")
    out = data if data.dtype == np.dtype(np.float32) else data.astype(np.float32)  # native order
    return out, header, index


def celestial_wcs(header):
    """An astropy WCS when the header holds a celestial one (RA/DEC axes), else None."""
    ctype1 = str(header.get("CTYPE1", ""))
    if not ctype1 or not any(t in ctype1.upper() for t in ("RA", "DEC", "GLON", "ELON")):
        return None
    from astropy.wcs import WCS

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
    from ..config import Config
    from ..index.headers import describe

    path = os.fspath(path)
    try:
        data, header, hdu = read_pixels(path)
    except Unreadable as exc:
        raise Unreadable(f"{path}: {exc}") from None
    except Exception as exc:  # astropy raises many kinds on corrupt or non-FITS files
        raise Unreadable(f"{path}: unreadable FITS: {exc}") from None
    config = config or Config()
    instrument = config.instrument_for(header)
    try:
        info = describe(header, path, instrument, hdu=hdu, shape=data.shape)
    except Exception as exc:
        raise Unreadable(f"{path}: unusable header: {exc}") from None
    return Image(data=data, header=header, path=path, jd=info.jd, exposure=info.exptime,
                 filter=info.filter or None, airmass=info.airmass, gain=info.gain,
                 read_noise=info.read_noise, saturation=info.saturation,
                 telescope=info.telescope or None, target=info.target or None, ra=info.ra,
                 dec=info.dec, type=info.type, instrument=instrument, wcs=celestial_wcs(header))
