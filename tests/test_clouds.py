"""Issue 18 items 4 and 5 on simulated nights, reduced by default (``reduce run recipes/default.yaml``).

Passing clouds (the simulator's ``clouds=N``: transparency dips to 0.3-0.8 of clear while the sky
rises x1.5-4 over 10-25 min) are what the ensemble corrects: every frame is kept and the light
curve stays at its noise floor, scored as ``test_hostile_nights`` scores (>= 99 % measured,
residual RMS <= 1.10x the floor of the frames measured). Before, the sky test set aside the
clouded frames as "sky outlier" (10 of 120 on seeds 23 and 27 at 200 px). The last-line outlier
guard never flags a sharp 2 %-deep transit nor a deep eclipse minimum, and flags a target hit.
A neighbour in a comparison's sky annulus once put a clouded night at 2x its floor (the clipped
median's bias follows the sky noise, which clouds raise, not the star): the annulus now leaves
neighbours out (``AnnulusBackground``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.simulations import simulate_night, simulate_observation
from reduce.simulations.truth import positions

from .test_hostile_nights import MAX_RATIO, MIN_MEASURED, reduce_and_score, reduce_run


def _table(out):
    return Table.read(next(out.glob("*.csv")), format="ascii.csv", comment="#")


@pytest.mark.parametrize("size, n_images, seed", [
    (300, 120, 31), (300, 120, 33),
    (200, 50, 5),  # 2.02x its floor with the clipped median sky: a comparison's neighbour in its annulus
])
def test_clouded_night_keeps_its_frames_at_the_noise_floor(tmp_path, size, n_images, seed):
    night, out = tmp_path / "night", tmp_path / "out"
    truth = simulate_night(night, n_images=n_images, size=size, clouds=3, signal="sine", seed=seed)
    tr = np.asarray(truth["frames"]["transparency"])
    assert tr.min() < 0.4 and (tr < 0.5).sum() >= 5  # deep clouds, several frames under them
    score = reduce_and_score(night, out, truth)
    detail = (f"seed {seed}: {score['measured']}/{score['n']} measured, {score['ratio']:.3f} x floor "
              f"(flagged: {str(score['flagged'])[:300]})")
    assert score["measured"] >= MIN_MEASURED * score["n"], detail
    assert score["ratio"] <= MAX_RATIO, detail


def _observation(tmp_path, dflux, seed):
    """A night of 150 one-minute frames of ``dflux``, reduced by default; the table and summary."""
    t = 2460385.55 + np.arange(dflux.size) * 70 / 86400
    night, out = tmp_path / "night", tmp_path / "out"
    simulate_observation(t, dflux, night, size=200, seed=seed, n_bias=2, n_darks=2, n_flats=5)
    reduce_run(night, out)
    return _table(out), json.loads(next(out.glob("*.json")).read_text())


def _trapezoid(n, centre, duration, ingress, depth):
    a = np.abs(np.arange(n) - centre)
    return 1 - depth * np.clip((duration / 2 - a) / ingress, 0, 1)


@pytest.mark.parametrize("name, dflux", [
    ("sharp 2 % transit, 3-frame ingress", _trapezoid(150, 75.3, 60, 3, 0.02)),
    ("deep eclipse minimum, 45 % V", _trapezoid(150, 75.3, 70, 35, 0.45)),
])
def test_the_guard_never_flags_a_transit_or_an_eclipse(tmp_path, name, dflux):
    table, prov = _observation(tmp_path, dflux, seed=41)
    flags = np.asarray(table["flag"])
    assert not np.any(flags & 64), (name, prov["flagged"])
    assert np.isfinite(np.asarray(table["flux"], float)).all()


def test_the_guard_flags_a_target_hit_with_its_deviation(tmp_path):
    dflux = _trapezoid(150, 75.3, 60, 8, 0.02)
    t = 2460385.55 + np.arange(150) * 70 / 86400
    night, out = tmp_path / "night", tmp_path / "out"
    truth = simulate_observation(t, dflux, night, size=200, seed=42, n_bias=2, n_darks=2, n_flats=5)
    x, y = positions(truth)
    k, hit = truth["target"], 100
    path = night / truth["frames"]["file"][hit]
    with fits.open(path, mode="update") as hdul:  # a satellite streak across the target's core
        data = hdul[0].data.astype(float)
        iy, ix = int(round(y[k, hit])), int(round(x[k, hit]))
        data[iy - 1:iy + 2, ix - 6:ix + 7] += 1500.0
        hdul[0].data = data.astype(hdul[0].data.dtype)
    reduce_run(night, out)
    table = _table(out)
    prov = json.loads(next(out.glob("*.json")).read_text())
    flagged = {f["file"]: f["reason"] for f in prov["flagged"]}
    name = path.name
    assert list(flagged) == [name], flagged
    assert flagged[name].startswith("target outlier: ") and "sigma from its neighbours (> 5)" in flagged[name]
    assert int(np.asarray(table["flag"])[hit]) & 64
    assert prov["flagged_by_reason"][0]["frames"] == 1
