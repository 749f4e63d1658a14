"""Issue 18 item 1: an uncalibrated CCD night full of hot pixels reduces by default.

The simulator's uncalibrated night (bias pedestal with structure, dark current, vignetting, no
calibration frame) with 1 pixel in 1,000 hot (50 ADU to saturation, the same pixels on every
frame). Before, such a night's reference PSF came out at ~0.5 px from hot pixels taken for
stars, the alignment measured no shift and 35 of 40 frames were flagged NO_PSF. Now the night's
hot pixels are found, repaired, counted in the summary's warnings, and the night is scored as the
hostile nights are (``tests/test_hostile_nights.py``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from reduce.simulations import simulate_night
from reduce.simulations.truth import positions
from tests.test_hostile_nights import MAX_RATIO, MIN_MEASURED, reduce_and_score


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_uncalibrated_night_with_hot_pixels_reduces_by_default(tmp_path, seed):
    night, out = tmp_path / "night", tmp_path / "out"
    truth = simulate_night(night, n_images=40, size=300, signal="sine", uncalibrated=True,
                           hot_pixels=1e-3, seed=seed)
    n_hot = len(truth["parameters"]["hot_pixels"])
    score = reduce_and_score(night, out, truth)
    detail = f"{score['measured']}/{score['n']} measured, {score['ratio']:.3f} x floor, flagged {score['flagged']}"
    assert score["measured"] >= MIN_MEASURED * score["n"], detail
    assert score["ratio"] <= MAX_RATIO, detail
    table = Table.read(next(out.glob("*.csv")), format="ascii.csv", comment="#")
    assert 3.0 <= np.nanmedian(np.asarray(table["fwhm"], float)) <= 4.3
    # the target is where the truth puts it on every frame: the alignment follows the drift
    x, y = positions(truth)
    t = truth["target"]
    names = {Path(f).name: i for i, f in enumerate(truth["frames"]["file"])}
    i = np.array([names[str(f)] for f in table["file"]])
    assert np.ptp(x[t, i]) + np.ptp(y[t, i]) > 2
    err = np.hypot(np.asarray(table["x"], float) - x[t, i], np.asarray(table["y"], float) - y[t, i])
    assert np.nanmax(err) < 0.5
    # the summary says how many hot pixels there were, and that darks would remove them (a few
    # of the faintest, 50 ADU, or on the frame's edge are not found)
    warning = next(w for w in json.loads(next(out.glob("*.json")).read_text())["warnings"]
                   if w["code"] == "hot_pixels")
    assert 0.85 * n_hot <= warning["pixels"] <= 1.1 * n_hot and "dark" in warning["message"]


def test_the_warning_needs_many_hot_pixels_and_suggests_darks_only_without_them(caplog):
    from types import SimpleNamespace

    from reduce.run.hotpixels import MANY, _report

    size = 1_000_000
    for darks, n, expect in (([], int(MANY * size) - 1, None), ([], 5000, "take dark frames"),
                             (["d.fits"], 5000, "darks do not remove them")):
        plan = SimpleNamespace(name="g", calibration=SimpleNamespace(darks=darks))
        warnings = []
        _report(plan, n, size, 7, warnings)
        if expect is None:
            assert warnings == []
        else:
            assert warnings[0]["code"] == "hot_pixels" and warnings[0]["pixels"] == n
            assert expect in warnings[0]["message"]


def test_no_map_from_fewer_than_three_frames(tmp_path):
    from types import SimpleNamespace

    from reduce.run.hotpixels import night_hot_pixels

    plan = SimpleNamespace(name="g", frames=["a.fits", "b.fits"], calibration=SimpleNamespace(darks=[]))
    assert night_hot_pixels(plan, [], loader=None) is None


def test_a_colour_mosaic_is_not_taken_for_hot_pixels(tmp_path, monkeypatch):
    """The red pixels of a raw colour frame on a reddish sky are each brighter than their four
    green neighbours: a pattern over a quarter of the frame, which is left alone."""
    from types import SimpleNamespace

    import reduce.run.hotpixels as hp

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(5):
        f = rng.normal(300.0, 5.0, (60, 60))
        f[0::2, 1::2] += 200.0                          # R of a GRBG mosaic
        frames.append(f.astype(np.float32))
    monkeypatch.setattr(hp, "_sample", lambda *a, **k: (np.stack(frames), 5.0, 1))
    plan = SimpleNamespace(name="g", frames=list("abcde"), calibration=SimpleNamespace(darks=[]))
    assert hp.night_hot_pixels(plan, [], loader=None) is None
