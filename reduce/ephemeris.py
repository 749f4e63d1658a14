"""Time and sky geometry for light-curve tables: airmass and BJD_TDB, computed offline.

Altitudes come from erfa's ICRS -> observed transformation (as ``atco13``: precession, nutation,
aberration, Earth rotation), with UT1 = UTC and no polar motion so no Earth-orientation table is
ever fetched: the altitude agrees with astropy's AltAz to about 1 arcsec (at most 13 arcsec, the
0.9 s of UT1 - UTC), airmass to 1e-4 at X = 3. BJD_TDB uses erfa's built-in ephemeris likewise,
so an offline observatory machine never waits on the network.
"""
from __future__ import annotations

import numpy as np

__all__ = ["airmass", "altitude", "airmass_of_altitude", "bjd_tdb"]


def altitude(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float,
             elevation_m: float | None = None) -> np.ndarray:
    """Geometric altitude (degrees, no refraction) of ICRS (ra, dec) seen from (lat, lon
    east-positive, elevation) at JD UTC; NaN times give NaN."""
    import warnings

    jd = np.atleast_1d(np.asarray(jd_utc, dtype=float))
    out = np.full(jd.shape, np.nan)
    ok = np.isfinite(jd)
    if ok.any():
        with warnings.catch_warnings():  # "dubious year": dates past erfa's leap-second table
            warnings.simplefilter("ignore")
            out[ok] = _altitudes(jd[ok], np.radians(ra_deg), np.radians(dec_deg), np.radians(lat_deg),
                                 np.radians(lon_deg), float(elevation_m or 0.0))
    return out.reshape(np.shape(jd_utc))


def _altitudes(jd, ra, dec, lat, lon, elev):
    """erfa's ICRS -> observed chain (as ``atco13``) with one star-independent context per UTC
    day: precession, nutation and aberration change by < 0.3 arcsec in a day, so only the Earth
    rotation angle is updated per time (100x faster than ``atco13`` for each frame)."""
    import erfa

    utc1 = np.floor(jd - 0.5) + 0.5
    out = np.empty(jd.shape)
    for day in np.unique(utc1):
        sel = utc1 == day
        mid = float(np.median(jd[sel]))
        astrom, _ = erfa.apco13(day, mid - day, 0.0, lon, lat, elev, 0.0, 0.0, 0.0, 0.0, 0.0, 0.55)
        ri, di = erfa.atciq(ra, dec, 0.0, 0.0, 0.0, 0.0, astrom)       # CIRS place of the star
        rotated = erfa.aper13(utc1[sel], jd[sel] - utc1[sel], astrom)  # Earth angle, UT1 = UTC
        _, zob, *_ = erfa.atioq(ri, di, rotated)
        out[sel] = 90.0 - np.degrees(zob)
    return out


def airmass(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float,
            elevation_m: float | None = None) -> np.ndarray:
    """Airmass (Pickering 2002: the relative air mass, good to the horizon; 0.2 % below sec z at
    X = 2) of the geometric :func:`altitude`; NaN below the horizon."""
    alt = altitude(jd_utc, ra_deg, dec_deg, lat_deg, lon_deg, elevation_m)
    return airmass_of_altitude(alt)


def airmass_of_altitude(alt) -> np.ndarray:
    """Pickering (2002) airmass of an altitude (degrees); NaN at or below the horizon."""
    alt = np.asarray(alt, dtype=float)
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
