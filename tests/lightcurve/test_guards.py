"""The differential step's guards: clouds set a frame aside only past a stated light loss; a
target outlier goes, a comparison's jump, a transit and an eclipse do not."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.lightcurve import Fluxes
from reduce.lightcurve.guards import (MAX_LIGHT_LOSS, comparison_light, ensemble_error,
                                      light_loss_frames, neighbour_deviation)
from reduce.model.flags import Flag


def night(signal=None, *, n=400, transparency=None, seed=0, n_stars=12):
    """Aperture fluxes (3 apertures) of a night of 1-min frames: star 0 the target (x ``signal``),
    every star dimmed by ``transparency``, photon and sky noise (~0.2 % on the target)."""
    rng = np.random.default_rng(seed)
    t = 2460000.5 + np.arange(n) / 1440
    base = np.geomspace(5e5, 5e4, n_stars)
    base[0] = 3e5
    intrinsic = np.ones((n_stars, n))
    if signal is not None:
        intrinsic[0] = signal
    tr = np.ones(n) if transparency is None else transparency
    true = base[None, :, None] * np.array([0.6, 0.9, 0.97])[:, None, None] * intrinsic * tr
    var = true + np.array([30.0, 70.0, 120.0])[:, None, None] * 400.0
    flux = true + rng.standard_normal(true.shape) * np.sqrt(var)
    return Fluxes(t, flux, np.sqrt(var), apertures=[3.0, 5.0, 7.0], target=0,
                  files=[f"f{i:04d}.fits" for i in range(n)])


def trapezoid(n, centre, duration, ingress, depth):
    """A transit (or eclipse) of ``depth``, ``duration`` and ``ingress`` in frames."""
    a = np.abs(np.arange(n) - centre)
    return 1 - depth * np.clip((duration / 2 - a) / ingress, 0, 1)


# ---- clouds: transparency is what the ensemble corrects ----

def test_comparison_light_is_the_common_transparency():
    tr = 1 - 0.7 * np.exp(-0.5 * ((np.arange(400) - 200) / 20) ** 2)
    fl = night(transparency=tr)
    light = comparison_light(fl.fluxes[1], 0)
    assert np.allclose(light / np.median(light), tr / np.median(tr), atol=0.01)


def test_frames_go_only_past_the_stated_light_loss():
    light = np.array([1.0, 0.9, 0.6, 0.51, 0.49, 0.15, np.nan])
    keep, reason = light_loss_frames(light, 0.5)
    assert keep.tolist() == [True, True, True, True, False, False, True]
    assert reason[4] == "clouds: the comparisons lost 51 % of their light (> 50 %)"
    keep, reason = light_loss_frames(light, MAX_LIGHT_LOSS)  # default: 80 %
    assert MAX_LIGHT_LOSS == 0.8 and keep.tolist() == [True] * 5 + [False, True]
    assert reason[5] == "clouds: the comparisons lost 85 % of their light (> 80 %)"


def test_a_passing_cloud_keeps_its_frames_and_the_ensemble_corrects_them():
    tr = 1 - 0.45 * np.exp(-0.5 * ((np.arange(400) - 200) / 25) ** 2)  # down to 55 % of the light
    fl = night(signal=trapezoid(400, 200, 120, 15, 0.02), transparency=tr, seed=2)
    kept = fl.set_aside_clouds(0.5)
    assert len(kept) == 400 and "rejected" not in kept.meta
    diff = kept.autodiff().outlier_guard()
    assert not diff.meta.get("rejected")
    resid = diff.flux / trapezoid(400, 200, 120, 15, 0.02)
    assert np.std(resid / np.median(resid)) < 0.004  # the transparency is divided out


def test_a_deep_cloud_sets_its_frames_aside_with_the_light_lost():
    tr = np.ones(400)
    tr[190:200] = 0.3
    out = night(transparency=tr).set_aside_clouds(0.5)
    rej = out.meta["rejected"]
    assert [r["index"] for r in rej] == list(range(190, 200))
    assert all(r["flag"] & Flag.OUTLIER_REJECTED for r in rej)
    assert rej[0]["reason"].startswith("clouds: the comparisons lost 7")


def test_light_loss_must_be_a_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        night(n=20).set_aside_clouds(1.5)


# ---- the outlier guard ----

def test_a_target_spike_is_flagged_with_its_deviation():
    fl = night(seed=4)
    fl.fluxes[:, 0, 123] *= 1.03  # ~10 sigma on the target only (a cosmic ray, a satellite)
    diff = fl.autodiff().outlier_guard(sigma=5, window=15)
    rej = diff.meta["rejected"]
    assert [r["index"] for r in rej] == [123]
    assert rej[0]["flag"] & Flag.OUTLIER_REJECTED
    value = float(rej[0]["reason"].split()[2])
    assert rej[0]["reason"] == f"target outlier: {value:.1f} sigma from its neighbours (> 5)" and value > 7


def test_a_comparison_jump_is_the_ensembles_not_the_targets():
    fl = night(seed=5)
    fl.fluxes[:, 1, 77] *= 1.3  # one of 5 equal comparisons, one frame: every ratio drops 6 %
    diff = fl.diff([1, 2, 3, 4, 5])
    ens = ensemble_error(diff.raw.fluxes[diff.aperture], diff.meta["weights_all"][diff.aperture])
    assert neighbour_deviation(ens)[77] > 5  # the full ensemble jumps...
    # ...so the jumping comparison leaves that frame's ensemble (ensemble._without_jumps): the
    # target's ratio does not jump, and the guard has nothing to set aside
    assert neighbour_deviation(diff.flux)[77] < 3
    assert not diff.outlier_guard().meta.get("rejected")


@pytest.mark.parametrize("signal", ["transit 2 % ingress 3 frames", "transit 2 % ingress 15 frames",
                                    "eclipse 50 % V", "eclipse 60 % rounded", "eclipse 40 % flat bottom"])
def test_transits_and_eclipses_are_never_flagged(signal):
    n = 400
    shapes = {"transit 2 % ingress 3 frames": trapezoid(n, 200.3, 120, 3, 0.02),
              "transit 2 % ingress 15 frames": trapezoid(n, 200.3, 120, 15, 0.02),
              "eclipse 50 % V": trapezoid(n, 200.3, 100, 50, 0.5),
              "eclipse 60 % rounded": 1 - 0.6 * np.exp(-0.5 * ((np.arange(n) - 200) / 12) ** 2),
              "eclipse 40 % flat bottom": trapezoid(n, 200.3, 90, 20, 0.4)}
    for seed in range(5):
        diff = night(signal=shapes[signal], seed=10 + seed).autodiff().outlier_guard()
        assert not diff.meta.get("rejected"), (seed, diff.meta.get("rejected"))


def test_neighbour_deviation_follows_smooth_shapes_and_misses_no_spike():
    rng = np.random.default_rng(0)
    x = np.arange(3000)
    sharp = 1 - 0.5 * np.exp(-0.5 * ((x % 300 - 150) / 10) ** 2) + 0.001 * rng.standard_normal(x.size)
    assert np.nanmax(neighbour_deviation(sharp)) < 5.5
    y = 1 - 0.3 * np.exp(-0.5 * ((x % 300 - 150) / 30) ** 2) + 0.001 * rng.standard_normal(x.size)
    y[[500, 1350, 2222]] += 0.01  # 10 sigma: outside, at the bottom and on the side of a dip
    dev = neighbour_deviation(y)
    assert np.all(dev[[500, 1350, 2222]] > 7), dev[[500, 1350, 2222]]
    assert np.isnan(neighbour_deviation(np.r_[y[:50], np.nan, y[50:60]])[50])


def test_guard_needs_differential_fluxes():
    with pytest.raises(ValueError, match="differential"):
        night(n=30).outlier_guard()


def test_a_night_shorter_than_two_windows_is_not_judged():
    y = 1 + 0.001 * np.random.default_rng(3).standard_normal(29)
    y[10] += 0.05
    assert np.all(neighbour_deviation(y, window=15) == 0)
    assert neighbour_deviation(np.r_[y, y], window=15)[10] > 5
