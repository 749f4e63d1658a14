"""Write small FITS files with chosen header cards, for the index and scan tests."""
from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def write_fits(path, cards: dict | None = None, *, raw: tuple[str, ...] = (), shape=(8, 10),
               dtype=np.uint16, where: str = "primary", mtime_ns: int | None = None) -> Path:
    """Write a FITS image with ``cards`` (and raw 80-char cards) at ``path``; returns the path.

    ``where``: 'primary', 'extension' (empty primary + IMAGE extension) or 'compressed'
    (empty primary + Rice CompImageHDU). A ``.gz`` suffix gzips the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = fits.Header()
    for k, v in (cards or {}).items():
        header[k] = v
    for card in raw:
        header.append(fits.Card.fromstring(card.ljust(80)))
    data = (np.arange(shape[0] * shape[1]) % 50 + 100).reshape(shape).astype(dtype)
    if where == "primary":
        hdul = fits.HDUList([fits.PrimaryHDU(data, header)])
    elif where == "extension":
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header)])
    elif where == "compressed":
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header, compression_type="RICE_1")])
    else:
        raise ValueError(where)
    buf = io.BytesIO()
    hdul.writeto(buf)
    payload = buf.getvalue()
    if path.suffix.lower() == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def light(i: int = 0, **cards) -> dict:
    """Header cards of an ordinary light frame ``i`` minutes after 2021-03-04T02:00 UTC."""
    base = {"IMAGETYP": "Light Frame", "EXPTIME": 30.0, "FILTER": "V", "OBJECT": "WASP-12",
            "TELESCOP": "T1m", "DATE-OBS": f"2021-03-04T02:{i % 60:02d}:00.000"}
    base.update(cards)
    return {k: v for k, v in base.items() if v is not None}
