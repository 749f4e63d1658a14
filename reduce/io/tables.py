"""Light-curve tables on disk: CSV for everyone, FITS for the full record; safe output names.

The FITS file holds an empty primary HDU, the light curve as extension 1 (``LIGHTCURVE``, with
``REDUCE_SCHEMA`` and per-column units and descriptions) and any extra HDUs (e.g. the raw fluxes
cube and the comparison weights). Both files are written atomically and carry no clock value, so
equal tables give byte-identical files.
"""
from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

from .atomic import OutputError, atomic_write_bytes, atomic_write_text

__all__ = ["write_lightcurve", "safe_stem", "product_path", "LIGHTCURVE_SCHEMA", "LIGHTCURVE_COLUMNS"]

LIGHTCURVE_SCHEMA = 1

# name -> (unit, description); the README documents the same list.
LIGHTCURVE_COLUMNS = {
    "time": ("d", "JD (UTC) at mid-exposure"),
    "bjd_tdb": ("d", "BJD (TDB) at mid-exposure"),
    "flux": ("", "normalised differential flux of the target (chosen aperture)"),
    "flux_err": ("", "1-sigma error of flux (propagated)"),
    "airmass": ("", "airmass at mid-exposure"),
    "fwhm": ("pix", "PSF full width at half maximum"),
    "sky": ("adu / pix", "sky background per pixel at the target"),
    "dx": ("pix", "x shift of the frame relative to the reference"),
    "dy": ("pix", "y shift of the frame relative to the reference"),
    "x": ("pix", "target centroid x (0-based pixels)"),
    "y": ("pix", "target centroid y (0-based pixels)"),
    "flag": ("", "quality bit mask (0 = good; see the README)"),
    "file": ("", "source frame file name"),
}


def _prepared(table):
    """A copy with documented units/descriptions filled in and object columns as strings."""
    from astropy.table import Table

    t = Table(table, copy=True)
    for name in t.colnames:
        col = t[name]
        unit, description = LIGHTCURVE_COLUMNS.get(name, (None, None))
        if col.unit is None and unit:
            col.unit = unit
        if not col.description and description:
            col.description = description
        if col.dtype.kind == "O":
            t[name] = col.astype(str)
            t[name].description, t[name].unit = col.description, col.unit
    return t


def _csv_text(t) -> str:
    buf = io.StringIO()
    t.write(buf, format="ascii.csv", overwrite=True)
    return buf.getvalue().replace("\r\n", "\n")


def _table_hdu(t, name: str):
    """A BinTableHDU named ``name`` with units, ``TCOMMn`` descriptions and scalar meta."""
    from astropy.io import fits

    meta = dict(t.meta)
    t = t.copy(copy_data=False)
    t.meta.clear()
    hdu = fits.table_to_hdu(t)
    hdu.name = name
    for i, col in enumerate(t.itercols(), start=1):
        if col.description:
            hdu.header[f"TCOMM{i}"] = str(col.description)[:68]
    for key, value in meta.items():
        if isinstance(value, (str, int, float, bool)):
            k = str(key).upper()
            try:
                hdu.header[k if len(k) <= 8 and k.isidentifier() else f"HIERARCH {k}"] = value
            except ValueError:  # too long for one card: provenance keeps it
                pass
    return hdu


def _extra_hdus(extra) -> list:
    """HDUs from ``{name: ndarray | Table | HDU}`` or an iterable of HDUs."""
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    if extra is None:
        return []
    items = extra.items() if isinstance(extra, dict) else ((None, h) for h in extra)
    hdus = []
    for name, value in items:
        if isinstance(value, (fits.ImageHDU, fits.BinTableHDU)):
            hdu = value
        elif isinstance(value, Table):
            hdu = _table_hdu(_prepared(value), str(name).upper())
        elif isinstance(value, np.ndarray):
            hdu = fits.ImageHDU(np.ascontiguousarray(value), name=str(name).upper())
        else:
            raise TypeError(f"extra HDU {name!r} must be an array, a Table or an HDU, not {type(value).__name__}")
        if name is not None:
            hdu.name = str(name).upper()
        hdus.append(hdu)
    return hdus


def _fits_bytes(t, extra) -> bytes:
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "reduce"
    primary.header["HIERARCH REDUCE_SCHEMA"] = (LIGHTCURVE_SCHEMA, "light-curve schema version")
    lc = _table_hdu(t, "LIGHTCURVE")
    lc.header["HIERARCH REDUCE_SCHEMA"] = (LIGHTCURVE_SCHEMA, "light-curve table schema version")
    buf = io.BytesIO()
    fits.HDUList([primary, lc, *_extra_hdus(extra)]).writeto(buf, output_verify="exception")
    return buf.getvalue()


def write_lightcurve(table, stem, *, extra_hdus=None, csv: bool = True, fits: bool = True) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.fits`` atomically; returns the paths written.

    ``table`` is an astropy Table (columns listed in :data:`LIGHTCURVE_COLUMNS` get their units and
    descriptions when they have none). ``extra_hdus`` adds FITS extensions after the light curve:
    ``{"FLUXES": cube (n_apertures, n_stars, n_frames), "WEIGHTS": Table, ...}``. Both files are
    built in memory first, so a failure leaves neither half-written.
    """
    stem = Path(stem)
    t = _prepared(table)
    payloads = []
    if csv:
        payloads.append((Path(f"{stem}.csv"), _csv_text(t)))
    if fits:
        payloads.append((Path(f"{stem}.fits"), _fits_bytes(t, extra_hdus)))
    written = []
    for path, data in payloads:
        writer = atomic_write_text if isinstance(data, str) else atomic_write_bytes
        written.append(writer(path, data))
    return written


_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def _part(value, max_length: int = 64) -> str:
    """One name component: ASCII letters, digits, ``. + -``; others become ``_``; no leading dots."""
    if value is None:
        return "unknown"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"_{2,}", "_", text)
    text = text.strip("._-+")[:max_length].strip("._-+")
    return text or "unknown"


def safe_stem(date, telescope, target, filter) -> str:
    """``<date>_<telescope>_<target>_<filter>`` made safe as a single file name.

    Separators, spaces and other characters become ``_`` (``HAT-P-32/b`` -> ``HAT-P-32_b``,
    ``KIC 8462852`` -> ``KIC_8462852``), ``..`` cannot survive and no part starts with a dot, so the
    name never leaves the output folder or hides itself.
    """
    return "_".join(_part(v) for v in (date, telescope, target, filter))


def product_path(outdir, stem: str, suffix: str) -> Path:
    """``outdir/<stem><suffix>``, checked to be directly inside ``outdir``."""
    outdir = Path(outdir)
    path = outdir / f"{stem}{suffix}"
    if path.resolve().parent != outdir.resolve() or Path(stem).name != stem:
        raise OutputError(f"refusing to write {path}: outside the output folder {outdir}")
    return path
