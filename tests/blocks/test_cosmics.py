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
