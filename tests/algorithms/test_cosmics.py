"""Cosmic-ray hits around stars: injected hits are found and repaired, undersampled stars are not hits."""
from __future__ import annotations

import numpy as np

from reduce.algorithms.cosmics import core_hits, find_hits, repair_hits, sharpness_limit
from reduce.simulations.defects import add_cosmic_rays

from ._stars import random_positions, render

SHAPE, SKY, NOISE, FWHM = (200, 240), 370.0, 4.0, 2.1


def _field(seed=3, n=40):
    """Undersampled stars (FWHM 2.1 px, HAT-P-32-like), some near the 4095 ceiling, with noise."""
    rng = np.random.default_rng(seed)
    xy = random_positions(rng, n, SHAPE, margin=10)
    flux = np.exp(rng.uniform(np.log(500), np.log(4e4), n))
    img = render(SHAPE, xy, flux, fwhm=FWHM, sky=SKY, noise=NOISE, rng=rng)
    return np.clip(img, None, 4095).astype(np.float32), xy, rng


def _find(img, xy):
    return find_hits(img, xy, 8 * FWHM, sky=SKY, noise=NOISE, fwhm=FWHM)


def test_undersampled_stars_are_not_hits():
    img, xy, _ = _field()
    assert len(_find(img, xy)) == 0


def test_limit_follows_the_psf():
    assert sharpness_limit(1.5) > sharpness_limit(2.1) > sharpness_limit(4.0) > 0


def test_injected_hits_near_stars_are_found_and_repaired():
    img, xy, rng = _field()
    clean = img.copy()
    truth = add_cosmic_rays(img, rng, 60, 4095)
    hits = _find(img, xy)
    found = np.zeros(img.shape, bool)
    found.ravel()[hits] = True
    lit = np.zeros(img.shape, bool)
    strong = 0
    for h in truth:
        x, y = np.array(h).T
        lit[y, x] = True
        d = np.abs(np.c_[x, y][:, None, :] - xy[None]).max(axis=-1)  # square distance to stars
        searched = (d.min(axis=1) <= 8 * FWHM).all()
        off_core = np.hypot(x[:, None] - xy[:, 0], y[:, None] - xy[:, 1]).min() > 2 * FWHM
        if searched and off_core and (img[y, x] - clean[y, x]).max() > 20 * NOISE:
            strong += 1
            assert found[y, x].any(), f"hit at {x[0]},{y[0]} missed"
    assert strong > 20
    # nothing but hit pixels (and their faint ends, where the deposit is within the noise) is taken
    assert (found & ~lit & (np.abs(img - clean) > 3 * NOISE)).sum() == 0
    assert (found & ~lit).sum() <= 0.02 * found.sum()
    repair_hits(img, hits)
    far = ~core_hits(hits, img.shape, xy, 1.5 * FWHM)
    y, x = np.divmod(hits[far], img.shape[1])
    assert np.abs(img[y, x] - clean[y, x]).max() < 6 * NOISE + 0.05 * (clean[y, x] - SKY).max()


def test_repair_uses_the_median_of_non_hit_neighbours():
    img = np.full((9, 9), 100.0)
    img[4, 3:6] = 5000.0  # a short track: its middle pixel has two hit neighbours
    img[3, 3:6] = [110.0, 120.0, 130.0]
    hits = np.flatnonzero(img.ravel() > 1000)
    value = repair_hits(img, hits)
    assert np.all(img < 1000) and np.all(np.isfinite(value))
    assert img[4, 4] == np.median([110, 120, 130, 100, 100, 100])


def test_core_hits_are_within_the_radius_of_a_position():
    hits = np.array([5 * 20 + 5, 5 * 20 + 9, 15 * 20 + 15])
    assert core_hits(hits, (20, 20), np.array([[5.0, 5.0], [np.nan, 1.0]]), 3.0).tolist() == [True, False, False]
