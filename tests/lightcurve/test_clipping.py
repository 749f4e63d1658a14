"""The sky test under passing clouds: a smooth rise with its own texture stays, a jump goes."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.lightcurve import Fluxes
from reduce.lightcurve.clipping import local_noise, outlier_frames


def cloud_sky(seed=0, texture=0.03, n=1089):
    """A night of 5 s frames: 600 ADU, and over frames 400-640 (20 min) the sky rising smoothly
    to 2,000 ADU and back, wandering by ``texture`` (relative) from frame to frame as clouds do."""
    rng = np.random.default_rng(seed)
    x = np.arange(n)
    bump = np.where((x >= 400) & (x < 640), np.sin(np.pi * (x - 400) / 240), 0.0)
    sky = (600 + 1400 * bump) * (1 + 0.002 * rng.standard_normal(n))
    sky *= 1 + texture * np.sqrt(bump) * rng.standard_normal(n)
    return 2460000.5 + x * 5 / 86400, sky


def test_a_smooth_sky_rise_is_never_an_outlier():
    t, sky = cloud_sky(texture=0.0)
    keep, _ = outlier_frames({"sky": (sky, 3.0)}, t)
    assert keep.all()


@pytest.mark.parametrize("texture", [0.01, 0.03, 0.05])
def test_a_cloudy_sky_is_judged_against_its_own_texture(texture):
    for seed in range(4):
        t, sky = cloud_sky(seed=seed, texture=texture)
        keep, _ = outlier_frames({"sky": (sky, 3.0)}, t)
        # before: ~40 of the 240 clouded frames went at 3-5 % texture ("3.4 sigma > 3", ...); now
        # only a 3-sigma excursion of the texture itself can (0.3 % of Gaussian frames)
        assert (~keep).sum() <= 2, (seed, np.flatnonzero(~keep))


def test_sky_jumps_are_still_found_in_clear_sky_and_under_the_cloud():
    t, sky = cloud_sky(texture=0.03)
    sky[100] *= 1.2   # clear night: a 20 % jump (a passing headlight)
    sky[500] *= 1.5   # under the cloud: a 50 % jump, 7 sigma of the cloud's texture
    keep, reason = outlier_frames({"sky": (sky, 3.0)}, t)
    assert {100, 500} <= set(np.flatnonzero(~keep)) and (~keep).sum() <= 3
    assert reason[500].startswith("sky outlier: ") and reason[500].endswith("sigma from its trend (> 3)")


def test_fluxes_sky_clip_keeps_the_clouded_frames():
    t, sky = cloud_sky(texture=0.05, seed=3)
    fl = Fluxes(t, np.ones((1, 3, t.size)), data={"sky": sky})
    assert fl.sigma_clipping_data(bkg=3).meta.get("rejected", []) == []


def test_local_noise_leaves_out_the_frames_own_jump():
    rng = np.random.default_rng(1)
    v = rng.normal(0, 1.0, 400)
    v[200] += 30.0
    d2 = v[:-2] - 2 * v[1:-1] + v[2:]
    noise = local_noise(d2, 25)
    assert noise.size == v.size
    assert 0.6 < noise[200] < 1.5  # its own three second differences are not counted
    assert 0.8 < np.median(noise) < 1.2
