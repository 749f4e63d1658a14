"""The FITS file of the light-curve product, written and read back.

A primary HDU with the observation's metadata (OBJECT, TELESCOP, FILTER, DATE-OBS, site, target
RA/Dec, aperture, recipe, ...), the light curve as extension 1 (``LIGHTCURVE``: units, descriptions
and the FITS time keywords, so astropy reads ``time`` as JD UTC and ``bjd_tdb`` as BJD TDB),
``STARS`` (every measured star: reference position, RA/Dec, median flux, comparison flag and
weight) and the raw arrays (``FLUXES``/``ERRORS``: apertures x stars x frames, ``APERTURES``,
``WEIGHTS``) with BUNIT and axis names. LIGHTCURVE holds numbers only, with ``flag`` also as
``quality`` (lightkurve's name), so lightkurve's ``bin``/``flatten``/``fold`` work on it as read;
the frame file names are in ``FILES`` (one row per LIGHTCURVE row, percent-encoded: FITS strings
are ASCII). No clock value is written: equal inputs give byte-identical files.
"""
from __future__ import annotations

import io
from urllib.parse import quote, unquote

import numpy as np

from .schema import ARRAY_AXES, LIGHTCURVE_SCHEMA, PRIMARY_KEYWORDS

__all__ = ["fits_bytes", "read_fluxes", "encode_name", "decode_name"]

_FILE_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")


def encode_name(name) -> str:
    """A file name as printable ASCII for FITS: other characters (and ``%``) percent-encoded
    from UTF-8 (``é`` -> ``%C3%A9``); :func:`decode_name` (``urllib.parse.unquote``) reverses it."""
    return quote(str(name), safe=_FILE_SAFE)


def decode_name(text) -> str:
    """The UTF-8 file name of a percent-encoded FITS ``file`` value."""
    return unquote(str(text))


def _ascii(value: str) -> str:
    """A header string made printable ASCII (percent-encoding what is not)."""
    return encode_name(value)


def _header_value(value):
    if isinstance(value, str):
        return _ascii(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table_hdu(t, name: str):
    """A BinTableHDU named ``name`` with units, ``TCOMMn`` descriptions and scalar meta; text
    columns percent-encoded (FITS strings are ASCII)."""
    from astropy.io import fits

    meta = dict(t.meta)
    t = t.copy(copy_data=False)
    t.meta.clear()
    for colname in t.colnames:
        col = t[colname]
        if col.dtype.kind in "UO":
            unit, description = col.unit, col.description
            t[colname] = np.array([encode_name(v) for v in col], dtype=str)
            t[colname].unit, t[colname].description = unit, description
    hdu = fits.table_to_hdu(t)
    hdu.name = name
    for i, col in enumerate(t.itercols(), start=1):
        if col.description:
            hdu.header[f"TCOMM{i}"] = _ascii(str(col.description))[:68]
    for key, value in meta.items():
        if isinstance(value, (str, int, float, bool, np.generic)):
            k = str(key).upper()
            try:
                hdu.header[k if len(k) <= 8 and k.isidentifier() else f"HIERARCH {k}"] = _header_value(value)
            except ValueError:  # too long for one card: provenance keeps it
                pass
    return hdu


def _time_keywords(hdu, site=None) -> None:
    """FITS time-standard keywords: ``time`` is JD UTC (topocentric), ``bjd_tdb`` BJD TDB
    (barycentric); JDREF = 0 makes the stored values the Julian dates themselves."""
    names = [hdu.header.get(f"TTYPE{i}") for i in range(1, hdu.header["TFIELDS"] + 1)]
    h = hdu.header
    h["TIMESYS"] = ("UTC", "time scale of the time column")
    h["JDREF"] = (0.0, "[d] time columns are Julian dates")
    h["TIMEUNIT"] = ("d", "unit of the time columns")
    if site is not None and all(v is not None for v in site):
        lat, lon, elev = site
        h["TREFPOS"] = ("TOPOCENTER", "time column: observatory position")
        h["OBSGEO-B"], h["OBSGEO-L"], h["OBSGEO-H"] = float(lat), float(lon), float(elev)
    else:  # site unknown: the geocentre, within 21 ms of any observatory (as bjd_tdb assumes)
        h["TREFPOS"] = ("GEOCENTER", "observatory position unknown (<= 21 ms)")
    if "bjd_tdb" in names:
        i = names.index("bjd_tdb") + 1
        h[f"TCTYP{i}"] = ("TDB", "bjd_tdb time scale")
        h[f"TRPOS{i}"] = ("BARYCENTER", "bjd_tdb reference position")
        h[f"TCUNI{i}"] = ("d", "bjd_tdb unit")


def _image_hdu(name: str, value):
    from astropy.io import fits

    hdu = fits.ImageHDU(np.ascontiguousarray(value), name=name)
    unit, axes = ARRAY_AXES.get(name, (None, ()))
    if unit is not None:
        hdu.header["BUNIT"] = (unit, "data unit")
    for i, axis in enumerate(axes[:hdu.header.get("NAXIS", 0)], start=1):
        hdu.header[f"CNAME{i}"] = (axis, f"axis {i}")
    return hdu


def _extra_hdus(extra) -> list:
    """HDUs from ``{name: ndarray | Table | HDU}`` or an iterable of HDUs."""
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
            hdu = _table_hdu(value, str(name).upper())
        elif isinstance(value, np.ndarray):
            hdu = _image_hdu(str(name).upper(), value)
        else:
            raise TypeError(f"extra HDU {name!r} must be an array, a Table or an HDU, not {type(value).__name__}")
        if name is not None:
            hdu.name = str(name).upper()
        hdus.append(hdu)
    return hdus


def _primary(header: dict | None):
    from astropy.io import fits

    from .. import __version__

    primary = fits.PrimaryHDU()
    h = primary.header
    h["ORIGIN"] = "reduce"
    h["HIERARCH REDUCE_SCHEMA"] = (LIGHTCURVE_SCHEMA, "light-curve schema version")
    values = dict(header or {})
    values.setdefault("CREATOR", f"reduce {__version__}")
    for key, comment in PRIMARY_KEYWORDS.items():
        value = values.pop(key, None)
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            continue
        h[key] = (_header_value(value), comment)
    for key, value in values.items():  # anything else the caller gives
        if value is not None:
            h[key if len(key) <= 8 else f"HIERARCH {key}"] = _header_value(value)
    return primary


def _site(header: dict | None):
    header = header or {}
    return tuple(header.get(k) for k in ("OBSGEO-B", "OBSGEO-L", "OBSGEO-H"))


def _lightkurve_ready(t):
    """(LIGHTCURVE table, FILES table or None): text columns moved out (astropy's binning, used by
    lightkurve's ``bin``, averages every column: a string column raises), ``flag`` copied as
    ``quality`` right after it (lightkurve's quality column)."""
    from astropy.table import Table

    t = t.copy(copy_data=False)
    text = [c for c in t.colnames if t[c].dtype.kind in "USO"]
    files = Table({c: t[c] for c in text}) if text else None
    if text:
        t.remove_columns(text)
    if "flag" in t.colnames and "quality" not in t.colnames:
        t.add_column(np.asarray(t["flag"], np.int32), name="quality", index=t.colnames.index("flag") + 1)
        t["quality"].description = "= flag (lightkurve's quality column; 0 = good)"
    return t, files


def fits_bytes(t, extra, header=None) -> bytes:
    """The whole FITS file: primary header, LIGHTCURVE (table ``t``, numbers only), FILES (its
    text columns, when any) and the ``extra`` HDUs."""
    from astropy.io import fits

    t, files = _lightkurve_ready(t)
    lc = _table_hdu(t, "LIGHTCURVE")
    lc.header["HIERARCH REDUCE_SCHEMA"] = (LIGHTCURVE_SCHEMA, "light-curve table schema version")
    _time_keywords(lc, _site(header))
    buf = io.BytesIO()
    files = [_table_hdu(files, "FILES")] if files is not None else []
    fits.HDUList([_primary(header), lc, *files, *_extra_hdus(extra)]).writeto(buf, output_verify="exception")
    return buf.getvalue()


def read_fluxes(path) -> dict:
    """``Fluxes(**read_fluxes(path))`` is the raw Fluxes of a FITS product (see ``Fluxes.load``):
    every star at every aperture, per-frame columns as ``data``, comparisons, weights, aperture
    and the LIGHTCURVE table in ``meta``."""
    from astropy.io import fits
    from astropy.table import Table

    with fits.open(path, memmap=False) as hdul:
        names = [h.name for h in hdul]
        if "LIGHTCURVE" not in names or "FLUXES" not in names:
            raise ValueError(f"{path}: not a reduce light-curve product (no LIGHTCURVE/FLUXES HDU)")
        table = Table.read(hdul["LIGHTCURVE"])
        if "FILES" in names:  # schema 3: the text columns in their own HDU
            extra = Table.read(hdul["FILES"])
            for c in extra.colnames:
                table[c] = extra[c]
        if "quality" in table.colnames and "flag" in table.colnames:
            table.remove_column("quality")
        flux = np.asarray(hdul["FLUXES"].data, float)
        error = np.asarray(hdul["ERRORS"].data, float) if "ERRORS" in names else None
        apertures = np.asarray(hdul["APERTURES"].data, float) if "APERTURES" in names else None
        weights = np.asarray(hdul["WEIGHTS"].data, float) if "WEIGHTS" in names else None
        head = hdul[0].header
        stars = Table.read(hdul["STARS"]) if "STARS" in names else None
    data = {c: np.asarray(table[c], float) for c in ("bjd_tdb", "airmass", "fwhm", "sky", "dx", "dy")
            if c in table.colnames}
    meta = {"table": table, "aperture": int(head.get("APINDEX", flux.shape[0] // 2))}
    if weights is not None:
        meta["stored_weights"] = weights
    if stars is not None:
        comps = [int(s) for s in stars["star"][stars["comparison"]]]
        order = sorted(comps, key=lambda s: -float(stars["weight"][s]))
        meta.update(comparisons=order, weights=[float(stars["weight"][s]) for s in order])
    for key, name in (("RA_OBJ", "target_ra"), ("DEC_OBJ", "target_dec")):
        if key in head:
            meta[name] = float(head[key])
    files = [decode_name(f) for f in table["file"]] if "file" in table.colnames else None
    return dict(time=np.asarray(table["time"], float), fluxes=flux, errors=error, apertures=apertures,
                target=int(head.get("TARGET", 0)), data=data,
                flags=np.asarray(table["flag"], np.int64), files=files, meta=meta)
