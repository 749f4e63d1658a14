"""`reduce run` end to end on small simulated nights: outputs, flags, errors and exit codes."""
from __future__ import annotations

import json
import os
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


def run_cli(*args) -> int:
    """Run the console script in-process; return its exit status."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def outputs(outdir: Path) -> dict:
    return {p.suffix if not p.stem.endswith("_reference") else "_reference" + p.suffix: p
            for p in outdir.iterdir()}


def test_run_writes_every_product(night_copy, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q") == 0
    files = outputs(out)
    assert {".csv", ".fits", ".png", "_reference.png", ".json"} <= set(files)
    table = Table.read(files[".csv"])
    for col in ("time", "bjd_tdb", "flux", "flux_err", "airmass", "fwhm", "sky", "dx", "dy", "x", "y",
                "flag", "file"):
        assert col in table.colnames, col
    assert len(table) == 12 and np.all(table["flag"] == 0)
    assert np.all(np.isfinite(table["flux"])) and abs(np.median(table["flux"]) - 1) < 0.01
    # BJD_TDB is later than JD UTC by TT-UTC (~69 s) +- light travel (<= 8.4 min)
    delta = (table["bjd_tdb"] - table["time"]) * 86400
    assert np.all((delta > 69 - 500) & (delta < 69 + 500))
    with fits.open(files[".fits"]) as hdul:
        assert hdul[1].header["REDUCE_SCHEMA"] == 3
        names = [h.name for h in hdul]
        assert "FLUXES" in names and "WEIGHTS" in names
        assert hdul["FLUXES"].data.shape[2] == 12
    prov = json.loads(files[".json"].read_text())
    assert len(prov["inputs"]) == 12 and all(len(i["sha256"]) == 64 for i in prov["inputs"])
    assert prov["comparisons"] and prov["aperture"]["radius_px"] > 0
    assert len(prov["calibration"]["bias"]) == 5
    assert sum(prov["extra"]["alignment_methods"].values()) == 12  # which method placed each frame


def test_light_curve_tracks_the_injected_signal(night_copy, tmp_path):
    from reduce.simulations import load_truth

    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q") == 0
    table = Table.read(outputs(out)[".csv"])
    truth = load_truth(night_copy / "truth.json")
    ratio = np.asarray(table["flux"]) / np.asarray(truth["dflux"])
    ratio /= np.median(ratio)
    injected = np.ptp(truth["dflux"])
    assert injected > 0.005
    assert np.std(ratio) < injected / 3, "the recovered curve does not follow the injected one"


def test_dry_run_prints_plan_and_writes_nothing(night_copy, capsys):
    assert run_cli("run", DEFAULT, night_copy, "--dry-run") == 0
    text = capsys.readouterr().out
    assert "Plan" in text and "12" in text
    assert not (night_copy / "reduced").exists()


def test_corrupt_and_starless_frames_are_flagged_and_the_night_goes_on(night_copy, tmp_path):
    lights = sorted((night_copy / "light").glob("*.fits"))
    # a truncated frame (unreadable) and a cloudy frame (no stars) among good ones
    data = lights[3].read_bytes()
    lights[3].write_bytes(data[: len(data) // 3])
    stayed_broken(lights[3])
    with fits.open(lights[5], mode="update") as hdul:
        hdul[0].data[:] = np.median(hdul[0].data)
    out = tmp_path / "out"
    code = run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json")
    assert code == 3
    table = Table.read(outputs(out)[".csv"])
    row = table[table["file"] == lights[5].name]
    assert len(row) == 1 and row["flag"][0] & 2 and not np.isfinite(row["flux"][0])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["exit_status"] == 3
    assert [u["file"] for u in summary["groups"][0]["unmeasured"]] == [lights[3].name]
    assert len(table) == len(lights) and table["flag"][table["file"] == lights[3].name][0] & 1
    assert summary["groups"][0]["flagged"][0]["reason"]


def test_missing_night_is_a_usage_error(tmp_path, capsys):
    assert run_cli("run", DEFAULT, tmp_path / "nope") == 2
    assert "not found" in capsys.readouterr().err


def test_empty_night_fails_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("run", DEFAULT, tmp_path / "empty", "-q") == 1
    assert "no light frames" in capsys.readouterr().err


def test_two_frame_night_reduces_with_the_best_signal_to_noise_aperture(tmp_path, capfd):
    """Two frames (a snapshot of a variable star) have no light-curve scatter to choose the aperture
    by: the group still reduces (exit 0), with the aperture of least median relative error of the
    target's differential flux (CCD equation), and says so in the log, summary and provenance."""
    import numpy as np

    night, out = tmp_path / "two", tmp_path / "out"
    assert run_cli("simulate", night, "--n-images", 2, "--size", 200, "--seed", 3, "-q") == 0
    assert run_cli("run", DEFAULT, night, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    assert "best signal-to-noise" in capfd.readouterr().err
    table = Table.read(next(out.glob("*.csv")), format="ascii.csv", comment="#")
    assert len(table) == 2 and np.isfinite(table["flux"]).all() and (table["flag"] == 0).all()
    assert np.allclose(table["flux"], 1.0, atol=0.02) and (table["flux_err"] > 0).all()
    prov = json.loads(next(out.glob("*.json")).read_text())
    assert prov["aperture"]["chosen_by"] == "snr"
    assert [w["code"] for w in json.loads((tmp_path / "s.json").read_text())["groups"][0]["warnings"]
            if w["code"] == "aperture_by_snr"] == ["aperture_by_snr"]


def test_bad_recipe_is_exit_2_with_line(night_copy, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detection:\n  - PointSourceDetektion: {threshold: 5}\n")
    assert run_cli("run", bad, night_copy) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:2" in err and "PointSourceDetection" in err


def test_target_outside_frame_is_a_usage_error(night_copy, tmp_path, capfd):
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--target", "5000,5000") == 2  # usage
    text = " ".join("".join(capfd.readouterr()).split())
    assert "target pixel (5000, 5000) is outside SIM-1_V_0001.fits (x 0..199, y 0..199)" in text
    assert not out.exists() or not any(out.iterdir())


def test_target_by_pixel_and_index_agree(night_copy, tmp_path):
    from reduce.simulations import load_truth

    truth = load_truth(night_copy / "truth.json")
    t = truth["target"]
    x, y = truth["stars"]["x"][t], truth["stars"]["y"][t]
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--reference", "first",
                   "--target", f"{x:.1f},{y:.1f}") == 0
    table = Table.read(outputs(out)[".csv"])
    assert abs(table["x"][0] - x) < 1.5 and abs(table["y"][0] - y) < 1.5


def test_missing_calibration_policy(tmp_path, capsys):
    from reduce.simulations import simulate_night

    night = tmp_path / "raw"
    simulate_night(night, seed=3, n_images=6, size=160, calibration=False)
    recipe = tmp_path / "strict.yaml"
    recipe.write_text(DEFAULT.read_text().replace("missing_calibration: warn", "missing_calibration: fail"))
    assert run_cli("run", recipe, night, "-o", tmp_path / "o1", "-q") == 1
    assert run_cli("run", DEFAULT, night, "-o", tmp_path / "o2", "-q") == 0
    prov = json.loads(next((tmp_path / "o2").glob("*.json")).read_text())
    assert prov["missing_calibration"] == "warn"


def test_output_names_are_sanitised(night_copy, tmp_path):
    for path in (night_copy / "light").glob("*.fits"):
        fits.setval(path, "OBJECT", value="HAT-P-32/b ../x")
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q") == 0
    names = [p.name for p in out.iterdir()]
    assert names and all("/" not in n and not n.startswith(".") for n in names)
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())


def test_undetected_target_is_measured_where_given_and_not_flagged(night_copy, tmp_path):
    """A target given by position on an empty patch of sky is measured there, not re-centred."""
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--reference", "first",
                   "--target", "60,150") in (0, 3)
    table = Table.read(outputs(out)[".csv"])
    assert not np.any(table["flag"] & 32), "a position given by hand must not be re-centred"
    assert abs(table["x"][0] - 60) < 0.01 and abs(table["y"][0] - 150) < 0.01


def test_errors_without_a_gain_follow_the_scatter_and_say_so(night_copy, tmp_path):
    """A camera that writes no GAIN (the HAT-P-32 night's): the CCD equation at 1 e-/ADU would give
    error bars several times the real scatter; they are scaled to the point-to-point scatter, with
    a warning naming the fix in the log, the summary and the provenance. With a gain: untouched."""
    from reduce.lightcurve.stats import p2p_scatter

    gain = None
    for path in sorted((night_copy / "light").glob("*.fits")):
        with fits.open(path, mode="update") as hdul:
            gain = hdul[0].header.pop("GAIN")
    assert gain and gain != 1.0  # the simulator's camera: 1 e-/ADU would misstate the errors
    out, summary = tmp_path / "out", tmp_path / "s.json"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--summary-json", summary) == 0
    table = Table.read(next(out.glob("*.csv")))
    flux, err = np.asarray(table["flux"]), np.asarray(table["flux_err"])
    assert np.median(err) == pytest.approx(p2p_scatter(flux), rel=1e-6)
    warnings = json.loads(summary.read_text())["groups"][0]["warnings"]
    assert [w["code"] for w in warnings] == ["errors_scaled"] and "`gain:`" in warnings[0]["message"]
    prov = json.loads(next(out.glob("*.json")).read_text())
    assert any(w["code"] == "errors_scaled" for w in prov["warnings"])
