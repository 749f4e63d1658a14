"""The CosmicRays block: hits repaired or masked, never saturation; an unrepaired target hit flags the frame."""
from __future__ import annotations

import numpy as np

from reduce.algorithms.apertures import COSMIC
from reduce.blocks import AnnulusBackground, AperturePhotometry, CosmicRays, GetFluxes
from reduce.model.flags import Flag
from reduce.model.image import Image, PixelFlag, Sources
from tests.algorithms._stars import render

XY = np.array([[40.3, 50.6], [90.5, 60.2], [60.0, 20.0]])  # target, comparison, comparison


def _frame(rng):
    data = render((100, 130), XY, [1.2e4, 1e4, 8e3], fwhm=2.1, sky=370.0, noise=3.0, rng=rng)
    im = Image(data=data.astype(np.float32), sources=Sources(XY), fwhm=2.1, bkg=370.0, bkg_rms=3.0,
               saturation=4095.0)
    return im


def _measure(im, **options):
    for block in (CosmicRays(**options), AperturePhotometry(radii=[1.0, 2.0, 3.0]), AnnulusBackground()):
        block.run(im)
    get = GetFluxes(target=0)
    get.run(im)
    return get


def test_a_wing_hit_at_the_ceiling_is_repaired_and_not_saturation():
    rng = np.random.default_rng(2)
    im, clean = _frame(rng), None
    clean = _measure(_frame(np.random.default_rng(2)))._rows[0]
    im.data[62, 94] = 4095.0  # 3.9 px from the comparison: in its apertures, off its core
    row = _measure(im)._rows[0]
    assert im.computed["cosmics"]["repaired"] >= 1 and im.computed["cosmics"]["masked"] == 0
    assert not row["saturated"].any() and im.flags == 0
    assert np.allclose(row["flux"][1], clean["flux"][1], rtol=2e-3)


def test_a_hit_beside_the_target_peak_is_repaired_from_the_star_reflection():
    clean = _measure(_frame(np.random.default_rng(3)))._rows[0]
    im = _frame(np.random.default_rng(3))
    im.data[51, 39] = 4095.0  # at the ceiling on the target's core, next to its peak (2,400 ADU)
    masked = _frame(np.random.default_rng(3))
    masked.data[51, 39] = 4095.0
    _measure(masked)  # by default not on stars < 3 px FWHM (these are 2.1): masked, as before
    assert masked.computed["cosmics"]["masked"] == 1
    row = _measure(im, mirror_fwhm=2.0)._rows[0]
    assert im.computed["cosmics"]["masked"] == 0 and im.computed["cosmics"]["repaired"] >= 1
    assert im.flags == 0 and np.isfinite(row["flux"]).all()
    # the pixel held ~2,400 ADU of ~12,000: left in, +14 %; repaired from its reflection, < 1 %
    assert np.allclose(row["flux"][0], clean["flux"][0], rtol=1e-2)


def test_an_unrepairable_target_hit_flags_the_frame_and_masks_only_its_core():
    im = _frame(np.random.default_rng(3))
    im.data[51, 39] = 4095.0  # at the ceiling beside the target's peak (2,400 ADU) ...
    im.data[50, 42] = 4095.0  # ... and on its point reflection: neither can be repaired from the other
    row = _measure(im)._rows[0]
    assert im.computed["cosmics"]["masked"] >= 1
    assert (im.mask & PixelFlag.COSMIC).any() and not (im.mask & PixelFlag.SATURATED).any()
    assert (row["aperture_flags"][0] & COSMIC).all() and np.isnan(row["flux"][0]).all()
    assert np.isfinite(row["flux"][1:]).all()
    assert im.flags & Flag.COSMIC_RAY and not im.flags & Flag.TARGET_SATURATED


def test_clean_stars_are_left_alone():
    im = _frame(np.random.default_rng(4))
    before = im.data.copy()
    CosmicRays().run(im)
    assert im.computed["cosmics"]["hits"] == 0 and np.array_equal(im.data, before)


def _colour_frame(hit=None, adu=15000.0):
    """A GRBG mosaic (R 0.6, G 1, B 0.5) of three 2.6 raw px stars, binned to superpixels by
    BayerBin, with its stars and superpixel FWHM (~1.6) as the chain gives them to CosmicRays."""
    from astropy.io import fits

    from reduce.blocks import BayerBin
    from reduce.blocks.bayer import file_to_grid

    xy = np.array([[60.3, 50.8], [110.6, 70.2], [40.0, 30.5]])
    raw = render((100, 140), xy, [2e5, 1.5e5, 1e5], fwhm=2.6, sky=400.0, noise=0.0)
    response = np.tile([[1.0, 0.6], [0.5, 1.0]], (50, 70))  # GRBG
    raw = raw * response + np.random.default_rng(5).normal(0.0, 8.0, raw.shape)
    if hit is not None:
        raw[hit[1], hit[0]] += adu
    im = Image(data=raw.astype(np.float32), header=fits.Header({"BAYERPAT": "GRBG"}), saturation=65535.0)
    BayerBin().run(im)
    im.sources = Sources(np.column_stack(file_to_grid(im, xy[:, 0], xy[:, 1])))
    im.fwhm, im.bkg, im.bkg_rms = 1.6, 400.0 * 3.1, 16.0
    return im


def _target_sum(im, r=2.5):
    x, y = im.sources.coords[0]
    yy, xx = np.mgrid[0:im.data.shape[0], 0:im.data.shape[1]]
    return float(im.data[np.hypot(xx - x, yy - y) <= r].sum())


def test_a_hit_beside_a_core_on_colour_superpixels_is_found_on_the_raw_mosaic():
    """On 2x2 superpixels a one-pixel hit 1.5 raw px from an undersampled star's centre is
    diluted by the cell's 3 other pixels and the star's peak; on its colour's sub-lattice of the
    raw mosaic it stands above its point reflection, and its superpixel is repaired."""
    clean = _colour_frame()
    CosmicRays().run(clean)
    assert clean.computed["cosmics"]["hits"] == 0 and "cfa_mosaic" not in clean.computed
    untouched = _colour_frame()
    assert np.array_equal(clean.data, untouched.data)  # no star pixel taken for a hit
    hit = _colour_frame(hit=(59, 50))  # a red pixel (GRBG: x odd, y even), 1.5 px from the centre
    blind = _colour_frame(hit=(59, 50))
    blind.computed.pop("cfa_mosaic")  # as before: the superpixels alone
    CosmicRays().run(blind)
    assert _target_sum(blind) / _target_sum(clean) - 1 > 0.05  # missed: +15,000 ADU stays
    CosmicRays().run(hit)
    assert abs(_target_sum(hit) / _target_sum(clean) - 1) < 0.01


def test_a_hit_on_a_wing_of_colour_superpixels_is_found_with_a_monochrome_wing_limit():
    """Beyond a star's core its wing is smooth however it is binned: there a superpixel hit needs
    only stand above a monochrome star's sharpness, not the 20x higher one an undersampled core
    needs (which let +3,000 ADU through here, and tracks of tens of thousands of ADU beside stars
    on the simulated colour nights)."""
    from reduce.algorithms.cosmics import find_hits

    clean = _colour_frame()
    CosmicRays().run(clean)
    im = _colour_frame(hit=(66, 50), adu=3000.0)  # 5.7 raw px (2.9 superpixels) from the target
    sky, xy = 400.0 * 3.1, im.sources.coords
    at = 50 // 2 * im.data.shape[1] + 66 // 2
    old = find_hits(im.data, xy, 4.5 * 1.6, sky=sky, noise=16.0, fwhm=1.6, binning=2)
    new = find_hits(im.data, xy, 4.5 * 1.6, sky=sky, noise=16.0, fwhm=1.6, binning=2, core=1.5 * 1.6)
    assert at not in old and at in new
    CosmicRays().run(im)
    assert abs(_target_sum(im, r=3.5) / _target_sum(clean, r=3.5) - 1) < 0.01
