"""Light-curve products on disk: one writer for ``reduce run`` and ``Fluxes.save``.

The light curve is one table (schema: :mod:`reduce.lightcurve.schema`) written as plain CSV (every
reader's default works), ECSV (the same CSV below a ``# `` commented YAML block: schema, units,
descriptions, meta; :mod:`reduce.lightcurve.ecsv`) and FITS (with the raw flux cubes and the
stars: :mod:`reduce.lightcurve.fitsproduct`). Frame file names are UTF-8 in the CSV and
percent-encoded in FITS. Files are written atomically and carry no clock value: equal inputs give
byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes, atomic_write_text
from .ecsv import csv_text, ecsv_text
from .fitsproduct import fits_bytes
from .schema import LIGHTCURVE_COLUMNS, LIGHTCURVE_SCHEMA
from .stats import nanmedian

__all__ = ["write_lightcurve", "write_product", "lightcurve_table", "fluxes_table", "stars_table",
           "product_extras", "product_header", "save_fluxes"]


def lightcurve_table(columns: dict, meta: dict | None = None):
    """The light curve as an astropy Table: every schema column, in schema order.

    ``columns`` maps names of :data:`LIGHTCURVE_COLUMNS` to per-frame arrays; a column not given
    is NaN (``flag``: 0, ``file``: empty), so every product has the same columns. Extra columns
    follow. ``meta`` (target, aperture, ...) is kept with ``schema`` set.
    """
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


def fluxes_table(fluxes):
    """The light-curve Table of (differential) Fluxes (see ``Fluxes.to_table``)."""
    cols = {"time": fluxes.time, "bjd_tdb": _bjd_tdb(fluxes), "flux": fluxes.flux, "flux_err": fluxes.error}
    for name in ("airmass", "fwhm", "sky", "dx", "dy", "x", "y"):
        v = fluxes.get(name)
        if v is not None:
            cols[name] = np.asarray(v, float)
    cols["flag"] = fluxes.flags.astype(np.int64)
    cols["file"] = [Path(str(f)).name for f in fluxes.files]
    return lightcurve_table(cols, _fluxes_meta(fluxes))


def _bjd_tdb(fluxes) -> np.ndarray:
    """BJD_TDB per frame: measured (``data``) or computed from the target and site in ``meta``."""
    if "bjd_tdb" in fluxes.data:
        return np.asarray(fluxes.data["bjd_tdb"], float)
    ra, dec = fluxes.meta.get("target_ra"), fluxes.meta.get("target_dec")
    if ra is None or dec is None:
        return np.full(fluxes.time.size, np.nan)
    from ..ephemeris import bjd_tdb

    site = tuple(fluxes.meta.get("site") or (None, None, None))
    return bjd_tdb(fluxes.time, float(ra), float(dec), *site)


def _fluxes_meta(fluxes) -> dict:
    """The table meta of Fluxes: schema, target, aperture, comparisons, weights (and binning, RA/Dec)."""
    meta = {"schema": LIGHTCURVE_SCHEMA, "target": fluxes.target, "aperture": fluxes.aperture,
            "aperture_radius": fluxes.aperture_radius,
            "comparisons": [int(i) for i in fluxes.comparisons],
            "weights": [float(w) for w in fluxes.weights]}
    if "binned" in fluxes.meta:
        meta["binned"] = float(fluxes.meta["binned"])
    for key in ("target_ra", "target_dec"):
        if fluxes.meta.get(key) is not None:
            meta[key] = float(fluxes.meta[key])
    return meta


def save_fluxes(fluxes, path, *, header: dict | None = None) -> Path:
    """``Fluxes.save``: one file of the product by extension; a FITS file carries the raw cubes."""
    path = Path(path)
    table = fluxes_table(fluxes)
    fits_file = path.suffix.lower() in (".fits", ".fit")
    raw = fluxes.raw if len(fluxes.raw) == len(fluxes) else fluxes  # binned: the cubes follow the rows
    extras = product_extras(raw, fluxes) if fits_file else None
    return write_product(path, table, extra_hdus=extras,
                         header=product_header(fluxes, **(header or {})) if fits_file else None)


def stars_table(x, y, *, ra=None, dec=None, median_flux=None, comparisons=(), weights=None):
    """The STARS table: index, reference x/y, RA/Dec (NaN without WCS), median flux, comparison
    flag and weight of every measured star (row = the star axis of FLUXES)."""
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
        "x": "x on the reference frame (0-based pixels of the file)",
        "y": "y on the reference frame (0-based pixels of the file)",
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
    flux, error = raw.fluxes, raw.errors
    n_ap, n_stars, _ = flux.shape
    diff = diff if diff is not None else raw
    aperture = diff.aperture
    weights_all = diff.meta.get("weights_all")
    weights_all = np.zeros((n_ap, n_stars)) if weights_all is None else np.asarray(weights_all, float)
    if stars_xy is None:
        x = raw.data.get("x")
        xy = np.full((n_stars, 2), np.nan) if x is None else np.column_stack(
            [nanmedian(raw.data["x"]), nanmedian(raw.data["y"])])
    else:
        xy = np.asarray(stars_xy, float).reshape(n_stars, 2)
    ra, dec = (None, None) if stars_radec is None else (np.asarray(stars_radec, float)[:, 0],
                                                        np.asarray(stars_radec, float)[:, 1])
    stars = stars_table(xy[:, 0], xy[:, 1], ra=ra, dec=dec, median_flux=nanmedian(flux[aperture]),
                        comparisons=diff.meta.get("comparisons", []), weights=weights_all[aperture])
    return {"STARS": stars, "FLUXES": flux.astype(np.float32), "ERRORS": error.astype(np.float32),
            "APERTURES": np.atleast_1d(np.asarray(raw.apertures, float)).astype(np.float32),
            "WEIGHTS": weights_all.astype(np.float32)}


def _finite_median(values) -> float:
    """Median of the finite values, NaN when there are none (or no values at all)."""
    v = np.atleast_1d(np.asarray(np.nan if values is None else values, float)).ravel()
    return float(nanmedian(np.where(np.isfinite(v), v, np.nan)))


def product_header(fluxes, **known) -> dict:
    """Primary-header values derivable from (differential) Fluxes — target index, aperture,
    frames, median exposure, DATE-OBS of the first frame, target RA/Dec from ``meta`` — updated
    with ``known`` (OBJECT, TELESCOP, FILTER, site, recipe, ...: see :data:`PRIMARY_KEYWORDS`)."""
    out = {"TARGET": int(fluxes.target), "APINDEX": int(fluxes.aperture), "NFRAMES": len(fluxes)}
    radius = fluxes.aperture_radius
    if np.isfinite(radius):
        out["APERTURE"] = round(float(radius), 4)
    exposure = fluxes.data.get("exposure")
    exp = _finite_median(exposure)
    if np.isfinite(exp):
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


def _iso_utc(jd: float) -> str:
    """ISO 8601 UTC (milliseconds) of a JD UTC."""
    from astropy.time import Time

    return Time(jd, format="jd", scale="utc").isot[:23]


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
    body = csv_text(t) if csv or ecsv else None  # the ECSV's table is the same CSV
    if csv:
        payloads.append((Path(f"{stem}.csv"), body))
    if ecsv:
        payloads.append((Path(f"{stem}.ecsv"), ecsv_text(t, body)))
    if fits:
        payloads.append((Path(f"{stem}.fits"), fits_bytes(t, extra_hdus, header)))
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
        return atomic_write_text(path, csv_text(t))
    if ext == ".ecsv":
        return atomic_write_text(path, ecsv_text(t))
    return atomic_write_bytes(path, fits_bytes(t, extra_hdus, header))
