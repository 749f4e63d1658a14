"""BJD_TDB with erfa alone agrees with astropy's light_travel_time to microseconds."""
from __future__ import annotations

import warnings

import numpy as np

from reduce.algorithms import timescales


def test_bjd_matches_astropy_within_microseconds():
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    jd = 2460385.3 + np.arange(8) * 0.01
    ra, dec, lat, lon, h = 301.56, 44.46, 32.44, -110.79, 2510.0
    loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, h * u.m)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Time(jd, format="jd", scale="utc", location=loc)
        ltt = t.light_travel_time(SkyCoord(ra * u.deg, dec * u.deg), kind="barycentric",
                                  ephemeris="builtin").to_value(u.s)
        tdb = t.tdb
    utc1, utc2, tt1, tt2, tdb1, tdb2 = timescales._tdb_parts(jd)
    assert np.max(np.abs((tdb1 - tdb.jd1) + (tdb2 - tdb.jd2))) * 86400 < 3e-6
    bjd = timescales.bjd_tdb(jd, ra, dec, lat, lon, h)
    delay = (bjd - (tdb1 + tdb2)) * 86400
    assert np.max(np.abs(delay - ltt)) < 1e-4          # float64 JD resolution is ~40 us
    assert 100 < np.max(np.abs(ltt)) < 510             # a real barycentric correction (s)


def test_geocentric_and_nan_times():
    out = timescales.bjd_tdb(np.array([np.nan, 2460000.5]), 10.0, 20.0)
    assert np.isnan(out[0]) and abs(out[1] - 2460000.5) < 0.006
    assert np.ndim(timescales.bjd_tdb(2460000.5, 10.0, 20.0)) == 0
    topo = timescales.bjd_tdb(2460000.5, 10.0, 20.0, 0.0, 0.0, 0.0)
    assert abs(topo - timescales.bjd_tdb(2460000.5, 10.0, 20.0)) * 86400 < 0.022  # < Earth radius / c
