"""The light-curve product of `reduce run` on a small simulated night with bad files and odd names.

One night (8 frames of 140x140 px) gets a 3-D cube, a table-only FITS, a zero-byte file, a
truncated file and a cropped frame among its lights, and three frames renamed with non-ASCII
names; it is reduced once (module fixture) with the AAVSO and EXOTIC exports on, and every test
reads what that run wrote: one row per file, the FITS time and metadata conventions, the exports
checked against their published specifications.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.cli import main
from tests.conftest import stayed_broken

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "recipes" / "default.yaml"
STEM = "2024-03-15_SIM-60_SIM-1_V"
ODD_NAMES = ("SIM-1_V_0002_é.fits", "SIM-1_V_0003_日本語.fits", "SIM-1_V_0004_☃.fits")
BAD = {  # file -> the reason its row must carry
    "SIM-1_V_0101.fits": "3-D cube",
    "SIM-1_V_0102.fits": "FITS table(s) only",
    "SIM-1_V_0103.fits": "empty file (0 bytes)",
    "SIM-1_V_0104.fits": "truncated",
    "SIM-1_V_0105.fits": "wrong size: 90x70 px",
}


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def _spoil(night: Path) -> None:
    """The bad files of the issue, and frames with non-ASCII names, among the lights."""
    light = night / "light"
    frames = sorted(light.glob("*.fits"))
    header, data = fits.getheader(frames[0]), fits.getdata(frames[0])
    fits.PrimaryHDU(np.stack([data, data]), header=header).writeto(light / "SIM-1_V_0101.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(Table({"a": [1, 2]}))]).writeto(light / "SIM-1_V_0102.fits")
    (light / "SIM-1_V_0103.fits").write_bytes(b"")
    raw = frames[5].read_bytes()
    (light / "SIM-1_V_0104.fits").write_bytes(raw[: len(raw) // 2])
    stayed_broken(light / "SIM-1_V_0103.fits", light / "SIM-1_V_0104.fits")
    cropped = fits.getheader(frames[6])
    fits.PrimaryHDU(fits.getdata(frames[6])[:70, :90], header=cropped).writeto(light / "SIM-1_V_0105.fits")
    for src, name in zip(frames[1:4], ODD_NAMES):
        src.rename(light / name)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """(night, outdir, summary, exit status, log text) of one run with the exports on."""
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("products")
    night = base / "night"
    simulate_night(night, seed=5, n_images=8, size=140, signal="transit")
    _spoil(night)
    recipe = base / "exports.yaml"
    recipe.write_text(DEFAULT.read_text().replace(
        "outputs: {csv: true, fits: true, plot: true, provenance: true}",
        "outputs: {plot: false, aavso: {obscode: TST01, chart: X12345}, exotic: true}"))
    assert "aavso" in recipe.read_text()
    out = base / "out"
    log = base / "run.log"
    code = run_cli("run", recipe, night, "-o", out, "-q", "--jobs", "1", "--summary-json",
                   base / "s.json", "--log-file", log)
    summary = json.loads((base / "s.json").read_text())
    return night, out, summary, code, log.read_text(encoding="utf-8"), recipe


# -- every frame is accounted for -----------------------------------------------------------------
def test_every_file_of_the_group_has_a_row(reduced):
    night, out, summary, code, log, _ = reduced
    assert code == 3  # finished, with frames flagged
    table = Table.read(out / f"{STEM}.csv")
    files = sorted(p.name for p in (night / "light").iterdir())
    assert sorted(table["file"]) == files and len(files) == 8 + len(BAD)
    for name, reason in BAD.items():
        row = table[table["file"] == name]
        assert len(row) == 1 and row["flag"][0] & 1 and not np.isfinite(row["flux"][0]), name
    good = table[table["flag"] == 0]
    assert len(good) == 8 and np.all(np.isfinite(good["flux"]))
    # the cropped frame keeps its time (from its header); rows stay in time order
    cropped = table[table["file"] == "SIM-1_V_0105.fits"]
    assert np.isfinite(cropped["time"][0])
    timed = np.asarray(table["time"])[np.isfinite(table["time"])]
    assert np.all(np.diff(timed) >= 0)


def test_unmeasured_files_are_named_with_their_reason_in_log_and_summary(reduced):
    _, _, summary, _, log, _ = reduced
    group = summary["groups"][0]
    unmeasured = {u["file"]: u["reason"] for u in group["unmeasured"]}
    assert set(unmeasured) == set(BAD)
    flagged = {f["file"]: f["reason"] for f in group["flagged"]}
    for name, reason in BAD.items():
        assert reason in unmeasured[name] and reason in flagged[name], (name, unmeasured[name])
        assert name in log
    assert group["frames"] == 8 + len(BAD) and group["frames_used"] == 8
    assert summary["unreadable"] == []  # all of them belong to the group: none left unexplained


def test_a_stray_unreadable_file_outside_any_group_is_reported(reduced, tmp_path):
    """A broken file in a folder without light frames cannot be given to a group: the night lists it."""
    night, _, _, _, _, recipe = reduced
    copy = tmp_path / "night"
    shutil.copytree(night, copy, ignore=shutil.ignore_patterns(".reduce"))
    (copy / "elsewhere").mkdir()
    (copy / "elsewhere" / "broken.fits").write_bytes(b"SIMPLE  = nonsense")
    stayed_broken(copy / "elsewhere" / "broken.fits")
    assert run_cli("run", recipe, copy, "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--summary-json", tmp_path / "s.json") == 3
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [Path(u["file"]).name for u in summary["unreadable"]] == ["broken.fits"]


# -- non-ASCII file names (issue 11, defect 2) -----------------------------------------------------
def test_non_ascii_names_are_measured_and_stored_safely(reduced):
    from reduce.lightcurve.fitsproduct import decode_name

    night, out, summary, _, _, _ = reduced
    csv = Table.read(out / f"{STEM}.csv")
    for name in ODD_NAMES:  # UTF-8 in the CSV, measured like any frame
        row = csv[csv["file"] == name]
        assert len(row) == 1 and row["flag"][0] == 0 and np.isfinite(row["flux"][0])
    with fits.open(out / f"{STEM}.fits") as hdul:
        stored = [str(v) for v in hdul["FILES"].data["file"]]
        assert hdul["FILES"].header["NAXIS2"] == hdul["LIGHTCURVE"].header["NAXIS2"]
    assert all(s.isascii() for s in stored)
    assert sorted(decode_name(s) for s in stored) == sorted(csv["file"])
    assert "SIM-1_V_0002_%C3%A9.fits" in stored
    prov = json.loads((out / f"{STEM}.json").read_text(encoding="utf-8"))
    assert {Path(i["file"]).name for i in prov["inputs"]} >= set(ODD_NAMES)


def test_non_ascii_names_do_not_fail_later_runs(reduced, tmp_path):
    """The next run finds nothing new (the group settled), instead of failing again."""
    night, out, _, _, _, recipe = reduced
    assert run_cli("run", recipe, night, "-o", out, "-q", "--jobs", "1", "--summary-json",
                   tmp_path / "s.json") == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [g["status"] for g in summary["groups"]] == ["unchanged"]


# -- times read right everywhere -------------------------------------------------------------------
def test_astropy_reads_time_as_jd_utc_and_bjd_as_tdb(reduced):
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    _, out, _, _, _, _ = reduced
    path = out / f"{STEM}.fits"
    native = Table.read(path, hdu="LIGHTCURVE", astropy_native=True)
    plain = Table.read(out / f"{STEM}.csv")
    t, b = native["time"], native["bjd_tdb"]
    assert isinstance(t, Time) and t.scale == "utc" and isinstance(b, Time) and b.scale == "tdb"
    ok = np.isfinite(plain["time"])
    assert np.allclose(t.jd[ok], plain["time"][ok], rtol=0, atol=1e-9)  # JD, not MJD or year 8595
    assert 2024 < t[ok][0].decimalyear < 2025
    # an independent BJD_TDB from astropy: the TDB column is what it says (1 ms)
    head = fits.getheader(path, 0)
    site = EarthLocation.from_geodetic(head["OBSGEO-L"] * u.deg, head["OBSGEO-B"] * u.deg, head["OBSGEO-H"] * u.m)
    target = SkyCoord(head["RA_OBJ"] * u.deg, head["DEC_OBJ"] * u.deg)
    utc = Time(np.asarray(plain["time"])[ok], format="jd", scale="utc", location=site)
    with iers.conf.set_temp("auto_download", False):  # offline: no IERS table is fetched
        expected = utc.tdb + utc.light_travel_time(target, ephemeris="builtin")
    assert np.max(np.abs((b[ok] - expected).to_value("s"))) < 1e-3


def test_lightkurve_reads_the_right_time_scale(reduced):
    lk = pytest.importorskip("lightkurve")
    _, out, _, _, _, _ = reduced
    path = out / f"{STEM}.fits"
    plain = Table.read(out / f"{STEM}.csv")
    ok = np.isfinite(plain["time"])
    lc = lk.LightCurve.read(path, hdu="LIGHTCURVE", astropy_native=True)  # the README one-liner
    assert lc.time.scale == "utc" and np.allclose(lc.time.jd[ok], plain["time"][ok], rtol=0, atol=1e-9)
    bjd = lk.LightCurve(time=lc["bjd_tdb"], flux=lc.flux, flux_err=lc.flux_err)  # the BJD one
    assert bjd.time.scale == "tdb" and np.allclose(bjd.time.jd[ok], plain["bjd_tdb"][ok], atol=1e-9)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Output folder of a night of readable frames (every row has a time), one frame flagged."""
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("clean")
    simulate_night(base / "night", seed=5, n_images=9, size=140, signal="transit")
    frames = sorted((base / "night" / "light").glob("*.fits"))
    cropped = fits.getheader(frames[4])
    data = fits.getdata(frames[4])[:70, :90]
    frames[4].unlink()
    fits.PrimaryHDU(data, header=cropped).writeto(frames[4])
    assert run_cli("run", DEFAULT, base / "night", "-o", base / "out", "-q", "--jobs", "1") in (0, 3)
    return base / "out"


@pytest.mark.parametrize("native", [False, True])
def test_lightkurve_reads_bins_flattens_and_folds_the_product(clean, native):
    """The README snippet, then lightkurve's first operations: no warning, quality from flag."""
    import warnings

    lk = pytest.importorskip("lightkurve")
    out = clean
    plain = Table.read(out / f"{STEM}.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "hdu= was not specified" (or any other) fails the test
        lc = lk.LightCurve.read(out / f"{STEM}.fits", hdu="LIGHTCURVE", astropy_native=native)
    assert list(np.asarray(lc.quality)) == list(plain["flag"]) and np.any(np.asarray(lc.quality) != 0)
    good = lc[(np.asarray(lc.quality) == 0) & np.isfinite(lc.time.value)]
    assert len(good) == int(np.sum(np.asarray(plain["flag"]) == 0)) >= 6
    binned = good.bin(time_bin_size=0.005)
    span = good.time.value.max() - good.time.value.min()
    assert 1 <= len(binned) <= math.ceil(span / 0.005) + 1 < len(good)
    kept = np.isfinite(np.asarray(binned.flux.value, float))
    assert kept.any() and np.allclose(np.nanmean(binned.flux.value), np.mean(good.flux.value), rtol=0.02)
    flat = good.flatten(window_length=5)
    assert len(flat) == len(good) and np.allclose(np.nanmedian(flat.flux.value), 1.0, atol=0.01)
    folded = good.fold(period=0.02)
    phase = np.asarray(folded.phase.value, float)
    assert len(folded) == len(good) and np.all(np.abs(phase) <= 0.01 + 1e-9)


def test_lightkurve_on_a_night_with_untimed_files_as_the_readme_says(reduced):
    """Unreadable files have NaN times; the README's way round astropy's masking bins and folds."""
    lk = pytest.importorskip("lightkurve")
    from astropy.time import Time

    _, out, _, _, _, _ = reduced
    t = Table.read(out / f"{STEM}.fits", hdu="LIGHTCURVE", mask_invalid=False)
    assert not np.all(np.isfinite(t["time"]))  # the case the README speaks of
    t = t[np.isfinite(t["time"])]
    lc = lk.LightCurve(time=Time(t["time"], format="jd", scale="utc"), flux=t["flux"], flux_err=t["flux_err"],
                       quality=t["quality"])
    good = lc[lc.quality == 0]
    assert len(good) == 8 and len(good.bin(time_bin_size=0.005)) < len(good)
    assert len(good.fold(period=0.02)) == len(good.flatten(window_length=5)) == 8


# -- metadata ---------------------------------------------------------------------------------------
def test_fits_metadata_stars_and_arrays(reduced):
    from reduce.lightcurve.schema import LIGHTCURVE_SCHEMA

    night, out, summary, _, _, _ = reduced
    truth = json.loads((night / "truth.json").read_text())
    with fits.open(out / f"{STEM}.fits") as hdul:
        h = hdul[0].header
        for key in ("OBJECT", "TELESCOP", "INSTRUME", "FILTER", "DATE-OBS", "EXPTIME", "OBSGEO-B",
                    "OBSGEO-L", "OBSGEO-H", "RA_OBJ", "DEC_OBJ", "APERTURE", "RECIPE", "RECIPVER"):
            assert key in h, key
        assert (h["OBJECT"], h["TELESCOP"], h["FILTER"], h["REDUCE_SCHEMA"]) == ("SIM-1", "SIM-60", "V",
                                                                                  LIGHTCURVE_SCHEMA)
        assert h["DATE-OBS"].startswith("2024-03-1") and h["EXPTIME"] > 0 and h["RECIPE"] == "exports.yaml"
        assert h["APERTURE"] == pytest.approx(summary["groups"][0]["aperture_px"], abs=1e-3)
        stars = Table.read(hdul["STARS"])
        n_stars = hdul["FLUXES"].data.shape[1]
        assert len(stars) == n_stars and list(stars["star"]) == list(range(n_stars))
        comps = sorted(int(s) for s in stars["star"][stars["comparison"]])
        assert comps == sorted(summary["groups"][0]["comparisons"])
        assert stars["weight"][stars["comparison"]].sum() == pytest.approx(1.0)
        target = h["TARGET"]
        lc = hdul["LIGHTCURVE"].data
        good = lc["flag"] == 0
        # the target's position on the reference: where it is on each frame, less the frame's shift
        x_ref = np.median(lc["x"][good] - lc["dx"][good])
        y_ref = np.median(lc["y"][good] - lc["dy"][good])
        assert math.hypot(stars["x"][target] - x_ref, stars["y"][target] - y_ref) < 0.5
        tx, ty = truth["stars"]["x"][truth["target"]], truth["stars"]["y"][truth["target"]]
        assert math.hypot(stars["x"][target] - tx, stars["y"][target] - ty) < 10  # the injected star
        assert np.all(stars["median_flux"][stars["comparison"]] > 0)
        for name, unit in (("FLUXES", "adu"), ("ERRORS", "adu"), ("APERTURES", "pix")):
            assert hdul[name].header["BUNIT"] == unit and "CNAME1" in hdul[name].header
        assert "frame" in hdul["FLUXES"].header["CNAME1"] and "aperture" in hdul["FLUXES"].header["CNAME3"]
        assert hdul["FLUXES"].data.shape[2] == len(hdul["LIGHTCURVE"].data)


def test_ecsv_carries_units_and_schema_and_csv_stays_plain(reduced):
    pd = pytest.importorskip("pandas")
    _, out, _, _, _, _ = reduced
    ecsv = out / f"{STEM}.ecsv"
    assert ecsv.read_text(encoding="utf-8").startswith("# %ECSV")
    t = Table.read(ecsv)
    assert str(t["time"].unit) == "d" and str(t["fwhm"].unit) == "pix" and t.meta["schema"] >= 2
    frame = pd.read_csv(ecsv, comment="#")
    plain = pd.read_csv(out / f"{STEM}.csv")  # the CSV: every reader's defaults
    assert list(frame.columns) == list(plain.columns) == list(t.colnames)
    assert np.allclose(frame["time"], plain["time"], equal_nan=True)


# -- exports checked against their specifications ---------------------------------------------------
AAVSO_REQUIRED = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE")
AAVSO_FILTER_CODES = {"U", "B", "V", "R", "I", "J", "H", "K", "TG", "TB", "TR", "CV", "CR", "SZ", "SU", "SG",
                      "SR", "SI", "STU", "STV", "STB", "STY", "STHBW", "STHBN", "MA", "MB", "MI", "ZS", "Y",
                      "HA", "HAC", "CBB"}


def check_aavso_extended(text: str) -> list[list[str]]:
    """The AAVSO Extended File Format 1.2: the six required parameters at the top, then one
    observation per line of 15 delimited fields with the published limits; no blank line."""
    lines = text.splitlines()
    params = {}
    for line in lines:
        if not line.startswith("#"):
            break
        if "=" in line:
            key, value = line[1:].split("=", 1)
            params[key.strip().upper()] = value.strip()
    assert set(AAVSO_REQUIRED) <= set(params), params
    assert params["TYPE"].upper() == "EXTENDED" and params["OBSCODE"] and params["SOFTWARE"]
    assert params["DATE"].upper() in ("JD", "HJD", "EXCEL") and params["OBSTYPE"].upper() in ("CCD", "DSLR", "PEP")
    delim = params["DELIM"]
    assert len(delim) == 1 and 32 <= ord(delim) <= 126 and delim not in "# "
    rows = []
    for line in lines:
        assert line.strip(), "blank lines must be commented out"
        if line.startswith("#"):
            continue
        f = line.split(delim)
        assert len(f) == 15, line
        name, date, mag, merr, filt, trans, mtype, cname, cmag, kname, kmag, amass, group, chart, notes = f
        assert 0 < len(name) <= 30
        assert len(date) <= 16 and float(date) > 2400000
        assert "." in mag and len(mag) <= 8 and math.isfinite(float(mag.lstrip("<")))
        assert merr == "na" or (len(merr) <= 6 and float(merr) >= 0)
        assert filt in AAVSO_FILTER_CODES
        assert trans.upper() in ("YES", "NO") and mtype.upper() in ("STD", "DIF", "ABS")
        if mtype.upper() == "DIF":
            assert cname != "na"  # differential magnitudes need the comparison named
        assert len(cname) <= 20 and len(kname) <= 20
        assert cmag == "na" or len(cmag) <= 8
        assert amass == "na" or (len(amass) <= 7 and float(amass) >= 1)
        assert group == "na" or len(group) <= 5
        assert chart == "na" or len(chart) <= 20
        assert notes
        rows.append(f)
    return rows


def read_exotic_prereduced(text: str):
    """EXOTIC's pre-reduced reader: each line split on ',', time, flux, error and airmass as
    floats; lines that do not convert are skipped (``exotic.py``, pre-reduced branch)."""
    times, fluxes, errors, airmasses = [], [], [], []
    for line in text.splitlines():
        try:
            f = line.split(",")
            t, fl, e, a = float(f[0]), float(f[1]), float(f[2]), float(f[3])
        except ValueError:
            continue
        times.append(t), fluxes.append(fl), errors.append(e), airmasses.append(a)
    return np.array(times), np.array(fluxes), np.array(errors), np.array(airmasses)


def test_aavso_extended_file_follows_the_specification(reduced):
    _, out, _, _, _, _ = reduced
    table = Table.read(out / f"{STEM}.csv")
    rows = check_aavso_extended((out / f"{STEM}_aavso.txt").read_text(encoding="ascii"))
    good = table[table["flag"] == 0]
    assert len(rows) == len(good) == 8
    assert {r[0] for r in rows} == {"SIM-1"} and {r[4] for r in rows} == {"V"} and {r[13] for r in rows} == {"X12345"}
    dates = np.array([float(r[1]) for r in rows])
    assert np.allclose(dates, good["time"], atol=1e-6)  # JD (UTC), mid-exposure
    mags = np.array([float(r[2]) for r in rows])
    assert np.allclose(mags, -2.5 * np.log10(good["flux"]), atol=1e-4)


def test_exotic_prereduced_file_reads_as_exotic_reads_it(reduced):
    _, out, _, _, _, _ = reduced
    table = Table.read(out / f"{STEM}.csv")
    good = table[table["flag"] == 0]
    t, f, e, a = read_exotic_prereduced((out / f"{STEM}_exotic.csv").read_text())
    assert len(t) == len(good) == 8 and np.all(np.isfinite(np.c_[t, f, e, a]))
    assert np.allclose(t, good["bjd_tdb"], atol=1e-6)  # BJD_TDB, what EXOTIC is told
    assert np.allclose(f, good["flux"], atol=1e-6) and np.allclose(e, good["flux_err"], atol=1e-6)
    assert np.allclose(a, good["airmass"], atol=1e-4) and np.all(a >= 1)


def test_aavso_filter_without_a_code_fails_clearly(reduced, tmp_path, capsys):
    night, _, _, _, _, recipe = reduced
    copy = tmp_path / "night"
    shutil.copytree(night, copy, ignore=shutil.ignore_patterns(".reduce"))
    for p in (copy / "light").glob("*.fits"):
        if p.name not in BAD:
            fits.setval(p, "FILTER", value="Halpha-narrow-7nm")
    assert run_cli("run", recipe, copy, "-o", tmp_path / "out", "-q", "--jobs", "1") in (1, 3)
    assert "no AAVSO code" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*_aavso.txt"))


@pytest.mark.parametrize("outputs, message", [
    ("{aavso: true}", "observer code"),
    ("{aavso: {chart: X1}}", "needs obscode"),
    ("{aavso: {obscode: 'A,B'}}", "without ','"),
    ("{exotic: 1}", "must be true or false"),
])
def test_export_options_are_validated(tmp_path, outputs, message):
    from reduce.model.errors import RecipeError
    from reduce.recipe import loads_recipe

    text = DEFAULT.read_text().replace("outputs: {csv: true, fits: true, plot: true, provenance: true}",
                                       f"outputs: {outputs}")
    with pytest.raises(RecipeError, match=message):
        loads_recipe(text)
