"""What AstroImageJ users look for (issue 19, item 8), on a small simulated night (8 frames of
160x160 px, the reference not the first frame): the comparison-star figure, comparisons chosen by
position, the DS9 region file and the per-star measurement table, checked against the FITS product.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "recipes" / "default.yaml"
STEM = "2024-03-15_SIM-60_SIM-1_V"
CIRCLE = re.compile(r"^circle\(([-\d.]+),([-\d.]+),([\d.]+)\) # color=(\w+) text=\{([^}]*)\}$")


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


def _recipe(base: Path, name: str, differential: str, stars: bool = False) -> Path:
    """The default recipe with another ``differential:`` section (and the per-star table)."""
    text = DEFAULT.read_text()
    if stars:
        text = text.replace("outputs: {csv: true,", "outputs: {stars: true, csv: true,")
    start = text.index("differential:")
    end = text.index("missing_calibration:")
    path = base / f"{name}.yaml"
    path.write_text(text[:start] + differential + "\n" + text[end:])
    return path


def _stars(out: Path) -> list[dict]:
    with open(out / f"{STEM}_stars.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("aij")
    simulate_night(base / "night", seed=3, n_images=8, size=160, signal="sine")
    return base


@pytest.fixture(scope="module")
def by_index(night):
    """(output folder, exit status) of a run with comps [1, 2, 3] by index."""
    out = night / "out_index"
    status = run_cli("run", _recipe(night, "index", "differential: {comps: [1, 2, 3]}", stars=True), night / "night",
                     "-o", out)
    return out, status


@pytest.fixture(scope="module")
def product(by_index):
    out, status = by_index
    assert status == 0
    path = out / f"{STEM}.fits"
    with fits.open(path) as h:
        header, fluxes = h[0].header, h["FLUXES"].data.copy()
    return {"header": header, "stars": Table.read(path, hdu="STARS"), "fluxes": fluxes,
            "lc": Table.read(path, hdu="LIGHTCURVE"), "out": out}


def test_region_file_centres_are_the_table_positions_plus_one(product):
    """Every circle parses; the target and the comparisons (and only they) are drawn, at the STARS
    table's 0-based positions + 1 (DS9's image pixels), with the chosen aperture as radius."""
    lines = (product["out"] / f"{STEM}.reg").read_text().splitlines()
    assert lines[0] == "# Region file format: DS9 version 4.1"
    assert "image" in lines
    circles = [CIRCLE.match(line) for line in lines if line.startswith("circle(")]
    assert len(circles) == 4 and all(circles)
    stars = product["stars"]
    labels = {}
    for m in circles:
        x, y, r = (float(m.group(i)) for i in (1, 2, 3))
        index = int(re.match(r"[TCK](\d+)", m.group(5)).group(1))
        labels[index] = (m.group(4), m.group(5))
        assert x == pytest.approx(stars["x"][index] + 1, abs=1e-3)
        assert y == pytest.approx(stars["y"][index] + 1, abs=1e-3)
        assert r == pytest.approx(product["header"]["APERTURE"], abs=1e-3)
    target = int(product["header"]["TARGET"])
    assert labels[target] == ("red", f"T{target}")
    comps = sorted(k for k, (colour, _) in labels.items() if colour == "cyan")
    assert comps == [1, 2, 3] == sorted(np.flatnonzero(np.asarray(stars["comparison"], bool)).tolist())
    assert all(" w=0.333" in labels[c][1] for c in comps)  # equal weights of an explicit list


def _csv(out):
    """The light-curve CSV (the FITS LIGHTCURVE table holds numbers only: file names are in FILES)."""
    return next(p for p in sorted(Path(out).glob("*.csv")) if not p.name.endswith("_stars.csv"))


def test_stars_table_matches_the_product(product):
    """One row per frame per star; the target's flux in the chosen aperture is the FLUXES cube's,
    its positions the light curve's x, y (0-based file pixels), the roles those of the run."""
    rows = _stars(product["out"])
    n_ap, n_stars, n_frames = product["fluxes"].shape
    assert len(rows) == n_stars * n_frames
    assert list(rows[0]) == ["time", "bjd_tdb", "file", "star", "role", "x", "y", "flux", "flux_err", "sky",
                             "peak"]
    target, ap = int(product["header"]["TARGET"]), int(product["header"]["APINDEX"])
    mine = [r for r in rows if int(r["star"]) == target]
    assert {r["role"] for r in mine} == {"target"}
    lc = product["lc"]
    assert [r["file"] for r in mine] == [str(f) for f in Table.read(_csv(product["out"]), format="ascii.csv", comment="#")["file"]]
    np.testing.assert_allclose([float(r["flux"]) for r in mine], product["fluxes"][ap, target], rtol=1e-6)
    np.testing.assert_allclose([float(r["x"]) for r in mine], lc["x"], atol=1e-5)
    np.testing.assert_allclose([float(r["y"]) for r in mine], lc["y"], atol=1e-5)
    np.testing.assert_allclose([float(r["bjd_tdb"]) for r in mine], lc["bjd_tdb"], atol=1e-8)
    assert all(float(r["sky"]) > 0 and float(r["peak"]) > float(r["sky"]) for r in mine)
    comps = sorted({int(r["star"]) for r in rows if r["role"] == "comparison"})
    assert comps == [1, 2, 3]


def test_comparisons_by_position_choose_the_same_stars(night, by_index):
    """Comps given at their first-frame positions (from the per-star table, 0-based, as --target)
    choose the stars the indices chose; the reference is another frame, so the positions are mapped."""
    out, _ = by_index
    rows = _stars(out)
    first = rows[0]["file"]
    prov = json.loads((out / f"{STEM}.json").read_text())
    assert Path(str(prov["reference"])).name != first  # the positions must be mapped onto the reference
    pos = {int(r["star"]): (float(r["x"]), float(r["y"])) for r in rows if r["file"] == first}
    comps = ", ".join(f"{{x: {pos[i][0]:.1f}, y: {pos[i][1]:.1f}}}" for i in (3, 1, 2))
    out2 = night / "out_position"
    recipe = _recipe(night, "position", f"differential: {{comps: [{comps}]}}")
    assert run_cli("run", recipe, night / "night", "-o", out2) == 0
    prov2 = json.loads((out2 / f"{STEM}.json").read_text())
    assert sorted(prov2["comparisons"]) == [1, 2, 3]
    placed = prov2["extra"]["comparisons_placed"]  # how each position became a star, for the record
    assert [p["index"] for p in placed] == [3, 1, 2]
    assert all(p["given"]["frame"] == first and p["snap_distance_px"] < 1.0 for p in placed)
    with fits.open(out / f"{STEM}.fits") as a, fits.open(out2 / f"{STEM}.fits") as b:
        np.testing.assert_allclose(a["LIGHTCURVE"].data["flux"], b["LIGHTCURVE"].data["flux"], rtol=1e-9)


def test_a_comparison_position_on_no_star_is_a_clear_error(night, capsys):
    """A position far from every measured star fails the group (exit 1: the night's only group), naming the position, the
    nearest star and the 1-based/0-based pitfall, with no traceback."""
    out = night / "out_nostar"
    recipe = _recipe(night, "nostar", "differential: {comps: [{x: 5, y: 150}, {x: 30, y: 20}]}")
    assert run_cli("run", recipe, night / "night", "-o", out) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "comparison 0 at (5, 150)" in text and "no measured star within" in text
    assert "nearest is star #" in text and "1-based" in text
    assert "Traceback" not in text
    assert not (out / f"{STEM}.csv").exists()


def test_comparison_figure_written(product):
    """The comparison-star figure is written with the other figures."""
    png = product["out"] / f"{STEM}_comparisons.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
