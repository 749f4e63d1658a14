"""Vectorised centroids: agree with photutils, recover injected positions, fail as NaN."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from photutils.centroids import centroid_quadratic as pu_quadratic
from photutils.centroids import centroid_sources

from reduce.algorithms.centroids import (box_max, centroid_com, centroid_gaussian, centroid_quadratic, cutouts,
                                         quadratic_fit_box)
from tests.algorithms._stars import render


def _grid_field(fwhm, flux=5e4, seed=0, noise=3.0):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(8) * 45 + 40, np.arange(8) * 45 + 40), -1).reshape(-1, 2).astype(float)
    g += rng.uniform(-0.5, 0.5, g.shape)
    return render((400, 400), g, flux, fwhm=fwhm, sky=100, noise=noise, rng=rng), g, rng


def test_quadratic_matches_photutils():
    img, xy, rng = _grid_field(3.0)
    guess = xy + rng.normal(0, 1.0, xy.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        px, py = centroid_sources(img, guess[:, 0], guess[:, 1], box_size=21, centroid_func=pu_quadratic)
    mine = centroid_quadratic(img, guess, 21, 5)
    assert np.allclose(mine, np.column_stack([px, py]), atol=1e-8)


@pytest.mark.parametrize("fwhm", [2.5, 4.0, 7.0])
def test_centroids_recover_truth(fwhm):
    img, xy, rng = _grid_field(fwhm)
    guess = xy + rng.normal(0, 0.8, xy.shape)
    box = 2 * int(1.5 * fwhm) + 1
    for name, got, tol in [
        ("quadratic", centroid_quadratic(img, guess, 21, quadratic_fit_box(fwhm)), 0.08),
        ("com", centroid_com(img, guess, box), 0.03),
        ("gaussian", centroid_gaussian(img, guess, box, fwhm), 0.02),
    ]:
        err = np.hypot(*(got - xy).T)
        assert np.median(err) < tol and err.max() < 3 * tol, (name, np.median(err), err.max())


def test_failures_are_nan_not_exceptions():
    img = np.full((50, 50), 10.0)
    xy = np.array([[25.0, 25.0], [np.nan, 3.0], [-40.0, -40.0]])
    quad = centroid_quadratic(img, xy)
    assert quad[0].tolist() == [15.0, 15.0]  # as photutils: a maximum on the box border is returned unfitted
    assert np.isnan(quad[1:]).all()
    assert np.isnan(centroid_com(img, xy)).all()  # flat: no mass above the median
    assert np.isnan(centroid_gaussian(img, xy)[1:]).all()


def test_cutouts_pad_outside_with_nan():
    img = np.arange(100.0).reshape(10, 10)
    stack, x0, y0 = cutouts(img, np.array([[0.2, 0.4], [5.0, 5.0]]), 3)
    assert (x0.tolist(), y0.tolist()) == ([-1, 4], [-1, 4])
    assert np.isnan(stack[0, 0]).all() and np.isnan(stack[0, :, 0]).all()
    assert stack[0, 1, 1] == img[0, 0] and np.array_equal(stack[1], img[4:7, 4:7])
    assert box_max(img, np.array([[5.0, 5.0]]), 3)[0] == img[6, 6]


def test_quadratic_search_takes_the_star_not_a_brighter_one_in_the_box():
    # a star and one 10x brighter 8 px away: the brightest pixel of the box is the other star's;
    # with ``search`` the peak is the local maximum near the position, in every direction
    rng = np.random.default_rng(3)
    for angle in np.arange(0, 360, 45):
        other = np.array([60.2, 59.7]) + 8 * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
        img = render((120, 120), np.array([[60.2, 59.7], other]), [2e4, 2e5], fwhm=2.5, sky=100, noise=3, rng=rng)
        guess = np.array([[60.7, 59.3]])
        assert np.hypot(*(centroid_quadratic(img, guess, 21, 3)[0] - other)) < 0.2  # photutils' choice
        assert np.hypot(*(centroid_quadratic(img, guess, 21, 3, search=3.5)[0] - [60.2, 59.7])) < 0.08


def test_quadratic_search_skips_a_neighbours_saturated_plateau_not_the_stars_own():
    rng = np.random.default_rng(5)
    img = render((60, 60), np.array([[26.3, 31.8]]), 3e3, fwhm=2.0, sky=100, noise=2, rng=rng)
    img[20:27, 22:30] = 1000.0  # a clipped plateau 5 px away: every pixel of it a "maximum"
    sat = img >= 1000.0
    xy = np.array([[26.0, 31.0]])
    got = centroid_quadratic(img, xy, 21, 3, search=6.0, saturated=sat)[0]
    assert np.hypot(*(got - [26.3, 31.8])) < 0.1
    # without the map the plateau is taken (its fit has no maximum: NaN)
    assert not np.hypot(*(centroid_quadratic(img, xy, 21, 3, search=6.0)[0] - [26.3, 31.8])) < 0.5
    # the star itself saturated: its plateau is still its peak (the runaway guard judges the fit)
    own = centroid_quadratic(img, np.array([[23.0, 22.0]]), 21, 3, search=6.0, saturated=sat)[0]
    assert not np.isfinite(own).all() or np.hypot(*(own - [23, 22])) < 4
    assert np.isnan(centroid_quadratic(np.full((60, 60), np.nan), xy, 21, 3, search=3.0)).all()
