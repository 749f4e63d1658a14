"""Cutouts, MedianEPSF and the Moffat/Gaussian fits against injected PSFs."""
from __future__ import annotations

import numpy as np
import pytest

from reduce import blocks
from reduce.algorithms.psf import at_gaussian_limit, fit_moffat, moffat2d, moffat_fwhm
from reduce.model.errors import FrameRejected, NoSources
from reduce.model.flags import Flag
from reduce.core.sequence import Sequence
from reduce.model.image import Image, Sources

from tests.algorithms._stars import render

from ._make import moffat_alpha, star_field


def _psf_chain(fit):
    return Sequence([blocks.PointSourceDetection(), blocks.Cutouts(), blocks.MedianEPSF(), fit])


@pytest.mark.parametrize("fwhm,beta", [(2.5, 2.5), (3.5, 3.0), (6.0, 4.5)])
def test_moffat_fwhm_within_5_percent(fwhm, beta):
    f = star_field((300, 300), n=30, fwhm=fwhm, beta=beta, seed=11, min_sep=25)
    image = Image(data=f.data.astype(np.float32))
    _psf_chain(blocks.psf.Moffat2D()).run(image, show_progress=False)
    assert abs(image.fwhm / fwhm - 1) < 0.05, image.fwhm
    assert abs(image.psf_params["beta"] - beta) < 0.5
    assert image.ellipticity < 0.05
    # the Gaussian formula applied to alpha would be far off: make sure we did not use it
    assert abs(2.3548 * image.psf_params["alpha_major"] / fwhm - 1) > 0.3


@pytest.mark.parametrize("fwhm", [2.5, 5.0])
def test_gaussian_fwhm_within_5_percent(fwhm):
    f = star_field((300, 300), n=30, fwhm=fwhm, model="gaussian", seed=12, min_sep=25)
    image = Image(data=f.data.astype(np.float32))
    _psf_chain(blocks.Gaussian2D()).run(image, show_progress=False)
    assert abs(image.fwhm / fwhm - 1) < 0.05


def test_ellipticity_and_angle():
    f = star_field((300, 300), n=30, fwhm=4.0, seed=13, min_sep=25, ellipticity=0.3, theta=0.6)
    image = Image(data=f.data.astype(np.float32))
    _psf_chain(blocks.Moffat2D()).run(image, show_progress=False)
    assert abs(image.ellipticity - 0.3) < 0.05
    assert abs(image.theta - 0.6) < 0.05


def test_moffat_fwhm_formula_on_a_noise_free_model():
    y, x = np.mgrid[0:25, 0:25]
    alpha, beta = moffat_alpha(4.0, 3.0), 3.0
    stamp = moffat2d(x, y, 1.0, 12.3, 11.8, alpha * 1.2, alpha / 1.2, 0.3, beta)
    p = fit_moffat(stamp)
    assert np.isclose(p["fwhm_major"], moffat_fwhm(alpha * 1.2, beta), rtol=1e-4)
    assert np.isclose(p["x"], 12.3, atol=1e-4) and np.isclose(p["theta"], 0.3, atol=1e-4)


@pytest.mark.parametrize("fit", [blocks.Moffat2D, blocks.Gaussian2D])
def test_a_fit_that_does_not_converge_rejects_the_frame(fit):
    """An ePSF whose corner holds a brighter blended star (seen in twilight) has no profile to
    converge on inside the bounds: the frame is rejected, no FWHM is made up."""
    y, x = np.mgrid[0:21, 0:21]
    epsf = np.exp(-((x - 10) ** 2 + (y - 10) ** 2) / 5) + 1.2 * np.exp(-((x - 19.5) ** 2 + (y - 2.5) ** 2) / 4)
    image = Image(data=np.zeros((5, 5), np.float32))
    image.epsf = (epsf + 0.03).astype(np.float32)
    with pytest.raises(FrameRejected, match="^the PSF fit did not converge") as exc:
        fit().run(image)
    assert image.fwhm is None and exc.value.flag == Flag.NO_PSF  # said as such, not as UNEXPECTED


def test_cutouts_skip_saturated_edge_and_crowded_sources():
    f = star_field((200, 200), n=6, seed=14, min_sep=40, margin=30)
    image = Image(data=f.data.astype(np.float32), bkg=f.sky)
    xy = np.vstack([f.xy, [[3.0, 100.0]], f.xy[:1] + [4.0, 0.0]])
    sat = np.zeros(len(xy), bool)
    sat[1] = True
    edge = np.zeros(len(xy), bool)
    edge[6] = True
    image.sources = Sources(xy, flux=np.arange(len(xy))[::-1] + 1.0, saturated=sat, edge=edge)
    blocks.Cutouts(size=15).run(image)
    used = set(image.computed["cutout_index"].tolist())
    assert used == {2, 3, 4, 5}  # not 0 & 7 (too close), 1 (saturated), 6 (edge)
    assert image.cutouts.shape == (4, 15, 15)
    centre = image.cutouts[:, 7, 7]
    assert np.all(centre == image.cutouts.max(axis=(1, 2)))  # stars re-centred on the middle
    image.sources = image.sources[[1, 6]]
    with pytest.raises(NoSources):
        blocks.Cutouts(size=15).run(image)


def test_median_epsf_is_normalised_and_names_resolve():
    f = star_field((200, 200), n=10, seed=15, min_sep=30)
    image = Image(data=f.data.astype(np.float32))
    Sequence([blocks.PointSourceDetection(), blocks.Cutouts(size=21),
              blocks.MedianEPSF(max_sources=5)]).run(image, show_progress=False)
    assert image.epsf.shape == (21, 21) and abs(image.epsf.sum() - 1) < 1e-5
    assert np.unravel_index(np.argmax(image.epsf), image.epsf.shape) == (10, 10)
    assert blocks.psf.Moffat2D is blocks.Moffat2D and blocks.psf.Gaussian2D is blocks.Gaussian2D
    with pytest.raises(NoSources):
        blocks.MedianEPSF().run(Image())


def test_cutouts_size_is_positional():
    """``blocks.Cutouts(21)`` as in the README and tutorial; the other options stay keyword-only."""
    assert blocks.Cutouts(15).size == 15 and blocks.Cutouts(size=20).size == 21
    with pytest.raises(TypeError):
        blocks.Cutouts(21, 30)


def test_isolation_window_agrees_with_nearest_distance():
    """Cutouts' isolation test (a window on x; a k-d tree when that window holds too many pairs)
    gives exactly ``nearest_distance > radius``: duplicates and a neighbour at exactly the radius
    are not isolated; a NaN position is never isolated."""
    from reduce.algorithms.neighbors import nearest_distance
    from reduce.blocks.psf import _isolated

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 6, 150, 400, 401, 1200):
        for radius in (3.0, 10.5):
            xy = rng.uniform(0, 650, (n, 2))
            if n > 5:
                xy[3] = xy[4]
                xy[5] = xy[2] + [radius, 0.0]
            got = _isolated(xy, radius)
            assert got.tolist() == (nearest_distance(xy) > radius).tolist()
            if n > 5:
                assert not got[[2, 3, 4, 5]].any()
    xy = rng.uniform(0, 650, (50, 2))
    xy[7, 0] = np.nan
    got = _isolated(xy, 10.5)
    assert not got[7] and got[np.arange(50) != 7].tolist() == (nearest_distance(np.delete(xy, 7, 0)) > 10.5).tolist()


def test_isolation_of_thousands_of_positions_ignores_nan_ones(monkeypatch):
    """When the x-window holds too many pairs the k-d tree answers: a NaN position is never isolated
    nor anyone's neighbour there either (a NaN in a k-d tree raises); both ways agree."""
    from reduce.algorithms import neighbors
    from reduce.blocks import psf

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 4000, (500, 2))
    xy[5] = np.nan
    xy[7] = xy[8] + 1.0  # a close pair
    window = psf._isolated(xy, 3.0)
    monkeypatch.setattr(neighbors, "_PAIRS_MAX", 10)
    out = psf._isolated(xy, 3.0)
    assert (out == window).all()
    assert not out[5] and not out[7] and not out[8]
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    expected = np.isfinite(xy).all(1) & (np.nan_to_num(d, nan=np.inf).min(1) > 3.0)
    assert (out == expected).all()


def test_frames_start_their_psf_fit_from_the_reference_fit():
    """The runner hands the reference's Moffat fit to the frames' Moffat2D (``like``): their fits
    start there (at the Gaussian limit for an undersampled reference, not for a Moffat-like one)."""
    from reduce.model.image import Image
    from reduce.run.reference import psf_like_reference

    rng = np.random.default_rng(5)
    for fwhm, profile, expected in ((1.7, "gaussian", True), (4.0, "moffat", False)):
        ref = Image(data=render((31, 31), [[15.3, 14.8]], 1.0, fwhm=fwhm, sky=0.0, noise=1e-4, rng=rng,
                                profile=profile, beta=2.5))
        ref.epsf = ref.data / ref.data.sum()
        blocks.Moffat2D().run(ref)
        chain = [blocks.Cutouts(21), blocks.MedianEPSF(), blocks.Moffat2D()]
        psf_like_reference(chain, ref)
        assert chain[2].like == ref.psf_params and at_gaussian_limit(chain[2].like) is expected
