"""Exact circular sums at many radii (vs photutils) and the annulus sky (vs astropy sigma_clip)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip
from photutils.aperture import CircularAperture, aperture_photometry

from reduce.algorithms.apertures import EDGE, MASKED, SATURATED, annulus_stats, circular_sums, source_mask
from reduce.model.image import PixelFlag
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
                    [[0.4, 80.2], [18.54, 99.0], [168.7, 159.2]],       # apertures cut by the frame edge
                    [[56.3, 73.6]]])                                    # 3 px from the missing pixels
    data = render(shape, xy[:12], rng.uniform(1e3, 1e5, 12), fwhm=3.2, sky=150.0, noise=6.0, rng=rng)
    data[rng.random(shape) < 0.002] = 3e4                                # cosmic rays
    data[70, 55:58] = np.nan                                             # missing pixels
    radii = np.r_[np.linspace(0.5, 5.0, 30) * 3.97, 0.70710678118654757, 1.0, 2.0, 0.05]
    sums, areas, flags, peak = circular_sums(data.astype(np.float32), xy, radii)
    ref_sums, _ = _photutils(data.astype(np.float32).astype(float), xy, radii)
    # the frame edge: geometric truth (sep misses overshoots below one pixel, e.g. x=18.54, r=19.9)
    r = radii[None, :]
    out = (xy[:, :1] - r < -0.5) | (xy[:, 1:] - r < -0.5) | (xy[:, :1] + r > 169.5) | (xy[:, 1:] + r > 159.5)
    assert np.array_equal((flags & EDGE) != 0, out) and out[-3, 29] and not out[-3, 0]
    # overlapping a missing pixel, even by a sliver: the exact overlap with the NaN pixels
    nan = ~np.isfinite(data)
    touched = np.column_stack([CircularAperture(xy, q).area_overlap(data, mask=~nan) > 1e-9 for q in radii])
    assert np.array_equal((flags & MASKED) != 0, touched & ~out)
    assert touched[-1].any() and not touched[-1][radii < 2.5].any()
    clean = flags == 0
    assert np.isnan(sums[~clean]).all() and np.isnan(areas[~clean]).all()
    assert clean.sum() > 400 and np.max(np.abs(sums[clean] / ref_sums[clean] - 1)) < 1e-9
    assert np.allclose(areas[clean], np.broadcast_to(np.pi * r * r, areas.shape)[clean], rtol=1e-12)
    ix, iy = np.floor(xy[:, 0] + 0.5).astype(int), np.floor(xy[:, 1] + 0.5).astype(int)  # half up
    box = [np.nanmax(data.astype(np.float32)[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]) for x, y in zip(ix, iy)]
    assert np.allclose(peak, box)


def test_masked_and_saturated_pixels_flag_the_apertures_they_touch():
    data = np.full((60, 60), 10.0, np.float32)
    mask = np.zeros(data.shape, np.uint8)
    mask[:, 40] = PixelFlag.UNILLUMINATED                                # a dead column
    mask[30:33, 20:23] = PixelFlag.SATURATED                             # a clipped core
    xy = np.array([[34.0, 10.0], [21.0, 31.0], [10.0, 50.0], [21.0, 40.0]])
    radii = np.array([2.0, 5.0, 5.6, 8.0])
    sums, areas, flags, _ = circular_sums(data, xy, radii, mask)
    # star 0: the dead column's square starts 5.5 px away
    assert flags[0].tolist() == [0, 0, MASKED, MASKED]
    assert (flags[1] == SATURATED).all()                                 # its own core
    assert (flags[2] == 0).all() and np.allclose(sums[2], 10 * np.pi * radii ** 2)
    # 7.5 px below the clipped block's upper edge: only the 8 px radius reaches it
    assert flags[3].tolist() == [0, 0, 0, SATURATED]
    assert np.isnan(sums[flags != 0]).all()
    # masked pixels never enter an annulus: the sky is the same with the dead column at 0 or 1e6
    for value in (0.0, 1e6):
        d = data.copy()
        d[:, 40] = value
        med, std, npix = annulus_stats(d, xy[:1], 4.0, 9.0, mask=mask)
        assert med[0] == 10.0 and std[0] == 0.0
    assert npix[0] == annulus_stats(data, xy[:1], 4.0, 9.0)[2][0] - 13  # the column at dx = 6: |dy| <= 6


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


def test_annulus_plane_is_the_sky_at_the_star_when_a_neighbour_cuts_the_annulus():
    """A sky gradient across an annulus cut on one side: the plane gives the sky at the star, the
    mean of the pixels left that at their centroid; on a whole annulus the two agree."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:200, 0:200]
    sky = 500.0 + 2.0 * (xx - 100) - 1.0 * (yy - 100)  # ADU at pixel centres
    data = (sky + rng.normal(0.0, 5.0, sky.shape)).astype(np.float32)
    star, cut = np.array([[100.3, 99.6]]), np.array([[122.0, 100.0]])  # a neighbour on the +x side
    truth = 500.0 + 2.0 * 0.3 - 1.0 * -0.4
    mask = source_mask(data.shape, cut, 12.0)
    plane, std, n = annulus_stats(data, star, 15.0, 30.0, mask=mask, statistic="plane")
    mean = annulus_stats(data, star, 15.0, 30.0, mask=mask, statistic="mean")[0]
    error = 5.0 / np.sqrt(n[0])
    assert abs(plane[0] - truth) < 4 * 2 * error  # the plane's extrapolation at most doubles the noise
    assert mean[0] - truth < -50 * error  # the pixels left lie towards -x, where the sky is lower
    whole = [annulus_stats(data, star, 15.0, 30.0, statistic=s)[0][0] for s in ("plane", "mean")]
    assert whole[0] == pytest.approx(truth, abs=4 * 5.0 / np.sqrt(np.pi * (30**2 - 15**2)))
    assert whole[1] == pytest.approx(truth, abs=4 * 5.0 / np.sqrt(np.pi * (30**2 - 15**2)))


def test_source_mask_marks_the_discs():
    mask = source_mask((50, 60), np.array([[10.2, 20.0], [59.0, 49.0], [np.nan, 3.0]]), 3.0)
    yy, xx = np.mgrid[0:50, 0:60]
    near = ((xx - 10.2) ** 2 + (yy - 20.0) ** 2 < 9.0) | ((xx - 59.0) ** 2 + (yy - 49.0) ** 2 < 9.0)
    assert np.array_equal(mask != 0, near)
    assert not source_mask((50, 60), np.array([[10.0, 20.0]]), 0.0).any()


def test_annulus_outside_the_frame_is_nan():
    med, std, npix = annulus_stats(np.ones((20, 20), np.float32), np.array([[500.0, 500.0], [np.nan, 1.0]]), 2, 4)
    assert np.isnan(med).all() and np.isnan(std).all() and npix.tolist() == [0, 0]


def test_stars_drifted_off_the_frame_are_skipped_and_the_others_unchanged():
    """Stars whose every circle (or whole annulus) lies off the frame are NaN without being summed;
    every other star gets exactly (bit for bit) what it gets measured alone, at the edge too."""
    rng = np.random.default_rng(4)
    data = rng.normal(100.0, 5.0, (60, 80))
    radii = np.linspace(1.0, 6.0, 12)
    xy = np.array([[40.2, 30.7], [-30.0, 20.0], [2.3, 31.1], [79.4, 59.2], [120.0, -40.0], [-3.0, 10.0],
                   [60.6, 5.5]])
    sums, areas, flags, peak = circular_sums(data, xy, radii)
    assert np.isnan(sums[[1, 4]]).all() and (flags[[1, 4]] & EDGE).all()
    for i in range(len(xy)):
        alone = circular_sums(data, xy[i:i + 1], radii)
        for got, one in zip((sums, areas, flags, peak), alone):
            np.testing.assert_array_equal(got[i], one[0])
    med, std, npix = annulus_stats(data, xy, 5.0, 9.0)
    assert np.isnan(med[[1, 4]]).all() and (npix[[1, 4]] == 0).all() and np.isfinite(med[5]) and npix[5] > 0
    on = [0, 2, 3, 5, 6]  # the same as without the stars off the frame
    for got, without in zip((med, std, npix), annulus_stats(data, xy[on], 5.0, 9.0)):
        np.testing.assert_array_equal(got[on], without)
