"""Airmass from erfa (precession, nutation, aberration) agrees with astropy's AltAz, offline."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.ephemeris import airmass, airmass_of_altitude, altitude

# (latitude, longitude east-positive, elevation m, RA, Dec): Arizona, La Palma, Chile, Siberia
SITES = [(31.68, -110.88, 2300.0, 31.31, 46.77), (28.76, -17.88, 2396.0, 280.0, 10.0),
         (-29.26, -70.73, 2400.0, 83.8, -69.3), (55.0, 83.0, 150.0, 150.0, 25.0)]


@pytest.fixture(autouse=True)
def _offline_iers():
    """astropy must not download IERS tables in the test (the runtime never uses them)."""
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None):
        yield


def _astropy_altaz(jd, lat, lon, elev, ra, dec, *, dut1=None):
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, elev * u.m)
    t = Time(jd, format="jd", scale="utc", location=loc)
    if dut1 is not None:
        t.delta_ut1_utc = dut1
    return SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=t, location=loc))


@pytest.mark.parametrize("lat, lon, elev, ra, dec", SITES)
def test_altitude_and_airmass_agree_with_astropy_2024(lat, lon, elev, ra, dec):
    """In 2024 (UT1 - UTC ~ 0, from astropy's bundled tables) airmass agrees to 1e-4 up to X = 3,
    and the altitude to 2 arcsec, where the old sidereal-time formula was 0.15 deg off."""
    jd = 2460400.5 + np.linspace(0.0, 1.0, 97)
    aa = _astropy_altaz(jd, lat, lon, elev, ra, dec)
    ours = altitude(jd, ra, dec, lat, lon, elev)
    up = aa.alt.deg > 19.0                          # X <= 3
    assert up.sum() > 10
    assert np.abs(ours - aa.alt.deg)[up].max() * 3600 < 2.0
    x_ours = airmass(jd, ra, dec, lat, lon, elev)
    x_astropy = airmass_of_altitude(aa.alt.deg)     # the same air-mass formula on astropy's altitude
    assert np.nanmax(x_astropy[up]) > 2.0
    assert np.abs(x_ours - x_astropy)[up].max() < 1e-4
    # the plain secant too (the geometric part, without the formula)
    assert np.abs(1 / np.sin(np.radians(ours)) - aa.secz.value)[up].max() < 1e-4
    assert np.isnan(x_ours[aa.alt.deg < 0]).all()


@pytest.mark.filterwarnings("ignore::Warning")  # erfa's "dubious year" and astropy's IERS range
@pytest.mark.parametrize("year_jd", [2449000.5, 2458107.5, 2465000.5])  # 1993, 2017, 2036
def test_airmass_agrees_other_epochs_with_ut1_equal_utc(year_jd):
    """Far from J2000 precession matters most; with UT1 = UTC on both sides (the runtime assumes
    it: no Earth-orientation tables), airmass agrees to 1e-4 up to X = 3."""
    lat, lon, elev, ra, dec = SITES[0]
    jd = year_jd + np.linspace(0.0, 1.0, 97)
    aa = _astropy_altaz(jd, lat, lon, elev, ra, dec, dut1=np.zeros(jd.size))
    up = aa.alt.deg > 19.0
    x_ours = airmass(jd, ra, dec, lat, lon, elev)
    assert np.abs(x_ours - airmass_of_altitude(aa.alt.deg))[up].max() < 1e-4


def test_nan_times_and_shapes():
    x = airmass(np.array([np.nan, 2460400.9]), 31.3, 46.8, 31.68, -110.88)
    assert np.isnan(x[0]) and x.shape == (2,)
    assert np.ndim(altitude(2460400.9, 31.3, 46.8, 31.68, -110.88)) == 0


def test_hatp32_header_airmass_agrees(tmp_path):
    """The real HAT-P-32 frames carry TELALT: our altitude of HAT-P-32 (J2000 02:04:10.3
    +46:41:16) from their time and site (LONGITUD read west-positive) matches the telescope's
    to 0.02 deg over the whole night (their RA/DEC are of the date, 0.2 deg from J2000)."""
    from reduce.index.headers import frame_info

    from .index.fitsfactory import REAL

    folder = REAL / "exotic_hatp32"
    if not folder.is_dir():
        pytest.skip(f"HAT-P-32 night not found at {folder}")
    from astropy.io import fits

    files = sorted(folder.glob("*.FITS"))[::20]
    for f in files:
        fi = frame_info(f)
        telalt = float(fits.getheader(f)["TELALT"])
        alt = altitude(fi.jd - fi.exptime / 172800.0, 31.04292, 46.68778, fi.latitude, fi.longitude)
        assert alt == pytest.approx(telalt, abs=0.02), f.name


def test_run_fills_a_missing_airmass_and_reports_group_warnings(night_copy, tmp_path):
    """One frame without AIRMASS/RA/DEC (chosen as reference too) among neighbours that have them:
    its airmass is computed from the group's pointing and site, BJD_TDB is finite everywhere, and
    the summary JSON and provenance list the group's warnings (a time keyword that disagrees)."""
    import json

    from astropy.io import fits
    from astropy.table import Table

    from reduce.cli import main

    lights = sorted((night_copy / "light").glob("*.fits"))
    bare = lights[0]
    with fits.open(bare, mode="update") as hdul:
        h = hdul[0].header
        removed = float(h["AIRMASS"])
        for key in ("AIRMASS", "RA", "DEC"):
            del h[key]
    with fits.open(lights[5], mode="update") as hdul:
        hdul[0].header["JD"] = hdul[0].header["JD"] + 1.0  # a day off: DATE-OBS is used
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    from pathlib import Path

    default = (Path(__file__).resolve().parents[1] / "recipes" / "default.yaml").read_text()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(default.replace("reference: best ", "reference: first").replace("plot: true", "plot: false"))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(recipe), str(night_copy), "-o", str(out), "-q", "--summary-json", str(summary)])
    assert exc.value.code == 0
    table = Table.read(next(out.glob("*.csv")))
    row = list(table["file"]).index(bare.name)
    assert np.isfinite(table["airmass"]).all() and np.isfinite(table["bjd_tdb"]).all()
    # the simulator's airmass ignores precession (~0.3 deg in 2024): agreement to 2 %
    assert table["airmass"][row] == pytest.approx(removed, rel=0.02)
    (group,) = json.loads(summary.read_text())["groups"]
    codes = {w["code"]: w for w in group["warnings"]}
    assert set(codes) == {"time:DATE-OBS~JD", "airmass_computed"}
    assert "JD = " in codes["time:DATE-OBS~JD"]["message"] and "1 of 12 frames" in \
        codes["time:DATE-OBS~JD"]["message"]
    assert bare.name in codes["airmass_computed"]["message"]
    prov = json.loads(next(out.glob("*.json")).read_text())
    assert [w["code"] for w in prov["warnings"]] == [w["code"] for w in group["warnings"]]
