"""Time and sky geometry for light-curve tables: airmass and BJD_TDB, computed offline.

Airmass uses the mean sidereal time formula (accurate to seconds, far below what airmass needs)
so no Earth-orientation table is ever fetched. BJD_TDB uses erfa's built-in ephemeris and no
Earth-orientation tables, so an offline observatory machine never waits on the network.
"""
from __future__ import annotations

import numpy as np

__all__ = ["airmass", "altitude", "bjd_tdb"]


def _gmst_hours(jd_utc: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (hours) from JD UTC (IAU 1982 linear term, ~0.1 s/century)."""
    d = np.asarray(jd_utc, dtype=float) - 2451545.0
    return np.mod(18.697374558 + 24.06570982441908 * d, 24.0)


def altitude(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float) -> np.ndarray:
    """Altitude (degrees) of (ra, dec) seen from (lat, lon east-positive) at JD UTC."""
    lst = np.deg2rad(_gmst_hours(jd_utc) * 15.0 + lon_deg)
    ha = lst - np.deg2rad(ra_deg)
    lat, dec = np.deg2rad(lat_deg), np.deg2rad(dec_deg)
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.rad2deg(np.arcsin(np.clip(sin_alt, -1, 1)))


def airmass(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float) -> np.ndarray:
    """Airmass (Pickering 2002 formula, good to the horizon); NaN below the horizon."""
    alt = altitude(jd_utc, ra_deg, dec_deg, lat_deg, lon_deg)
    with np.errstate(invalid="ignore", divide="ignore"):
        am = 1.0 / np.sin(np.deg2rad(alt + 244.0 / (165.0 + 47.0 * np.power(np.maximum(alt, 0), 1.1))))
    return np.where(alt > 0, am, np.nan)


def bjd_tdb(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float | None = None,
            lon_deg: float | None = None, elevation_m: float | None = None) -> np.ndarray:
    """Barycentric Julian Date (TDB) of mid-exposure JD UTC times for a target at (ra, dec).

    Computed with erfa alone (see :mod:`reduce.algorithms.timescales`: no IERS tables, agrees
    with astropy to microseconds). With the site unknown the correction is geocentric (error
    below 21 ms).
    """
    from .algorithms.timescales import bjd_tdb as _bjd

    return _bjd(jd_utc, ra_deg, dec_deg, lat_deg, lon_deg, elevation_m)
