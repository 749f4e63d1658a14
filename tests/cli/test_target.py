"""Target placement (pixels of the first or a named frame, mapped onto the reference through the
alignment, snapped to a star) and the cap on the stars measured on dense fields, end to end on
small simulated nights checked against the simulator's truth."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.simulations import load_truth, simulate_night
from tests.cli.test_run import DEFAULT, outputs, run_cli

REF = 4  # the reference frame of these tests: not the first one, and far from it


def _jitter(offsets):
    """A stand-in for the simulator's pointing drift: the given (dx, dy) per frame."""
    def drift(rng, n, shift, *args, **kwargs):
        dx, dy = np.zeros(n), np.zeros(n)
        dx[1:], dy[1:] = offsets[0][1:n], offsets[1][1:n]
        return dx, dy
    return drift


@pytest.fixture(scope="module")
def jitter_night(tmp_path_factory):
    """8 frames of 256x256 whose pointing jumps by up to +-6 px in x and y; frame REF is offset by
    (+6, -6) from the first frame (8.5 px: more than the snap radius)."""
    import reduce.simulations.scene as scene

    rng = np.random.default_rng(5)
    off = rng.uniform(-6, 6, (2, 8))
    off[:, REF] = (6.0, -6.0)
    real = scene._drift
    scene._drift = _jitter(off)
    try:
        dest = tmp_path_factory.mktemp("nights") / "jitter"
        simulate_night(dest, seed=21, n_images=8, size=256, n_stars=30, signal="flat", calibration=False)
    finally:
        scene._drift = real
    return dest


def _truth_xy(truth, star, frame):
    """(x, y) of a star on a frame, from the simulator's truth."""
    fr = truth["frames"]
    return truth["stars"]["x"][star] + fr["dx"][frame], truth["stars"]["y"][star] + fr["dy"][frame]


def _run(night, out, *args) -> int:
    return run_cli("run", DEFAULT, night, "-o", out, "-q", "--reference", str(REF), *args)


def _products(out: Path):
    files = outputs(out)
    return Table.read(files[".csv"]), json.loads(files[".json"].read_text())


def _check_on_target(table, truth, star, tol=0.3):
    """Every frame measured the star ``star`` (within ``tol`` px of the truth)."""
    for i in range(len(table)):
        x, y = _truth_xy(truth, star, i)
        assert abs(table["x"][i] - x) < tol and abs(table["y"][i] - y) < tol, (i, table["x"][i], x)
    assert np.all(table["flag"] == 0)


def test_target_on_the_first_frame_is_mapped_onto_another_reference(jitter_night, tmp_path):
    truth = load_truth(jitter_night)
    t = truth["target"]
    x0, y0 = _truth_xy(truth, t, 0)
    assert np.hypot(*np.subtract(_truth_xy(truth, t, REF), (x0, y0))) > 8  # the old reading missed it
    out = tmp_path / "out"
    assert _run(jitter_night, out, "--target", f"{x0 + 0.6:.1f},{y0 - 0.5:.1f}") == 0
    table, prov = _products(out)
    _check_on_target(table, truth, t)
    rec = prov["target"]
    first = Path(truth["frames"]["file"][0]).name
    assert Path(rec["given"]["frame"]).name == first and rec["given"]["x"] == pytest.approx(x0 + 0.6, abs=0.06)
    assert "alignment" in rec["mapped_by"]
    # mapped: where the given point (off the star by 0.8 px) falls on the reference; snapped: the star
    xr, yr = _truth_xy(truth, t, REF)
    assert rec["mapped"] == pytest.approx([xr + 0.6, yr - 0.5], abs=0.3)
    assert rec["snapped"] == pytest.approx([xr, yr], abs=0.3) and 0.4 < rec["snap_distance_px"] < 1.2
    assert rec["reference_xy"] == rec["snapped"] and rec["detected"]
    assert prov["reference"].endswith(Path(truth["frames"]["file"][REF]).name)


def test_target_on_a_named_frame(jitter_night, tmp_path):
    """X,Y@FILE on the command line and {x, y, frame} in a recipe: pixels of that frame."""
    truth = load_truth(jitter_night)
    t, k = truth["target"], 6
    name = Path(truth["frames"]["file"][k]).name
    xk, yk = _truth_xy(truth, t, k)
    out = tmp_path / "cli"
    assert _run(jitter_night, out, "--target", f"{xk:.2f},{yk:.2f}@{name}") == 0
    table, prov = _products(out)
    _check_on_target(table, truth, t)
    assert Path(prov["target"]["given"]["frame"]).name == name
    recipe = tmp_path / "named.yaml"
    recipe.write_text(DEFAULT.read_text().replace(
        "target: auto", f"target: {{x: {xk:.2f}, y: {yk:.2f}, frame: light/{name}}}"))
    out2 = tmp_path / "recipe"
    assert run_cli("run", recipe, jitter_night, "-o", out2, "-q", "--reference", str(REF)) == 0
    table2, prov2 = _products(out2)
    assert np.array_equal(table2["flux"], table["flux"]) and prov2["target"]["given"]["frame"] == f"light/{name}"


def test_position_with_no_star_is_measured_as_given_with_a_warning(jitter_night, tmp_path, capfd):
    truth = load_truth(jitter_night)
    xs, ys = np.asarray(truth["stars"]["x"]), np.asarray(truth["stars"]["y"])
    grid = np.array([(x, y) for x in range(40, 216, 4) for y in range(40, 216, 4)], float)
    empty = grid[np.argmax(np.min(np.hypot(grid[:, :1] - xs, grid[:, 1:] - ys), axis=1))]
    assert np.min(np.hypot(xs - empty[0], ys - empty[1])) > 15
    out = tmp_path / "out"
    assert _run(jitter_night, out, "--target", f"{empty[0]:g},{empty[1]:g}") in (0, 3)
    err = " ".join(capfd.readouterr().err.split())
    assert "WARNING jitter/2024-03-15_SIM-60_SIM-1_V: no star detected within" in err  # named group
    assert "measuring that position as given" in err
    table, prov = _products(out)
    fr = truth["frames"]
    for i in range(len(table)):  # the given point follows the pointing, never re-centred
        assert table["x"][i] == pytest.approx(empty[0] + fr["dx"][i], abs=0.3)
        assert table["y"][i] == pytest.approx(empty[1] + fr["dy"][i], abs=0.3)
    assert prov["target"]["snapped"] is None and not prov["target"]["detected"]


def test_unknown_target_frame_is_a_clear_error(jitter_night, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(jitter_night, out, "--target", "100,100@nosuchframe.fits") == 2  # a usage error: the target given is wrong
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "nosuchframe.fits" in text and "not a light frame" in text


def test_index_target_is_the_reference_list_index(jitter_night, tmp_path):
    """--target N means star N of the reference (figure, provenance), capped or not."""
    truth = load_truth(jitter_night)
    t = truth["target"]
    out = tmp_path / "pixel"
    x0, y0 = _truth_xy(truth, t, 0)
    assert _run(jitter_night, out, "--target", f"{x0:.1f},{y0:.1f}") == 0
    index = _products(out)[1]["target"]["index"]
    out2 = tmp_path / "index"
    assert _run(jitter_night, out2, "--target", str(index)) == 0
    table2, prov2 = _products(out2)
    _check_on_target(table2, truth, t)
    assert prov2["target"]["given"] == {"index": index}


# -- the cap on measured stars -------------------------------------------------------------

@pytest.fixture(scope="module")
def crowded_night(tmp_path_factory):
    dest = tmp_path_factory.mktemp("nights") / "crowded"
    simulate_night(dest, seed=8, n_images=5, size=300, n_stars=90, signal="flat", calibration=False)
    return dest


def _recipe(tmp_path, max_stars, max_comps=None) -> Path:
    text = DEFAULT.read_text().replace("  - AlignReferenceSources ",
                                       f"  - AlignReferenceSources: {{max_stars: {max_stars}}} ")
    if max_comps is not None:
        text = text.replace("max_comps: 50", f"max_comps: {max_comps}")
    path = tmp_path / f"cap{max_stars}.yaml"
    path.write_text(text)
    assert f"max_stars: {max_stars}" in text
    return path


def test_crowded_field_measures_at_most_max_stars_and_the_target(crowded_night, tmp_path):
    truth = load_truth(crowded_night)
    faint = len(truth["stars"]["x"]) - 3  # far fainter than the 20 brightest
    x, y = _truth_xy(truth, faint, 0)
    out = tmp_path / "out"
    assert run_cli("run", _recipe(tmp_path, 20), crowded_night, "-o", out, "-q", "--reference", "first",
                   "--target", f"{x:.1f},{y:.1f}") in (0, 3)
    table, prov = _products(out)
    with fits.open(outputs(out)[".fits"]) as hdul:
        n_measured = hdul["FLUXES"].data.shape[1]
    assert n_measured == 21 and prov["target"]["index"] == 20  # the 20 brightest, then the target
    assert prov["target"]["detected_index"] > 20
    assert max(prov["comparisons"]) < 20
    assert abs(table["x"][0] - x) < 0.3 and abs(table["y"][0] - y) < 0.3


def test_cap_leaves_the_target_unchanged(jitter_night, tmp_path):
    """Capped to 15 of 30 stars with the 8 comparisons among them: the same light curve."""
    truth = load_truth(jitter_night)
    x0, y0 = _truth_xy(truth, truth["target"], 0)
    results = []
    for cap in (15, "null"):
        out = tmp_path / f"cap{cap}"
        assert run_cli("run", _recipe(tmp_path, cap, max_comps=8), jitter_night, "-o", out, "-q",
                       "--reference", str(REF), "--target", f"{x0:.1f},{y0:.1f}") == 0
        table, prov = _products(out)
        with fits.open(outputs(out)[".fits"]) as hdul:
            results.append((table, prov, hdul["FLUXES"].data.shape[1]))
    (capped, pc, nc), (full, pf, nf) = results
    assert nc == 15 and nf >= 25
    assert len(pc["comparisons"]) == len(pf["comparisons"]) == 8  # indices differ: saturated stars dropped
    for col in ("flux", "flux_err", "x", "y"):
        assert np.allclose(capped[col], full[col], rtol=1e-9, atol=1e-9), col


def test_unusable_first_frame_falls_back_to_the_next_with_a_warning(night_copy, tmp_path, capfd):
    """The first frame shows no star (clouds): the position is taken on the next frame
    (consecutive frames barely move), said plainly, and the right star is measured."""
    truth = load_truth(night_copy)
    t = truth["target"]
    first = night_copy / truth["frames"]["file"][0]
    with fits.open(first, mode="update") as hdul:
        hdul[0].data[:] = np.median(hdul[0].data)
    x0, y0 = _truth_xy(truth, t, 0)
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "-q", "--reference", "middle",
                   "--target", f"{x0:.1f},{y0:.1f}") == 3  # the blank frame is flagged
    err = " ".join(capfd.readouterr().err.split())
    assert f"{first.name} could not be placed on the reference" in err and "taking that position on" in err
    table, prov = _products(out)
    for i in range(1, len(table)):
        x, y = _truth_xy(truth, t, i)
        assert abs(table["x"][i] - x) < 0.3 and abs(table["y"][i] - y) < 0.3
    assert Path(prov["target"]["read_on"]).name == Path(truth["frames"]["file"][1]).name
    assert Path(prov["target"]["given"]["frame"]).name == first.name
