"""Issue 19: the target is never a silent guess, one star numbering everywhere, and the target's
own coordinates (not the telescope's pointing) for BJD_TDB, airmass and RA_OBJ/DEC_OBJ.

On small simulated nights whose frames carry a WCS on all, none or one light frame
(``simulate_night(wcs=...)``), and on the real HAT-P-32 night (no WCS) when present."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.simulations import load_truth, simulate_night
from tests.cli.test_run import DEFAULT, outputs, run_cli

REF = 2  # the reference frame: not the first one


@pytest.fixture(scope="module")
def bare_night(tmp_path_factory):
    """6 frames of 160x160, no WCS on any (a camera without plate solving)."""
    dest = tmp_path_factory.mktemp("nights") / "bare"
    simulate_night(dest, seed=4, n_images=6, size=160, signal="flat", calibration=False, wcs="none",
                   shift=8.0)
    return dest


@pytest.fixture(scope="module")
def one_wcs_night(tmp_path_factory):
    """The same kind of night with a WCS on light frame 4 only (not the reference, not the first)."""
    dest = tmp_path_factory.mktemp("nights") / "one_wcs"
    simulate_night(dest, seed=4, n_images=6, size=160, signal="flat", calibration=False, wcs=[4],
                   shift=8.0)
    return dest


def _products(out: Path):
    files = outputs(out)
    return (Table.read(files[".csv"]), json.loads(files[".json"].read_text()),
            fits.getheader(files[".fits"]), Table.read(files[".ecsv"]))


def _truth_xy(truth, star, frame):
    fr = truth["frames"]
    return truth["stars"]["x"][star] + fr["dx"][frame], truth["stars"]["y"][star] + fr["dy"][frame]


def test_simulated_wcs_puts_the_target_at_the_header_coordinates(one_wcs_night):
    from astropy.wcs import WCS

    truth = load_truth(one_wcs_night)
    lights = sorted((one_wcs_night / "light").glob("*.fits"))
    assert [("CTYPE1" in fits.getheader(p)) for p in lights] == [False] * 4 + [True, False]
    assert truth["parameters"]["wcs_frames"] == [4]
    h = fits.getheader(lights[4])
    x, y = WCS(h).world_to_pixel_values(h["RA"], h["DEC"])
    assert np.hypot(x - _truth_xy(truth, truth["target"], 4)[0], y - _truth_xy(truth, truth["target"], 4)[1]) < 0.01


def test_auto_without_wcs_exits_3_and_names_the_measured_star_everywhere(bare_night, tmp_path, capfd,
                                                                         monkeypatch):
    import reduce.figures.helper as helper

    titles = []
    real_job = helper.lightcurve_job
    monkeypatch.setattr(helper, "lightcurve_job",
                        lambda *a, **k: titles.append(k.get("info")) or real_job(*a, **k))
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    assert run_cli("run", DEFAULT, bare_night, "-o", out, "--summary-json", summary) == 3
    text = " ".join("".join(capfd.readouterr()).split())
    table, prov, header, ecsv = _products(out)
    n = int(header["TARGET"])
    x, y = prov["target"]["reference_xy"]
    said = f"target NOT identified: star #{n} at ({x:.1f}, {y:.1f})"
    assert said in text and "--target X,Y" in text  # the log
    assert f"target: star #{n} at ({x:.1f}, {y:.1f}) on the reference, NOT identified" in text  # summary
    assert prov["target"]["guessed"] is True and prov["target"]["index"] == n == ecsv.meta["target"]
    assert "brightest unsaturated star" in prov["target"]["chosen_by"]
    assert any(w["code"] == "target_guessed" and said in w["message"] for w in prov["warnings"])
    group = json.loads(summary.read_text())["groups"][0]
    assert group["target"]["index"] == n and group["target"]["guessed"] is True
    assert any(w["code"] == "target_guessed" for w in group["warnings"])
    assert titles and f"NOT identified: star {n}" in titles[0]["target"]  # the figure's title
    # an unchanged re-run is still a guess: exit 3 again
    assert run_cli("run", DEFAULT, bare_night, "-o", out, "-q") == 3
    # --target N, with the N printed, measures that same star and is no guess
    out2 = tmp_path / "out2"
    assert run_cli("run", DEFAULT, bare_night, "-o", out2, "-q", "--target", str(n)) == 0
    table2, prov2, header2, _ = _products(out2)
    assert int(header2["TARGET"]) == n and "guessed" not in prov2["target"]
    assert np.allclose(table2["x"], table["x"]) and np.allclose(table2["flux"], table["flux"])


def test_auto_places_the_target_through_the_wcs_of_a_non_reference_frame(one_wcs_night, tmp_path):
    truth = load_truth(one_wcs_night)
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, one_wcs_night, "-o", out, "-q", "--reference", str(REF)) == 0
    table, prov, header, _ = _products(out)
    for i in range(len(table)):  # the simulator's target on every frame
        tx, ty = _truth_xy(truth, truth["target"], i)
        assert abs(table["x"][i] - tx) < 0.3 and abs(table["y"][i] - ty) < 0.3
    assert "SIM-1_V_0005.fits" in prov["target"]["placed_by"] and "alignment" in prov["target"]["placed_by"]
    # the target's RA/Dec through that frame's WCS, the pointing kept apart
    assert abs(header["RA_OBJ"] - truth["parameters"]["ra"]) < 1 / 3600
    assert abs(header["DEC_OBJ"] - truth["parameters"]["dec"]) < 1 / 3600
    assert header["BJDCOORD"] == "TARGET" and "RA_PNT" in header


def test_the_log_and_the_products_use_one_numbering_on_a_capped_field(tmp_path, capfd):
    """The log's "snapped to star #N" is the N of the FITS TARGET, the ECSV and the provenance, not
    the detection index, when the measured stars are capped; a faint target kept beside the
    brightest stars is #N in this run only, and the log gives the position that names it again."""
    night = tmp_path / "crowded"
    simulate_night(night, seed=8, n_images=4, size=300, n_stars=90, signal="flat", calibration=False,
                   wcs="none")
    truth = load_truth(night)
    recipe = tmp_path / "cap.yaml"
    recipe.write_text(DEFAULT.read_text().replace("  - AlignReferenceSources ",
                                                  "  - AlignReferenceSources: {max_stars: 20} "))
    faint = len(truth["stars"]["x"]) - 3  # far fainter than the 20 brightest
    x0, y0 = _truth_xy(truth, faint, 0)
    out = tmp_path / "out"
    assert run_cli("run", recipe, night, "-o", out, "--target", f"{x0:.2f},{y0:.2f}") == 0
    text = " ".join("".join(capfd.readouterr()).split())
    n = int(re.search(r"snapped to star #(\d+) at", text).group(1))
    table, prov, header, ecsv = _products(out)
    assert n == int(header["TARGET"]) == prov["target"]["index"] == ecsv.meta["target"] == 20
    assert prov["target"]["detected_index"] != n  # the detection index is not what is shown
    again = re.search(r"give it again by position \(--target (\S+@\S+)\)", text).group(1)
    out2 = tmp_path / "out2"
    assert run_cli("run", recipe, night, "-o", out2, "-q", "--target", again) == 0
    table2, prov2, header2, _ = _products(out2)
    assert int(header2["TARGET"]) == n
    assert np.allclose(table2["x"], table["x"], atol=0.05) and np.allclose(table2["y"], table["y"], atol=0.05)


def test_target_n_from_the_log_measures_the_same_star(bare_night, tmp_path, capfd):
    truth = load_truth(bare_night)
    x0, y0 = _truth_xy(truth, truth["target"], 0)
    out, out2 = tmp_path / "out", tmp_path / "out2"
    assert run_cli("run", DEFAULT, bare_night, "-o", out, "--reference", str(REF),
                   "--target", f"{x0 + 0.7:.1f},{y0 - 0.6:.1f}") == 0
    text = " ".join("".join(capfd.readouterr()).split())
    n = int(re.search(r"snapped to star #(\d+) at", text).group(1))
    table, prov, header, _ = _products(out)
    assert n == int(header["TARGET"]) == prov["target"]["index"]
    assert run_cli("run", DEFAULT, bare_night, "-o", out2, "-q", "--reference", str(REF), "--target", str(n)) == 0
    table2 = _products(out2)[0]
    assert np.allclose(table2["x"], table["x"]) and np.allclose(table2["flux"], table["flux"])


def test_coords_give_the_target_bjd_airmass_and_ra_obj(bare_night, tmp_path):
    from reduce.ephemeris import bjd_tdb

    truth = load_truth(bare_night)
    t = truth["target"]
    x0, y0 = _truth_xy(truth, t, 0)
    ra, dec = truth["parameters"]["ra"], truth["parameters"]["dec"]
    target = f"{x0:.1f},{y0:.1f}"
    out_p, out_c = tmp_path / "pointing", tmp_path / "coords"
    assert run_cli("run", DEFAULT, bare_night, "-o", out_p, "-q", "--target", target) == 0
    coords = f"{ra + 0.3:.6f} {dec - 0.2:+.6f}"  # 0.3 deg off the pointing
    assert run_cli("run", DEFAULT, bare_night, "-o", out_c, "-q", "--target", target, "--coords", coords) == 0
    tp, prov_p, hp, ep = _products(out_p)
    tc, prov_c, hc, ec = _products(out_c)
    # without coordinates: the pointing, said, and never written as the target's
    assert "RA_OBJ" not in hp and hp["BJDCOORD"] == "POINTING" and hp["RA_PNT"] == pytest.approx(ra, abs=1e-6)
    assert any(w["code"] == "bjd_from_pointing" for w in prov_p["warnings"])
    assert "target_ra" not in ep.meta and ep.meta["pointing_ra"] == pytest.approx(ra, abs=1e-6)
    # with them: RA_OBJ, BJD_TDB for the target; the pointing still RA_PNT
    assert hc["RA_OBJ"] == pytest.approx(ra + 0.3, abs=1e-6) and hc["DEC_OBJ"] == pytest.approx(dec - 0.2, abs=1e-6)
    assert hc["RA_PNT"] == pytest.approx(ra, abs=1e-6) and hc["BJDCOORD"] == "TARGET"
    site = truth["parameters"]["site"]
    expected = bjd_tdb(np.asarray(tc["time"]), ra + 0.3, dec - 0.2, site["latitude"], site["longitude"],
                       site["elevation"])
    assert np.allclose(tc["bjd_tdb"], expected, rtol=0, atol=1e-8)
    shift = (np.asarray(tc["bjd_tdb"]) - np.asarray(tp["bjd_tdb"])) * 86400
    assert np.all(np.abs(shift) > 0.1)  # 0.3 deg: a measurable light-time difference
    assert not any(w["code"] == "bjd_from_pointing" for w in prov_c["warnings"])
    assert prov_c["target"]["coords"]["from"].startswith("given")


def test_coords_from_a_recipe_and_from_the_config(bare_night, tmp_path):
    truth = load_truth(bare_night)
    x0, y0 = _truth_xy(truth, truth["target"], 0)
    recipe = tmp_path / "coords.yaml"
    recipe.write_text(DEFAULT.read_text().replace(
        "target: auto", f'target: {{x: {x0:.1f}, y: {y0:.1f}, coords: "10:30:00 -09:30:00"}}'))
    out = tmp_path / "recipe"
    assert run_cli("run", recipe, bare_night, "-o", out, "-q") == 0
    h = _products(out)[2]
    assert h["RA_OBJ"] == pytest.approx(157.5) and h["DEC_OBJ"] == pytest.approx(-9.5)
    config = tmp_path / "config.yaml"
    config.write_text('version: 1\ntargets:\n  "sim 1": "157.25 -9.75"\n')  # OBJECT 'SIM-1'
    out = tmp_path / "config"
    assert run_cli("run", DEFAULT, bare_night, "-o", out, "-q", "--target", f"{x0:.1f},{y0:.1f}",
                   "--config", config) == 0
    h, prov = _products(out)[2], _products(out)[1]
    assert h["RA_OBJ"] == pytest.approx(157.25) and h["DEC_OBJ"] == pytest.approx(-9.75)
    assert prov["target"]["coords"]["from"] == "config targets: sim 1"


def test_bad_coords_are_usage_errors(bare_night, tmp_path, capsys):
    assert run_cli("run", DEFAULT, bare_night, "-o", tmp_path / "o", "--coords", "10:30") == 2
    assert "--coords '10:30'" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text('version: 1\ntargets:\n  X: "99:00:00 +95:00:00"\n')
    assert run_cli("run", DEFAULT, bare_night, "-o", tmp_path / "o", "--config", config) == 2
    assert "targets.X" in capsys.readouterr().err


def test_simulate_wcs_option_is_checked(tmp_path, capsys):
    assert run_cli("simulate", tmp_path / "n", "--n-images", "3", "--size", "64", "--wcs", "7", "-q") == 2
    assert "wcs frame numbers must be within 0..2" in capsys.readouterr().err


def test_recipe_target_coords_parse_and_round_trip():
    from reduce.recipe.targets import TargetSpec, coords_from_string, parse_target

    ra, dec = coords_from_string("02:04:10.3 +46:41:16")
    assert ra == pytest.approx(31.042917, abs=1e-6) and dec == pytest.approx(46.687778, abs=1e-6)
    assert coords_from_string("02 04 10.3 +46 41 16") == (ra, dec)
    assert coords_from_string("31.0429 46.6878") == (31.0429, 46.6878)
    problems = []
    report = lambda path, msg, hint=None: problems.append(msg)  # noqa: E731
    spec = parse_target({"x": 3, "y": 4, "coords": "02:04:10.3 +46:41:16"}, report)
    assert spec.kind == "pixel" and spec.coords == (ra, dec) and not problems
    assert parse_target(spec.to_plain(), report) == spec
    auto = parse_target({"coords": [31.0, 46.0]}, report)
    assert auto.kind == "auto" and auto.coords == (31.0, 46.0) and parse_target(auto.to_plain(), report) == auto
    index = parse_target({"index": 5, "coords": "31 46"}, report)
    assert index.kind == "index" and index.index == 5 and parse_target(index.to_plain(), report) == index
    assert TargetSpec().coords is None
    parse_target({"x": 3, "y": 4, "coords": "nonsense"}, report)
    assert problems and "coords" in problems[-1]


# -- the real night ---------------------------------------------------------------------------

HATP32_FIRST_FRAME_XY = "423.2,286.0"
HATP32_COORDS = "02:04:10.3 +46:41:16"


def test_real_hatp32_auto_is_a_named_guess_and_coords_move_bjd(real_data, tmp_path, capfd):
    night = real_data / "exotic_hatp32"
    if not night.is_dir():
        pytest.skip(f"{night} not available")
    index = tmp_path / "index.sqlite"
    auto, given = tmp_path / "auto", tmp_path / "given"
    assert run_cli("run", DEFAULT, night, "-o", auto, "--index", index, "-q") == 3
    err = " ".join("".join(capfd.readouterr()).split())
    _, prov, header, _ = _products(auto)
    n = int(header["TARGET"])
    assert f"target NOT identified: star #{n}" in err and "--target X,Y" in err
    assert prov["target"]["guessed"] is True
    assert run_cli("run", DEFAULT, night, "-o", given, "--index", index, "--target", HATP32_FIRST_FRAME_XY,
                   "--coords", HATP32_COORDS) == 0
    err = " ".join("".join(capfd.readouterr()).split())
    m = int(re.search(r"snapped to star #(\d+) at \(394\.\d, 321\.\d\)", err).group(1))
    table, prov, header, _ = _products(given)
    assert m == int(header["TARGET"]) == prov["target"]["index"] != n  # HAT-P-32 is not the guess
    assert header["RA_OBJ"] == pytest.approx(31.042917, abs=1e-5)
    assert header["RA_PNT"] == pytest.approx(31.3121, abs=1e-3)  # the pointing, kept apart
    assert "OBSGEO-H" not in header and "OBSGEO-B" in header  # unknown elevation: left out, said
    assert any(w["code"] == "no_elevation" for w in prov["warnings"])
    # the pointing is 12 arcmin off: BJD_TDB moves by ~1.2 s with the target's coordinates
    pointing = tmp_path / "pointing"
    assert run_cli("run", DEFAULT, night, "-o", pointing, "--index", index, "-q", "--target", str(m)) == 0
    tp = _products(pointing)[0]
    assert np.allclose(tp["x"], table["x"]) and np.allclose(tp["flux"], table["flux"])  # same star
    shift = (np.asarray(table["bjd_tdb"]) - np.asarray(tp["bjd_tdb"])) * 86400
    assert np.all((np.abs(shift) > 0.9) & (np.abs(shift) < 1.5)), shift[:3]
