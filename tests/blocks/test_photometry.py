"""Aperture photometry vs photutils, annulus sky vs astropy, and the GetFluxes collector."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip
from photutils.aperture import CircularAperture, aperture_photometry

from reduce.blocks import AnnulusBackground, AperturePhotometry, GetFluxes
from reduce.algorithms.apertures import MASKED
from reduce.model.flags import Flag
from reduce.model.errors import FrameRejected
from reduce.model.image import Image, PixelFlag, Sources
from tests.algorithms._stars import render, star_field

FWHM = 3.0


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(5)
    data, xy, flux = star_field(rng, 30, (300, 300), fwhm=FWHM, sky=200.0, noise=5.0, margin=3)
    xy = np.vstack([xy, [[0.3, 150.2], [299.1, 298.7]]])  # apertures cut by the frame edge
    return data, xy


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4"])
def test_apertures_match_photutils(field, dtype):
    data, xy = field
    data = data.astype(dtype)
    data.flags.writeable = False  # like memory-mapped FITS data
    data_nan = data.astype(np.float64)
    im = Image(data=data, sources=Sources(xy), fwhm=FWHM)
    AperturePhotometry().run(im)
    ap = im.aperture
    assert ap["fluxes"].shape == ap["areas"].shape == (len(xy), 30)
    assert np.allclose(ap["radii"], np.linspace(0.5, 4, 30) * FWHM)
    ref = aperture_photometry(data_nan, [CircularAperture(xy, r) for r in ap["radii"]], method="exact")
    sums = np.column_stack([ref[f"aperture_sum_{i}"] for i in range(30)])
    areas = np.column_stack([CircularAperture(xy, r).area_overlap(data_nan) for r in ap["radii"]])
    edge = ap["edge"]
    assert edge[-2:, -1].all() and not edge[:, 0][:5].any()
    assert np.array_equal(edge, areas < np.pi * ap["radii"] ** 2 - 1e-9)  # cut by the frame: NaN
    assert np.isnan(ap["fluxes"][edge]).all() and (ap["flags"][~edge] == 0).all()
    assert np.max(np.abs(ap["fluxes"][~edge] / sums[~edge] - 1)) < 1e-6
    assert np.max(np.abs(ap["areas"][~edge] / areas[~edge] - 1)) < 1e-9
    assert np.allclose(ap["peak"], [data_nan[int(round(y)) - 2:int(round(y)) + 3,
                                             max(int(round(x)) - 2, 0):int(round(x)) + 3].max() for x, y in xy])


def test_non_finite_pixels_are_never_summed(field):
    data, xy = field
    data = data.copy()
    xy = xy[((xy > 10) & (xy < 290)).all(axis=1)][:3]
    x, y = np.round(xy[0]).astype(int)
    data[y, x + 3] = np.nan
    im = Image(data=data, sources=Sources(xy))
    AperturePhotometry(radii=[2.0, 6.0], scale="pixels").run(im)
    ap = im.aperture
    # the 6 px aperture of star 0 overlaps the NaN pixel: not measured, and said why
    assert np.isnan(ap["fluxes"][0, 1]) and ap["flags"][0, 1] == MASKED and im.mask_bits == PixelFlag.NONFINITE
    assert ap["flags"][0, 0] == 0 and not (ap["flags"][1:] & MASKED).any()
    ref = aperture_photometry(data, [CircularAperture(xy, r) for r in (2.0, 6.0)], method="exact")
    assert np.allclose(ap["fluxes"][1:, 1], ref["aperture_sum_1"][1:], rtol=1e-6)
    assert np.isclose(ap["fluxes"][0, 0], ref["aperture_sum_0"][0], rtol=1e-6)


def test_aperture_parameters_and_missing_fwhm(field):
    data, xy = field
    with pytest.raises(ValueError):
        AperturePhotometry(radii=[1.0, -2.0])
    with pytest.raises(ValueError):
        AperturePhotometry(scale="arcsec")
    assert AperturePhotometry(scale="pixels").requires == ("sources",)
    with pytest.raises(FrameRejected, match="fwhm") as exc:
        AperturePhotometry().run(Image(data=data, sources=Sources(xy)))
    assert exc.value.flag == Flag.NO_PSF


@pytest.mark.parametrize("statistic", ["median", "mean"])
def test_annulus_matches_astropy_sigma_clip(field, statistic):
    data, xy = field
    data = data.copy()
    data[100:104, :] = np.nan
    data[np.random.default_rng(0).random(data.shape) < 0.01] = 5e4  # cosmic rays to clip
    im = Image(data=data.astype(np.float32), sources=Sources(xy), fwhm=FWHM)
    AnnulusBackground(inner=2.0, outer=4.0, neighbours=0, statistic=statistic).run(im)
    an = im.annulus
    assert (an["inner"], an["outer"]) == (2.0 * FWHM, 4.0 * FWHM)
    yy, xx = np.mgrid[0:300, 0:300]
    for i, (x, y) in enumerate(xy):
        r2 = (xx - x) ** 2 + (yy - y) ** 2
        sel = (r2 >= 6.0**2) & (r2 < 12.0**2) & np.isfinite(data)
        clipped = sigma_clip(data[sel].astype(np.float32).astype(float), sigma=3.0, maxiters=None)
        centre = np.ma.median(clipped) if statistic == "median" else clipped.mean()
        assert np.isclose(an["median"][i], centre, rtol=0, atol=1e-9)
        assert np.isclose(an["std"][i], clipped.std(), rtol=1e-7)
        assert an["area"][i] == clipped.count()
        assert np.isclose(an["error"][i], clipped.std() / np.sqrt(clipped.count()))


def test_annulus_radii_validated():
    with pytest.raises(ValueError, match="swapped"):
        AnnulusBackground(inner=8.0, outer=5.0)
    with pytest.raises(ValueError):
        AnnulusBackground(inner=5.0, outer=5.0)
    with pytest.raises(ValueError):
        AnnulusBackground(sigma=0)
    with pytest.raises(ValueError, match="neighbours"):
        AnnulusBackground(neighbours=-1)
    with pytest.raises(ValueError, match="statistic"):
        AnnulusBackground(statistic="mode")
    assert AnnulusBackground(inner=2.0, outer=4.0).neighbours == 2.0  # never into a star's own annulus


def _measured_frame(xy, flux, *, jd, shift=0.0, sky=150.0, seed=0, saturation=None):
    rng = np.random.default_rng(seed)
    pos = xy + shift
    data = render((200, 200), pos, flux, fwhm=FWHM, sky=sky, noise=4.0, rng=rng).astype(np.float32)
    im = Image(data=data, sources=Sources(pos), fwhm=FWHM, jd=jd, path=f"f{jd}.fits", gain=2.0, read_noise=10.0,
               airmass=1.2, exposure=30.0, bkg=sky, dx=shift, dy=shift, saturation=saturation)
    AperturePhotometry(radii=[1.0, 2.0, 3.0]).run(im)
    AnnulusBackground().run(im)
    return im


def test_getfluxes_with_a_rejected_frame():
    xy = np.array([[60.0, 60.0], [140.0, 120.0], [100.0, 190.0]])
    flux = np.array([5e4, 2e4, 1e4])
    block = GetFluxes()
    block.setup()
    frames = [_measured_frame(xy, flux, jd=1.0, seed=1),
              Image(data=np.zeros((200, 200)), jd=2.0, path="bad.fits", flags=int(Flag.ALIGNMENT_FAILED)),
              _measured_frame(xy, flux, jd=3.0, shift=0.5, seed=3)]
    for im in frames:
        block.run(im)
    block.finish()
    f = block.fluxes
    assert f.shape == (3, 3, 3) and f.time.tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(f.fluxes[:, :, 1]).all() and np.isnan(f.errors[:, :, 1]).all()
    assert f.flags.tolist()[1] == Flag.ALIGNMENT_FAILED
    assert np.allclose(f.apertures, [3.0, 6.0, 9.0]) and f.data["radii"].shape == (3, 3)
    assert f.files.tolist() == ["f1.0.fits", "bad.fits", "f3.0.fits"]
    for k in ("x", "y", "peak", "bkg"):
        assert f.data[k].shape == (3, 3) and np.isnan(f.data[k][:, 1]).all()
    assert np.allclose(f.data["bkg"][:, [0, 2]], 150.0, atol=1.0)
    assert np.allclose(f.data["dx"], [0.0, np.nan, 0.5], equal_nan=True)
    # sky-subtracted flux in the 3-FWHM aperture is nearly the whole star
    assert np.allclose(f.fluxes[2, :, 0] / flux, 1.0, atol=0.01)
    # CCD equation, by hand for the target in the first frame
    im = frames[0]
    a, s, se = im.aperture["areas"][0, 2], im.annulus["median"][0], im.annulus["error"][0]
    fl = im.aperture["fluxes"][0, 2] - s * a
    var = (fl * 2.0 + a * (s * 2.0 + 100.0) + (a * se * 2.0) ** 2) / 4.0
    assert np.isclose(f.errors[2, 0, 0], np.sqrt(var))


def test_getfluxes_flags_saturated_and_edge_target():
    xy = np.array([[1.5, 100.0], [100.0, 100.0]])
    block = GetFluxes(target=0)
    im = _measured_frame(xy, np.array([5e4, 1e4]), jd=1.0, saturation=1000.0)
    block.run(im)
    assert im.flags & Flag.TARGET_SATURATED and im.flags & Flag.TARGET_NEAR_EDGE
    block2 = GetFluxes(target=1)
    im2 = _measured_frame(xy, np.array([5e4, 1e4]), jd=1.0, saturation=1e6)
    block2.run(im2)
    block2.finish()
    assert im2.flags == 0 and block2.fluxes.flags.tolist() == [0]


def _pairs_frame(transparency, sky, seed):
    """25 stars (2e5 ADU x transparency), each with a 2.5x brighter neighbour in its annulus
    (6.5 FWHM away, any angle), Moffat beta 2.5, on ``sky`` with its photon noise (+ 9 e- read)."""
    rng = np.random.default_rng(seed)
    stars = np.array([(x, y) for x in range(60, 600, 120) for y in range(60, 600, 120)], float)
    stars += rng.uniform(-0.5, 0.5, stars.shape)
    angle = rng.uniform(0, 2 * np.pi, len(stars))
    xy = np.vstack([stars, stars + 6.5 * 4.0 * np.column_stack([np.cos(angle), np.sin(angle)])])
    flux = np.r_[np.full(25, 2e5), np.full(25, 5e5)] * transparency
    clean = render((600, 600), xy, flux, fwhm=4.0, sky=0.0, profile="moffat", beta=2.5)
    noisy = clean + sky + rng.normal(0.0, 1.0, clean.shape) * np.sqrt(clean + sky + 81.0)
    return noisy.astype(np.float32), xy


def _sky_bias(block, transparency, sky, seeds=range(4)):
    """The sky error under the 25 stars as a fraction of their flux in a 2 FWHM aperture, its
    mean and standard error over stars and frames."""
    errors = []
    for seed in seeds:
        data, xy = _pairs_frame(transparency, sky, seed)
        im = Image(data=data, sources=Sources(xy), fwhm=4.0)
        block.run(im)
        errors.append((im.annulus["median"][:25] - sky) * np.pi * 8.0 ** 2 / (2e5 * transparency))
    errors = np.concatenate(errors)
    return errors.mean(), errors.std() / np.sqrt(errors.size)


@pytest.mark.parametrize("statistic", ["plane", "mean", "median"])
def test_annulus_sky_follows_the_stars_not_the_sky_noise(statistic):
    """A cloud (0.3 of the light, 4x the sky) must not move a star's sky error relative to its
    flux: what is left of the star's and neighbours' light then scales with them and cancels in a
    differential ratio. A neighbour left in the annulus moves a clipped estimator with the sky
    noise instead: the old default (clipped median, neighbours kept) shifted by ~0.6 % of the flux."""
    new, old = AnnulusBackground(statistic=statistic), AnnulusBackground(neighbours=0, statistic="median")
    (clear, e1), (cloud, e2) = _sky_bias(new, 1.0, 200.0), _sky_bias(new, 0.3, 800.0)
    assert abs(cloud - clear) < 3 * np.hypot(e1, e2) + 2e-4, (statistic, clear, cloud)
    (clear_old, o1), (cloud_old, o2) = _sky_bias(old, 1.0, 200.0), _sky_bias(old, 0.3, 800.0)
    assert cloud_old - clear_old > 10 * np.hypot(o1, o2)  # the case the default guards against
    assert abs(cloud - clear) < (cloud_old - clear_old) / 5
