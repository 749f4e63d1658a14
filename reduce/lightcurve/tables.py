"""Light-curve products on disk: one writer for ``reduce run`` and ``Fluxes.save``.

The FITS file holds a primary HDU with the observation's metadata (OBJECT, TELESCOP, FILTER,
DATE-OBS, site, target RA/Dec, aperture, recipe, ...), the light curve as extension 1
(``LIGHTCURVE``: units, descriptions and the FITS time keywords, so astropy reads ``time`` as JD
UTC and ``bjd_tdb`` as BJD TDB), ``STARS`` (every measured star: reference position, RA/Dec,
median flux, comparison flag and weight) and the raw arrays (``FLUXES``/``ERRORS``: apertures x
stars x frames, ``APERTURES``, ``WEIGHTS``) with BUNIT and axis names. The CSV is plain (every
reader's default works); the ECSV is the same comma-separated table below a ``# `` commented
YAML block (schema, units, descriptions, meta). Frame file names are UTF-8 in the CSV and percent-encoded in FITS (FITS strings are ASCII).
Files are written atomically and carry no clock value: equal inputs give byte-identical files.
"""
from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote

from ..io.atomic import OutputError, atomic_write_bytes, atomic_write_text

__all__ = ["write_lightcurve", "write_product", "lightcurve_table", "stars_table", "product_extras",
           "product_header", "encode_name", "decode_name", "safe_stem", "product_path", "LIGHTCURVE_SCHEMA",
           "LIGHTCURVE_COLUMNS", "PRIMARY_KEYWORDS"]

#: version of the light-curve product (columns, HDUs, keywords); the README lists the changes
LIGHTCURVE_SCHEMA = 2

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
    "file": ("", "source frame file name (FITS: percent-encoded UTF-8)"),
}

#: primary-header keywords of the product -> comment (values given by the caller; None omitted)
PRIMARY_KEYWORDS = {
    "OBJECT": "target name",
    "TELESCOP": "telescope",
    "INSTRUME": "instrument",
    "FILTER": "filter",
    "DATE-OBS": "UTC start of the first frame (ISO 8601)",
    "EXPTIME": "[s] exposure time (median of the frames)",
    "NFRAMES": "frames in the light curve (rows of LIGHTCURVE)",
    "OBSGEO-B": "[deg] site latitude",
    "OBSGEO-L": "[deg] site longitude (east positive)",
    "OBSGEO-H": "[m] site elevation",
    "RA_OBJ": "[deg] target right ascension (ICRS)",
    "DEC_OBJ": "[deg] target declination (ICRS)",
    "TARGET": "target index in the STARS table",
    "APERTURE": "[pix] radius of the chosen aperture",
    "APINDEX": "chosen aperture (index in APERTURES)",
    "RECIPE": "recipe file name",
    "RECIPVER": "recipe format version",
    "RECIPSHA": "recipe SHA-256 (first 16 hex digits)",
    "CREATOR": "software that wrote this file",
}

_ARRAY_AXES = {  # name -> (BUNIT, axis names from NAXIS1 on: numpy's last axis first)
    "FLUXES": ("adu", ("frame (LIGHTCURVE row)", "star (STARS row)", "aperture (APERTURES)")),
    "ERRORS": ("adu", ("frame (LIGHTCURVE row)", "star (STARS row)", "aperture (APERTURES)")),
    "APERTURES": ("pix", ("aperture",)),
    "WEIGHTS": ("", ("star (STARS row)", "aperture (APERTURES)")),
}

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


def lightcurve_table(columns: dict, meta: dict | None = None):
    """The light curve as an astropy Table: every schema column, in schema order.

    ``columns`` maps names of :data:`LIGHTCURVE_COLUMNS` to per-frame arrays; a column not given
    is NaN (``flag``: 0, ``file``: empty), so every product has the same columns. Extra columns
    follow. ``meta`` (target, aperture, ...) is kept with ``schema`` set.
    """
    import numpy as np
    from astropy.table import Table

    n = len(next(iter(columns.values()))) if columns else 0
    t = Table()
    for name, (unit, description) in LIGHTCURVE_COLUMNS.items():
        if name in columns:
            value = columns[name]
        elif name == "flag":
            value = np.zeros(n, np.int64)
        elif name == "file":
            value = np.array([""] * n, dtype=str)
        else:
            value = np.full(n, np.nan)
        if name == "file":
            value = np.array([str(v) for v in value], dtype=str)
        elif name == "flag":
            value = np.asarray(value, dtype=np.int64)
        else:
            value = np.asarray(value, dtype=float)
        t[name] = value
        t[name].unit = unit or None
        t[name].description = description
    for name, value in columns.items():
        if name not in LIGHTCURVE_COLUMNS:
            t[name] = value
    t.meta.update(meta or {})
    t.meta["schema"] = LIGHTCURVE_SCHEMA
    return t


def stars_table(x, y, *, ra=None, dec=None, median_flux=None, comparisons=(), weights=None):
    """The STARS table: index, reference x/y, RA/Dec (NaN without WCS), median flux, comparison
    flag and weight of every measured star (row = the star axis of FLUXES)."""
    import numpy as np
    from astropy.table import Table

    x = np.asarray(x, float)
    n = x.size
    comp = np.zeros(n, bool)
    comp[[int(c) for c in comparisons if 0 <= int(c) < n]] = True

    def column(v):
        return np.full(n, np.nan) if v is None else np.asarray(v, float).reshape(n)

    t = Table({"star": np.arange(n), "x": x, "y": np.asarray(y, float), "ra": column(ra),
               "dec": column(dec), "median_flux": column(median_flux), "comparison": comp,
               "weight": np.zeros(n) if weights is None else column(weights)})
    units = {"x": "pix", "y": "pix", "ra": "deg", "dec": "deg", "median_flux": "adu"}
    descriptions = {
        "star": "star index (axis of FLUXES, ERRORS and WEIGHTS)",
        "x": "x on the reference frame (0-based pixels)", "y": "y on the reference frame (0-based pixels)",
        "ra": "right ascension (ICRS) from the reference WCS", "dec": "declination (ICRS) from the reference WCS",
        "median_flux": "median raw flux in the chosen aperture", "comparison": "used as a comparison star",
        "weight": "comparison weight in the chosen aperture (sum 1)"}
    for name in t.colnames:
        t[name].unit = units.get(name)
        t[name].description = descriptions[name]
    return t


def product_extras(raw, diff=None, *, stars_xy=None, stars_radec=None) -> dict:
    """The product's extra HDUs from raw (and differential) Fluxes: STARS, FLUXES, ERRORS,
    APERTURES and WEIGHTS. The frame axis of the cubes is the LIGHTCURVE's rows."""
    import numpy as np
    flux, error = raw.fluxes, raw.errors
    n_ap, n_stars, _ = flux.shape
    diff = diff if diff is not None else raw
    aperture = diff.aperture
    weights_all = diff.meta.get("weights_all")
    weights_all = np.zeros((n_ap, n_stars)) if weights_all is None else np.asarray(weights_all, float)
    if stars_xy is None:
        x = raw.data.get("x")
        xy = np.full((n_stars, 2), np.nan) if x is None else np.column_stack(
            [_row_median(raw.data["x"]), _row_median(raw.data["y"])])
    else:
        xy = np.asarray(stars_xy, float).reshape(n_stars, 2)
    ra, dec = (None, None) if stars_radec is None else (np.asarray(stars_radec, float)[:, 0],
                                                        np.asarray(stars_radec, float)[:, 1])
    stars = stars_table(xy[:, 0], xy[:, 1], ra=ra, dec=dec, median_flux=_row_median(flux[aperture]),
                        comparisons=diff.meta.get("comparisons", []), weights=weights_all[aperture])
    return {"STARS": stars, "FLUXES": flux.astype(np.float32), "ERRORS": error.astype(np.float32),
            "APERTURES": np.atleast_1d(np.asarray(raw.apertures, float)).astype(np.float32),
            "WEIGHTS": weights_all.astype(np.float32)}


def _row_median(a) -> np.ndarray:
    """Median over the last axis, NaN where nothing was measured."""
    import warnings

    import numpy as np

    a = np.asarray(a, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a star never measured: NaN
        return np.nanmedian(a, axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)


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
    t.meta.setdefault("schema", LIGHTCURVE_SCHEMA)
    return t


def _plain_meta(value):
    """Meta values as YAML-safe Python scalars and lists (numpy values converted)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain_meta(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain_meta(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _csv_text(t) -> str:
    """Plain CSV (one header line, full precision): what pandas, astropy, spreadsheets and
    AstroImageJ read with their defaults."""
    t = t.copy(copy_data=False)
    t.meta.clear()
    buf = io.StringIO()
    t.write(buf, format="ascii.csv", overwrite=True)
    return buf.getvalue().replace("\r\n", "\n")


def _ecsv_text(t) -> str:
    """ECSV with comma delimiters: a ``# `` YAML block (schema, units, descriptions, meta) above
    the same CSV table (astropy reads it by default as ``.ecsv``; pandas with ``comment='#'``)."""
    t = t.copy(copy_data=False)
    t.meta = _plain_meta(dict(t.meta))
    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv", delimiter=",", overwrite=True)
    return buf.getvalue().replace("\r\n", "\n")


def _header_value(value):
    import numpy as np
    if isinstance(value, str):
        return _ascii(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table_hdu(t, name: str):
    """A BinTableHDU named ``name`` with units, ``TCOMMn`` descriptions and scalar meta; text
    columns percent-encoded (FITS strings are ASCII)."""
    import numpy as np
    from astropy.io import fits

    meta = dict(t.meta)
    t = t.copy(copy_data=False)
    t.meta.clear()
    for colname in t.colnames:
        col = t[colname]
        if col.dtype.kind == "U":
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
    import numpy as np
    from astropy.io import fits

    hdu = fits.ImageHDU(np.ascontiguousarray(value), name=name)
    unit, axes = _ARRAY_AXES.get(name, (None, ()))
    if unit is not None:
        hdu.header["BUNIT"] = (unit, "data unit")
    for i, axis in enumerate(axes[:hdu.header.get("NAXIS", 0)], start=1):
        hdu.header[f"CNAME{i}"] = (axis, f"axis {i}")
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
    import numpy as np
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


def _fits_bytes(t, extra, header=None) -> bytes:
    from astropy.io import fits

    lc = _table_hdu(t, "LIGHTCURVE")
    lc.header["HIERARCH REDUCE_SCHEMA"] = (LIGHTCURVE_SCHEMA, "light-curve table schema version")
    _time_keywords(lc, _site(header))
    buf = io.BytesIO()
    fits.HDUList([_primary(header), lc, *_extra_hdus(extra)]).writeto(buf, output_verify="exception")
    return buf.getvalue()


def write_lightcurve(table, stem, *, extra_hdus=None, header=None, csv: bool = True,
                     ecsv: bool = False, fits: bool = True) -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>.ecsv`` and ``<stem>.fits`` atomically; returns the paths written.

    ``table`` is an astropy Table (see :func:`lightcurve_table`; columns listed in
    :data:`LIGHTCURVE_COLUMNS` get their units and descriptions when they have none). The CSV is
    plain; the ECSV is the same table below a ``# `` block with units and schema.
    ``extra_hdus`` adds FITS extensions after the light curve (see :func:`product_extras`):
    ``{"FLUXES": cube (n_apertures, n_stars, n_frames), "STARS": Table, ...}``. ``header``: the
    primary-header values (:data:`PRIMARY_KEYWORDS`). Every file is built in memory first, so a
    failure leaves none half-written.
    """
    stem = Path(stem)
    t = _prepared(table)
    payloads = []
    if csv:
        payloads.append((Path(f"{stem}.csv"), _csv_text(t)))
    if ecsv:
        payloads.append((Path(f"{stem}.ecsv"), _ecsv_text(t)))
    if fits:
        payloads.append((Path(f"{stem}.fits"), _fits_bytes(t, extra_hdus, header)))
    written = []
    for path, data in payloads:
        writer = atomic_write_text if isinstance(data, str) else atomic_write_bytes
        written.append(writer(path, data))
    return written


def write_product(path, table, *, extra_hdus=None, header=None) -> Path:
    """One file of the product, by extension: ``.csv`` (plain), ``.ecsv`` (with the commented
    units/schema block) or ``.fits``/``.fit`` (the full record); atomic, like
    :func:`write_lightcurve`."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".csv", ".ecsv", ".fits", ".fit"):
        raise ValueError(f"cannot save {path.name!r}: use a .csv, .ecsv or .fits extension")
    t = _prepared(table)
    if ext == ".csv":
        return atomic_write_text(path, _csv_text(t))
    if ext == ".ecsv":
        return atomic_write_text(path, _ecsv_text(t))
    return atomic_write_bytes(path, _fits_bytes(t, extra_hdus, header))


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


def product_header(fluxes, **known) -> dict:
    """Primary-header values derivable from (differential) Fluxes — target index, aperture,
    frames, median exposure, DATE-OBS of the first frame, target RA/Dec from ``meta`` — updated
    with ``known`` (OBJECT, TELESCOP, FILTER, site, recipe, ...: see :data:`PRIMARY_KEYWORDS`)."""
    import numpy as np
    out = {"TARGET": int(fluxes.target), "APINDEX": int(fluxes.aperture), "NFRAMES": len(fluxes)}
    radius = fluxes.aperture_radius
    if np.isfinite(radius):
        out["APERTURE"] = round(float(radius), 4)
    exposure = fluxes.data.get("exposure")
    exp = _finite_median(exposure)
    if exp is not None:
        out["EXPTIME"] = round(exp, 4)
    times = np.asarray(fluxes.time, float)
    if np.isfinite(times).any():
        i = int(np.flatnonzero(np.isfinite(times))[0])
        half = 0.0
        if exposure is not None and np.isfinite(exposure[i]):
            half = float(exposure[i]) / 2 / 86400
        out["DATE-OBS"] = _iso_utc(times[i] - half)
    meta = fluxes.meta
    if meta.get("target_ra") is not None:
        out["RA_OBJ"], out["DEC_OBJ"] = float(meta["target_ra"]), float(meta["target_dec"])
    out.update({k: v for k, v in known.items() if v is not None})
    return out


def _finite_median(values) -> float | None:
    import numpy as np
    if values is None:
        return None
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _iso_utc(jd: float) -> str:
    """ISO 8601 UTC (milliseconds) of a JD UTC."""
    from astropy.time import Time

    return Time(jd, format="jd", scale="utc").isot[:23]
