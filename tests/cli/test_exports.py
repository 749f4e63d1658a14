"""The AAVSO and EXOTIC exports of `reduce run` on small simulated nights (issue 19, item 5).

A night whose headers say ``r-Sloan`` and ``HATP-32`` gets the AAVSO code SR and the VSX name
HAT-P-32; ensemble photometry carries a check star (KNAME/KMAG), given by the recipe or chosen and
named; a filter AAVSO has no code for costs only the export (exit 3), and `validate --night` and
`--dry-run` say so beforehand; the EXOTIC export comes with EXOTIC's inits file.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from tests.cli.test_run import DEFAULT, run_cli

PLAIN = "outputs: {csv: true, fits: true, plot: true, provenance: true}"


def _headers(night: Path, **values) -> None:
    """Set header ``values`` in every light frame of ``night``."""
    for path in sorted((night / "light").glob("*.fits")):
        with fits.open(path, mode="update") as hdul:
            for k, v in values.items():
                hdul[0].header[k] = v


def _recipe(base: Path, outputs: str, differential: str | None = None) -> Path:
    text = DEFAULT.read_text()
    assert PLAIN in text
    text = text.replace(PLAIN, outputs)
    if differential:
        assert "\ndifferential:" in text
        text = text.replace("\ndifferential:", f"\ndifferential:\n  {differential}", 1)
    path = base / f"r{len(list(base.glob('r*.yaml')))}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def sloan(tmp_path_factory):
    """A 9-frame night in r-Sloan whose OBJECT is spelled HATP-32."""
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("sloan")
    simulate_night(base / "night", seed=7, n_images=9, size=140, signal="transit")
    _headers(base / "night", FILTER="r-Sloan", OBJECT="HATP-32")
    return base


def _only(out: Path, suffix: str) -> Path:
    found = sorted(out.glob(f"*{suffix}"))
    assert len(found) == 1, (suffix, [p.name for p in out.iterdir()])
    return found[0]


def _aavso_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="ascii").splitlines()
    assert lines[:6] == ["#TYPE=EXTENDED", "#OBSCODE=TST01", lines[2], "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD"]
    return [line.split(",") for line in lines if not line.startswith("#")]


# -- filter names and star names --------------------------------------------------------------------
@pytest.mark.parametrize("name, code", [("r-Sloan", "SR"), ("g'", "SG"), ("SDSS r", "SR"), ("sdss_i", "SI"),
                                        ("Sloan z'", "SZ"), ("u'", "SU"), ("r'", "SR"), ("V", "V"),
                                        ("Rc", "R"), ("Clear", "CV"), ("SDSS q", None), ("Halpha-wide", None)])
def test_filter_names_map_to_aavso_codes(name, code):
    from reduce.lightcurve.exports import aavso_filter

    assert aavso_filter(name) == code


@pytest.mark.parametrize("name, starid", [("HATP-32", "HAT-P-32"), ("HAT-P-32 b", "HAT-P-32"), ("hat_p_32", "HAT-P-32"),
                                          ("WASP12", "WASP-12"), ("Qatar 1b", "Qatar-1"), ("TrES-3", "TrES-3"),
                                          ("  RR   Lyr ", "RR Lyr"), ("SS_Cyg", "SS Cyg")])
def test_star_id_is_the_object_normalised(name, starid):
    from reduce.lightcurve.exports import aavso_starid

    assert aavso_starid(None, name) == starid
    assert aavso_starid("My Star", name) == "My Star"


# -- the AAVSO file ----------------------------------------------------------------------------------
def test_sloan_night_exports_sr_with_vsx_name_and_an_automatic_check_star(sloan, tmp_path):
    recipe = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}")
    log = tmp_path / "run.log"
    code = run_cli("run", recipe, sloan / "night", "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--log-file", log, "--summary-json", tmp_path / "s.json")
    group = json.loads((tmp_path / "s.json").read_text())["groups"][0]
    assert code in (0, 3) and group["export_errors"] == [] and code == (3 if group["flagged"] else 0)
    rows = _aavso_rows(_only(tmp_path / "out", "_aavso.txt"))
    table = Table.read(_only(tmp_path / "out", ".csv"))
    assert len(rows) == int(np.sum(table["flag"] == 0)) >= 7
    for r in rows:
        assert len(r) == 15 and r[0] == "HAT-P-32" and r[4] == "SR"
        assert (r[6], r[7], r[8]) == ("DIF", "ENSEMBLE", "na")  # ensemble: CMAG na, check star required
        assert r[9].startswith("star ") and len(r[9]) <= 20 and "." in r[10]
    kmag = np.array([float(r[10]) for r in rows])
    assert np.ptp(kmag) < 0.05  # a steady star
    check = int(rows[0][9].split()[1])
    with fits.open(_only(tmp_path / "out", ".fits")) as hdul:
        assert check != hdul[0].header["TARGET"]
    text = log.read_text()
    assert f"AAVSO check star: star {check} at (" in text and "chosen automatically" in text


def test_check_star_from_the_recipe_is_kept_out_of_the_ensemble(sloan, tmp_path):
    """By position (first frame's 0-based pixels): the nearest star, never a comparison."""
    night = tmp_path / "night"
    shutil.copytree(sloan / "night", night, ignore=shutil.ignore_patterns(".reduce"))
    truth = json.loads((night / "truth.json").read_text())
    first = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}")
    assert run_cli("run", first, night, "-o", tmp_path / "a", "-q", "--jobs", "1") in (0, 3)
    with fits.open(_only(tmp_path / "a", ".fits")) as hdul:
        stars, target = Table.read(hdul["STARS"]), hdul[0].header["TARGET"]
    comps = [int(s) for s in stars["star"][stars["comparison"]]]
    pick = comps[0]  # a comparison star of the first run: the recipe makes it the check star
    x, y = float(stars["x"][pick]) + 0.7, float(stars["y"][pick]) - 0.5
    recipe = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}", f"check: {{x: {x}, y: {y}}}")
    log = tmp_path / "run.log"
    assert run_cli("run", recipe, night, "-o", tmp_path / "b", "-q", "--jobs", "1", "--log-file", log) in (0, 3)
    rows = _aavso_rows(_only(tmp_path / "b", "_aavso.txt"))
    assert {r[9] for r in rows} == {f"star {pick}"} and all(np.isfinite(float(r[10])) for r in rows)
    assert "recipe" in rows[0][14]
    with fits.open(_only(tmp_path / "b", ".fits")) as hdul:
        stars = Table.read(hdul["STARS"])
    assert not stars["comparison"][pick] and pick != target
    assert f"AAVSO check star: star {pick} at" in log.read_text()
    prov = json.loads(_only(tmp_path / "b", ".fits").with_suffix(".json").read_text())
    assert prov["extra"]["aavso_check_star"]["index"] == pick
    assert prov["extra"]["aavso_check_star"]["chosen_by"] == "recipe differential: check"
    assert truth  # the simulated night's truth file is there (copied with the frames)


def test_a_check_position_with_no_star_costs_only_the_aavso_file(sloan, tmp_path):
    """... and the AAVSO file of an earlier run goes: it would not match the new light curve."""
    good = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}")
    run_cli("run", good, sloan / "night", "-o", tmp_path / "out", "-q", "--jobs", "1")
    assert len(list((tmp_path / "out").glob("*_aavso.txt"))) == 1
    recipe = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}", "check: {x: 2.0, y: 2.0}")
    code = run_cli("run", recipe, sloan / "night", "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--summary-json", tmp_path / "s.json")
    assert code == 3
    group = json.loads((tmp_path / "s.json").read_text())["groups"][0]
    assert group["status"] == "done" and "no measured star within 5 px" in group["export_errors"][0]
    assert not list((tmp_path / "out").glob("*_aavso.txt")) and list((tmp_path / "out").glob("*.fits"))


# -- a bad export setting never costs the night --------------------------------------------------------
@pytest.fixture(scope="module")
def halpha(tmp_path_factory):
    """A night in a filter AAVSO has no code for, and a recipe with both exports."""
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("halpha")
    simulate_night(base / "night", seed=8, n_images=8, size=140, signal="transit")
    _headers(base / "night", FILTER="Halpha-wide")
    return base, _recipe(base, "outputs: {plot: false, aavso: {obscode: TST01}, exotic: true}")


def test_unknown_filter_fails_the_export_alone(halpha, tmp_path):
    base, recipe = halpha
    log = tmp_path / "run.log"
    code = run_cli("run", recipe, base / "night", "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--summary-json", tmp_path / "s.json", "--log-file", log)
    assert code == 3
    summary = json.loads((tmp_path / "s.json").read_text())
    group = summary["groups"][0]
    assert group["status"] == "done" and summary["exit_status"] == 3
    assert len(group["export_errors"]) == 1 and "'Halpha-wide' has no AAVSO code" in group["export_errors"][0]
    assert any(w["code"] == "export_aavso_failed" for w in group["warnings"])
    out = tmp_path / "out"
    for suffix in (".ecsv", ".fits", "_exotic.csv", "_exotic_inits.json"):
        _only(out, suffix)
    assert not list(out.glob("*_aavso.txt"))
    prov = json.loads(_only(out, ".fits").with_suffix(".json").read_text())
    assert any("has no AAVSO code" in w["message"] for w in prov["warnings"])
    assert "has no AAVSO code" in log.read_text() and "the other products are written" in log.read_text()


def test_validate_and_dry_run_say_so_beforehand(halpha, tmp_path, capsys):
    base, recipe = halpha
    assert run_cli("validate", recipe) == 0  # the recipe alone is valid
    capsys.readouterr()
    assert run_cli("validate", recipe, "--night", base / "night") == 2
    err = capsys.readouterr().err
    assert "outputs:" in err and "'Halpha-wide' has no AAVSO code" in err
    assert run_cli("run", recipe, base / "night", "-o", tmp_path / "out", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "has no AAVSO code" in " ".join(out.split()) and not (tmp_path / "out").exists()


def test_exotic_inits_file_matches_the_prereduced_file(halpha, tmp_path):
    base, recipe = halpha
    run_cli("run", recipe, base / "night", "-o", tmp_path / "out", "-q", "--jobs", "1")
    inits = json.loads(_only(tmp_path / "out", "_exotic_inits.json").read_text())
    opt, user, planet = inits["optional_info"], inits["user_info"], inits["planetary_parameters"]
    data = Path(opt["Pre-reduced File:"])
    assert data.is_absolute() and data == _only(tmp_path / "out", "_exotic.csv").resolve()
    assert opt["Pre-reduced File Time Format (BJD_TDB, JD_UTC, MJD_UTC)"] == "BJD_TDB"
    assert opt["Pre-reduced File Units of Flux (flux, magnitude, millimagnitude)"] == "flux"
    assert opt["Exposure Time (s)"] > 0
    truth = json.loads((base / "night" / "truth.json").read_text())
    header = fits.getheader(sorted((base / "night" / "light").glob("*.fits"))[0])
    for key in ("Obs. Latitude", "Obs. Longitude"):
        assert user[key][0] in "+-" and float(user[key]) == pytest.approx(
            header["SITELAT" if "Lat" in key else "SITELONG"], abs=1e-4)
    assert user["Observation date"].startswith(header["DATE-OBS"][8:10]) and truth
    assert planet["Planet Name"] == "SIM-1 b" and planet["Host Star Name"] == "SIM-1"
    assert planet["Target Star RA"].count(":") == 2 and planet["Target Star Dec"][0] in "+-"
    rows = [line for line in data.read_text().splitlines() if not line.startswith("#")]
    assert len(rows) >= 6 and all(len(r.split(",")) == 4 for r in rows)


def test_automatic_check_star_is_outside_a_small_ensemble(sloan, tmp_path):
    """With 3 comparisons, the check star is the steadiest of the other stars, and no warning."""
    recipe = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}}")
    text = recipe.read_text()
    assert "max_comps: 50" in text
    recipe.write_text(text.replace("max_comps: 50", "max_comps: 3"))
    log = tmp_path / "run.log"
    run_cli("run", recipe, sloan / "night", "-o", tmp_path / "out", "-q", "--jobs", "1", "--log-file", log,
            "--summary-json", tmp_path / "s.json")
    group = json.loads((tmp_path / "s.json").read_text())["groups"][0]
    assert len(group["comparisons"]) == 3 and group["export_errors"] == []
    rows = _aavso_rows(_only(tmp_path / "out", "_aavso.txt"))
    check = int(rows[0][9].split()[1])
    assert check not in group["comparisons"] and "(automatic)" in rows[0][14]
    assert "steadiest star outside the ensemble" in log.read_text()
    assert not any(w["code"] == "aavso_check_in_ensemble" for w in group["warnings"])


REAL = Path("/work/shared/data/real/exotic_hatp32")


@pytest.mark.skipif(not REAL.is_dir(), reason="the shared HAT-P-32 night is not here")
def test_real_hatp32_night_exports_and_lightkurve(tmp_path):
    """HAT-P-32 b (142 frames, Clear): AAVSO rows for every good frame with a steady check star
    outside the 38-star ensemble, EXOTIC's inits, and lightkurve's bin/flatten/fold on the FITS."""
    recipe = _recipe(tmp_path, "outputs: {plot: false, aavso: {obscode: TST01}, exotic: true}")
    out = tmp_path / "out"
    code = run_cli("run", recipe, REAL, "-o", out, "--index", tmp_path / "index.db", "--target", "423.2,286.0",
                   "-q", "--summary-json", tmp_path / "s.json")
    group = json.loads((tmp_path / "s.json").read_text())["groups"][0]
    assert code in (0, 3) and group["export_errors"] == []
    table = Table.read(_only(out, "Clear.csv"))
    rows = _aavso_rows(_only(out, "_aavso.txt"))
    assert len(rows) == int(np.sum(table["flag"] == 0)) > 130
    assert {(r[0], r[4], r[7]) for r in rows} == {("HAT-P-32", "CV", "ENSEMBLE")}
    check = int(rows[0][9].split()[1])
    assert check not in group["comparisons"]
    kmag = np.array([float(r[10]) for r in rows if r[10] != "na"])
    mag = np.array([float(r[2]) for r in rows])
    assert len(kmag) > 0.95 * len(rows) and np.std(kmag) < 0.01 < np.ptp(mag)  # steady check, a transit
    inits = json.loads(_only(out, "_exotic_inits.json").read_text())
    assert inits["planetary_parameters"]["Planet Name"] == "HAT-P-32 b"
    assert inits["user_info"]["Filter Name (aavso.org/filters)"] == "CV"
    assert Path(inits["optional_info"]["Pre-reduced File:"]).is_file()
    lk = pytest.importorskip("lightkurve")
    lc = lk.LightCurve.read(_only(out, ".fits"), hdu="LIGHTCURVE", astropy_native=True)
    good = lc[lc.quality == 0]
    assert len(good.bin(time_bin_size=0.005)) < len(good) == len(good.flatten(window_length=31))
    assert len(good.fold(period=2.15)) == len(good)
