"""BJD_TDB from JD UTC with erfa alone: no astropy.time/coordinates import, no IERS tables.

astropy's ``Time.light_travel_time`` with an observatory location transforms the site through
ITRS, which loads the IERS Earth-orientation tables (about a second of parsing, every run).
Here the site's geocentric position is rotated to GCRS with erfa's IAU 2006/2000A
celestial-to-terrestrial matrix with UT1 = UTC and no polar motion: the error this leaves in the
light-travel time (< 1 km of site position) is below 4 microseconds, far under the resolution
of a float64 JD (~40 microseconds). The Earth's barycentric position is erfa's ``epv00``, the
same "builtin" ephemeris astropy uses by default.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bjd_tdb"]


def _tdb_parts(jd_utc: np.ndarray):
    """(utc1, utc2, tt1, tt2, tdb1, tdb2) two-part Julian dates for JD UTC values."""
    import warnings

    import erfa

    with warnings.catch_warnings():  # "dubious year": dates past erfa's leap-second table
        warnings.simplefilter("ignore")
        return _parts(erfa, jd_utc)


def _parts(erfa, jd_utc):
    utc1 = np.floor(jd_utc - 0.5) + 0.5
    utc2 = jd_utc - utc1
    tai1, tai2 = erfa.utctai(utc1, utc2)
    tt1, tt2 = erfa.taitt(tai1, tai2)
    # TDB - TT (periodic terms, geocentre: the site-dependent part is below 2 microseconds);
    # utc2 is the fraction of the UT day (UT1 ~ UTC)
    dtr = erfa.dtdb(tt1, tt2, utc2, 0.0, 0.0, 0.0)
    return utc1, utc2, tt1, tt2, tt1, tt2 + dtr / 86400.0


def bjd_tdb(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float | None = None,
            lon_deg: float | None = None, elevation_m: float | None = None) -> np.ndarray:
    """Barycentric Julian Date (TDB) of mid-exposure JD UTC times for a target at (ra, dec) (deg).

    ``lat_deg``/``lon_deg`` (east positive, WGS84) and ``elevation_m`` place the observatory;
    without them the correction is geocentric (error below 21 ms). NaN times give NaN.
    """
    import erfa

    jd = np.atleast_1d(np.asarray(jd_utc, dtype=float))
    out = np.full(jd.shape, np.nan)
    ok = np.isfinite(jd)
    if not ok.any():
        return out.reshape(np.shape(jd_utc))
    utc1, utc2, tt1, tt2, tdb1, tdb2 = _tdb_parts(jd[ok])
    _, pvb = erfa.epv00(tdb1, tdb2)                  # Earth, barycentric, AU (BCRS axes)
    pos = pvb["p"] * erfa.DAU                        # m
    if lat_deg is not None and lon_deg is not None:
        site = erfa.gd2gc(1, np.radians(lon_deg), np.radians(lat_deg), float(elevation_m or 0.0))
        rc2t = erfa.c2t06a(tt1, tt2, utc1, utc2, 0.0, 0.0)  # GCRS -> ITRS; transpose maps back
        pos = pos + np.einsum("nji,j->ni", rc2t, site)
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    direction = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    delay = pos @ direction / erfa.CMPS              # s: arrival at the barycentre - at the site
    out[ok] = (tdb1 + tdb2) + delay / 86400.0
    return out.reshape(np.shape(jd_utc))
