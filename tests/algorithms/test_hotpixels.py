"""A night's hot pixels are found in the median of a few frames (not stars, not cosmic rays) and
repaired from their neighbours with little loss of a star's light (issue 18 item 1)."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.algorithms.hotpixels import find_hot_pixels, repair, repair_weights
from tests.algorithms.test_sharpness import integrated_star

RMS, SKY, SHAPE = 10.0, 300.0, (150, 150)


def night_stack(*, drift: float, seed: int = 0, n: int = 7):
    """``n`` frames of undersampled stars drifting by ``drift`` px in all, one hot-pixel map
    (singles, a pair, an L and a 2x2 cluster; 5 sigma to the ceiling) and 30 cosmic-ray hits a
    frame; returns (stack, hot map, the stars' light on the first frame)."""
    rng = np.random.default_rng(seed)
    stars = [(rng.uniform(10, 130, 2), rng.uniform(3e3, 3e5), rng.uniform(1.5, 2.2)) for _ in range(30)]
    hot = np.zeros(SHAPE, bool)
    hot.flat[rng.choice(hot.size, 60, replace=False)] = True
    hot[40, 40:42] = True                                # a pair
    hot[60, 60:62] = hot[61, 60] = True                  # an L
    hot[80:82, 80:82] = True                             # a 2x2 cluster
    hot[[0, -1], :] = hot[:, [0, -1]] = False
    level = np.exp(rng.uniform(np.log(5 * RMS), np.log(6e4), SHAPE)) * hot
    frames, light = [], np.zeros(SHAPE)
    for (x, y), flux, fwhm in stars:
        light += integrated_star(SHAPE, x, y, flux, fwhm)
    for i in range(n):
        f = rng.normal(SKY, RMS, SHAPE) + level
        for (x, y), flux, fwhm in stars:
            f += integrated_star(SHAPE, x + drift * i / (n - 1), y, flux, fwhm)
        f.flat[rng.choice(f.size, 30, replace=False)] += rng.uniform(100, 3e4, 30)
        frames.append(np.minimum(f, 65535.0))
    return np.stack(frames), hot, light


@pytest.mark.parametrize("drift", [0.0, 20.0])
def test_hot_pixels_found_whether_or_not_the_field_drifts(drift):
    stack, hot, light = night_stack(drift=drift)
    found = find_hot_pixels(stack, RMS)
    # no star, no cosmic ray; every hot pixel but, when the field sits still, a few on the
    # bright wings of a star (the same on every frame, so they cancel in the light curve)
    assert (found & ~hot).sum() == 0
    missed = hot & ~found
    assert missed.sum() <= 0.1 * hot.sum()
    if drift:
        assert not missed.any()
    else:
        from scipy.ndimage import maximum_filter

        assert np.all(maximum_filter(light, size=3)[missed] > 100 * RMS)
    for cluster in ((40, 40), (40, 41), (60, 60), (60, 61), (61, 60), (80, 80), (81, 81)):
        assert found[cluster], cluster


def test_repair_is_exact_on_a_quadratic_and_keeps_a_star_peak():
    y, x = np.mgrid[0:21, 0:21].astype(float)
    plane = 3.0 + 0.5 * x - 0.2 * y + 0.01 * (x - 9) ** 2 + 0.02 * (y - 11) ** 2 + 0.003 * x * y
    hot = np.zeros(plane.shape, bool)
    hot[10, 10] = hot[4, 15] = True
    out = repair(plane + 1e4 * hot, *repair_weights(hot))
    assert np.allclose(out, plane)
    # a FWHM 3.5 px star centred on a hot pixel keeps > 95 % of its peak (the side mean: ~80 %)
    star = integrated_star((21, 21), 10.0, 10.0, 1.0, 3.5)
    star_hot = star.copy()
    star_hot[10, 10] += 5.0
    fixed = repair(star_hot, *repair_weights(hot))
    assert fixed[10, 10] == pytest.approx(star[10, 10], rel=0.05)


def test_repair_skips_bad_neighbours_and_gives_nan_without_any():
    data = np.full((7, 7), 10.0)
    data[3, 4] = 1e4                                     # a hot neighbour, repaired too
    hot = np.zeros((7, 7), bool)
    hot[3, 3] = hot[3, 4] = True
    out = repair(data, *repair_weights(hot))
    assert out[3, 3] == pytest.approx(10.0) and out[3, 4] == pytest.approx(10.0)
    hot[2:5, 2:5] = True                                 # the centre's neighbours are all hot
    assert np.isnan(repair(data, *repair_weights(hot))[3, 3])


def test_median_in_bands_is_the_median():
    from reduce.algorithms.hotpixels import _median

    stack = np.random.default_rng(2).normal(0, 1, (5, 37, 23)).astype(np.float32)
    assert np.array_equal(_median(stack, band=50), np.median(stack, axis=0))
