"""A light-curve product read for fitting: BJD_TDB, flux, error and the covariates, good frames only."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.errors import UsageError

__all__ = ["LightCurve", "read_product", "COVARIATES"]

#: columns a baseline may use besides time (when present and finite on the frames used)
COVARIATES = ("airmass", "fwhm", "sky", "dx", "dy")


@dataclass
class LightCurve:
    """The frames of a product a fit uses (flag 0, finite): times in BJD_TDB (d)."""

    path: Path
    time: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    covariates: dict
    n_rows: int
    n_flagged: int
    meta: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.path.name.rsplit(".", 1)[0]


def _table(path: Path):
    from astropy.table import Table

    try:
        if path.suffix.lower() in (".fits", ".fit", ".fts"):
            return Table.read(path, hdu="LIGHTCURVE")
        if path.suffix.lower() == ".ecsv":
            return Table.read(path, format="ascii.ecsv")
        return Table.read(path, format="ascii.csv", comment="#")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as e:  # a table astropy cannot parse
        raise UsageError(f"{path} is not a reduce light-curve product (CSV, ECSV or FITS): {e}") from None


def _header(path: Path) -> dict:
    """Target, filter, exposure and site of a FITS product (empty for a CSV)."""
    if path.suffix.lower() not in (".fits", ".fit", ".fts"):
        return {}
    from astropy.io import fits

    with fits.open(path) as hdul:
        h = hdul[0].header
        return {k: h[k] for k in ("OBJECT", "TELESCOP", "FILTER", "EXPTIME", "OBSGEO-B", "OBSGEO-L",
                                  "OBSGEO-H", "RA_OBJ", "DEC_OBJ") if k in h}


def read_product(path) -> LightCurve:
    """The good frames of a light-curve product (flag 0, finite BJD_TDB, flux and error > 0)."""
    path = Path(path)
    t = _table(path)
    names = set(t.colnames)
    tcol = "bjd_tdb" if "bjd_tdb" in names else None
    if tcol is None or "flux" not in names:
        raise UsageError(f"{path}: no bjd_tdb and flux columns: not a reduce light-curve product")
    time = np.asarray(t[tcol], float)
    flux = np.asarray(t["flux"], float)
    err = np.asarray(t["flux_err"], float) if "flux_err" in names else np.full(len(t), np.nan)
    flag = np.asarray(t["flag"], int) if "flag" in names else np.zeros(len(t), int)
    good = (flag == 0) & np.isfinite(time) & np.isfinite(flux)
    if not np.isfinite(err[good]).any():  # no errors at all: the scatter will set them
        err = np.full(len(t), np.nan)
    else:
        good &= np.isfinite(err) & (err > 0)
    if good.sum() < 10:
        raise UsageError(f"{path}: only {int(good.sum())} good frame(s) (flag 0, finite): too few to fit")
    order = np.argsort(time[good], kind="stable")
    cov = {}
    for name in COVARIATES:
        if name in names:
            v = np.asarray(t[name], float)[good][order]
            if np.isfinite(v).all() and np.ptp(v) > 0:
                cov[name] = v
    e = err[good][order]
    if not np.isfinite(e).all():
        f = flux[good][order]
        e = np.full(len(f), 1.4826 * np.median(np.abs(np.diff(f))) / np.sqrt(2))
    return LightCurve(path=path, time=time[good][order], flux=flux[good][order], err=e, covariates=cov,
                      n_rows=len(t), n_flagged=int((flag != 0).sum()), meta=_header(path))
