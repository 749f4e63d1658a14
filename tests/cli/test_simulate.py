"""``reduce simulate DEST``: writes a night, summarises it, refuses bad input with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from astropy.io import fits

from reduce.cli import main

SMALL = ["--n-images", "3", "--size", "96", "--n-stars", "8"]


def run(capsys, *args):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *map(str, args)])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_writes_night_and_summary(tmp_path, capsys):
    dest = tmp_path / "night"
    code, out, err = run(capsys, dest, *SMALL, "--seed", 4, "--signal", "transit", "--shift", 3)
    assert code == 0, err
    assert "Wrote 3 light frames (96x96 uint16" in out and "signal 'transit'" in out
    assert "5 bias, 5 dark, 15 flat" in out and "truth.json" in out
    truth = json.loads((dest / "truth.json").read_text())
    p = truth["parameters"]
    assert (p["seed"], p["n_images"], p["size"], p["n_stars"], p["signal"]) == (4, 3, 96, 8, "transit")
    assert len(list((dest / "light").glob("*.fits"))) == 3
    assert len(list((dest / "calibration").glob("*.fits"))) == 25


def test_quiet_float32_without_calibration(tmp_path, capsys):
    dest = tmp_path / "night"
    code, out, err = run(capsys, dest, *SMALL, "--dtype", "float32", "--no-calibration", "-q")
    assert code == 0, err
    assert out == ""
    assert not list((dest / "calibration").iterdir())
    light = sorted((dest / "light").iterdir())[0]
    assert fits.getheader(light)["BITPIX"] == -32


def test_non_empty_dest_needs_force(tmp_path, capsys):
    dest = tmp_path / "night"
    assert run(capsys, dest, *SMALL, "-q")[0] == 0
    code, out, err = run(capsys, dest, *SMALL)
    assert code == 2 and "not empty" in err and "--force" in err
    code, out, err = run(capsys, dest, "--n-images", "2", "--size", "96", "--force", "-q")
    assert code == 0, err
    assert len(list((dest / "light").iterdir())) == 2
    assert json.loads((dest / "truth.json").read_text())["parameters"]["n_images"] == 2


@pytest.mark.parametrize("args, message", [
    (["--size", "20"], "--size must be an integer >= 64"),
    (["--n-images", "0"], "--n-images must be an integer >= 1"),
    (["--n-stars", "2"], "--n-stars must be an integer >= 3"),
    (["--size", "96", "--n-stars", "100"], "too many"),
    (["--size", "96", "--shift", "80"], "--shift 80 px is too large"),
    (["--exptime", "-1"], "--exptime must be a positive number"),
    (["--seed", "-2"], "--seed must be an integer >= 0"),
    (["--signal", "boom"], "'boom' is not one of"),
    (["--dtype", "int8"], "'int8' is not one of"),
    (["--size", "5x6x4"], "--size must be N or WIDTHxHEIGHT"),
    (["--size", "521x32"], "--size height must be an integer >= 64"),
    (["--fwhm", "0.2"], "--fwhm must be between"),
    (["--dead-columns", "300"], "--dead-columns 300 leaves too little"),
    (["--saturated-neighbour", "1"], "--saturated-neighbour must be 0"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, args, message):
    code, out, err = run(capsys, tmp_path / "night", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "night").exists()


def test_dest_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.fits"
    f.write_text("x")
    code, out, err = run(capsys, f, *SMALL)
    assert code == 2 and "not a folder" in err


def test_console_script_help():
    """The installed entry point answers --help without importing the simulator."""
    code = ("import sys; from reduce.cli import main\n"
            "try:\n    main(['simulate', '--help'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0\n"
            "assert 'reduce.simulations' not in sys.modules and 'astropy' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--n-images" in r.stdout and "--no-calibration" in r.stdout


def test_hostile_options_reach_the_night(tmp_path, capsys):
    """A CCD window with dead columns and 3 stars, in twilight, jittered and rotating."""
    dest = tmp_path / "night"
    code, out, err = run(capsys, dest, "--n-images", "3", "--size", "521x64", "--n-stars", "3",
                         "--dead-columns", "6", "--twilight", "30", "--jitter", "2", "--rotation", "0.5")
    assert code == 0, err
    assert "Wrote 3 light frames (521x64 uint16" in out
    truth = json.loads((dest / "truth.json").read_text())
    p = truth["parameters"]
    assert p["size"] == [521, 64] and p["dead_columns"] == 6 and p["n_stars"] == 3
    assert p["conditions"] == {"jitter": 2.0, "rotation": 0.5, "twilight": 30.0, "dead_columns": 6}
    assert truth["frames"]["sky"][0] > 20000 and truth["frames"]["rotation"][-1] == 0.5
    assert fits.getdata(dest / truth["frames"]["file"][0]).shape == (64, 521)
