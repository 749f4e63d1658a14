"""Exact circular sums at many radii (vs photutils) and the annulus sky (vs astropy sigma_clip)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip
from photutils.aperture import CircularAperture, aperture_photometry

from reduce.algorithms.apertures import annulus_stats, circular_sums
from tests.algorithms._stars import render


def _photutils(data, xy, radii):
    mask = ~np.isfinite(data)
    clean = np.where(mask, 0.0, data)
    sums = np.column_stack([aperture_photometry(clean, CircularAperture(xy, r), method="exact", mask=mask)
                            ["aperture_sum"] for r in radii])
    areas = np.column_stack([CircularAperture(xy, r).area_overlap(data, mask=mask) for r in radii])
    return sums, areas


def test_sums_and_areas_equal_photutils_exact_overlap():
    rng = np.random.default_rng(2)
    shape = (160, 170)
    xy = np.vstack([rng.uniform(25, 140, (12, 2)),
                    [[60.0, 70.0], [80.5, 90.5], [100.5, 40.0]],       # on pixel centres and edges
                    [[0.4, 80.2], [18.54, 99.0], [168.7, 159.2]]])      # apertures cut by the frame edge
    data = render(shape, xy[:12], rng.uniform(1e3, 1e5, 12), fwhm=3.2, sky=150.0, noise=6.0, rng=rng)
    data[rng.random(shape) < 0.002] = 3e4                                # cosmic rays
    data[70, 55:58] = np.nan                                             # missing pixels
    radii = np.r_[np.linspace(0.5, 5.0, 30) * 3.97, 0.70710678118654757, 1.0, 2.0, 0.05]
    sums, areas, edge, peak = circular_sums(data.astype(np.float32), xy, radii)
    ref_sums, ref_areas = _photutils(data.astype(np.float32).astype(float), xy, radii)
    assert np.max(np.abs(sums / ref_sums - 1)) < 1e-9
    assert np.max(np.abs(areas / ref_areas - 1)) < 1e-9
    # the frame edge: geometric truth (sep misses overshoots below one pixel, e.g. x=18.54, r=19.9)
    r = radii[None, :]
    out = (xy[:, :1] - r < -0.5) | (xy[:, 1:] - r < -0.5) | (xy[:, :1] + r > 169.5) | (xy[:, 1:] + r > 159.5)
    assert np.array_equal(edge, out) and edge[-2, 29] and not edge[-2, 0]
    assert areas[-2, 29] < np.pi * radii[29] ** 2 - 1  # truncated area is the in-frame area
    ix, iy = np.floor(xy[:, 0] + 0.5).astype(int), np.floor(xy[:, 1] + 0.5).astype(int)  # half up
    box = [np.nanmax(data.astype(np.float32)[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]) for x, y in zip(ix, iy)]
    assert np.allclose(peak, box)


def test_missing_positions_and_empty_apertures_are_nan():
    data = np.ones((50, 50), np.float32)
    sums, areas, edge, peak = circular_sums(data, np.array([[np.nan, 3.0], [-40.0, 10.0], [25.0, 25.0]]), [2.0, 4.0])
    assert np.isnan(sums[:2]).all() and np.isnan(peak[:2]).all()
    assert np.allclose(sums[2], np.pi * np.array([4.0, 16.0])) and not edge[2].any()


def test_annulus_matches_astropy_sigma_clip_to_convergence():
    rng = np.random.default_rng(4)
    data = rng.normal(200.0, 8.0, (220, 240)).astype(np.float32)
    hits = rng.random(data.shape) < 0.02                                 # stars and cosmic rays
    data[hits] += rng.uniform(50, 5e4, int(hits.sum())).astype(np.float32)
    data[30:34, :] = np.nan
    xy = np.vstack([rng.uniform(0, 240, (15, 2)), [[3.2, 110.7], [120.0, 119.5]]])
    inner, outer = 9.3, 17.8
    med, std, npix = annulus_stats(data, xy, inner, outer)
    yy, xx = np.mgrid[0:220, 0:240]
    for i, (x, y) in enumerate(xy):
        r2 = (xx - x) ** 2 + (yy - y) ** 2
        sel = (r2 >= inner ** 2) & (r2 < outer ** 2) & np.isfinite(data)
        clipped = sigma_clip(data[sel].astype(float), sigma=3.0, maxiters=None)
        assert npix[i] == clipped.count()
        assert med[i] == pytest.approx(float(np.ma.median(clipped)), abs=1e-9)
        assert std[i] == pytest.approx(float(clipped.std()), rel=1e-7)


def test_annulus_outside_the_frame_is_nan():
    med, std, npix = annulus_stats(np.ones((20, 20), np.float32), np.array([[500.0, 500.0], [np.nan, 1.0]]), 2, 4)
    assert np.isnan(med).all() and np.isnan(std).all() and npix.tolist() == [0, 0]
