"""AlignReferenceSources on synthetic drifting nights and on two real DSLR frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reduce.blocks import AlignReferenceSources
from reduce.core.errors import AlignmentFailed
from reduce.image import Image, Sources
from tests.algorithms._stars import apply, transform_matrix

W = 600
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "panoptes_kic8462852"


def _inside(p, w=W):
    return (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= w - 1)


@pytest.fixture(scope="module")
def sky():
    rng = np.random.default_rng(11)
    n = int(50 * (2200 / W) ** 2)
    xy = rng.uniform(-800, 1400, (n, 2))
    return xy[np.argsort(-rng.pareto(1.5, n))]


def _frame_image(rng, sky, t):
    p = apply(t, sky)
    keep = _inside(p) & (rng.random(len(p)) > 0.2)
    xy = p[keep] + rng.normal(0, 0.03, (keep.sum(), 2))
    fake = rng.uniform(0, W - 1, (len(xy) // 5, 2))
    rank = np.concatenate([np.arange(len(xy)), rng.uniform(0, len(xy), len(fake))])
    det = np.concatenate([xy, fake])[np.argsort(rank, kind="stable")]
    return Image(data=np.zeros((W, W), np.float32), sources=Sources(det))


def _reference(sky):
    ref_xy = sky[_inside(sky)]
    return Image(data=np.zeros((W, W), np.float32), sources=Sources(ref_xy, flux=np.arange(len(ref_xy))[::-1]))


def test_night_with_drift_rotation_and_jumps(sky):
    rng = np.random.default_rng(2)
    ref = _reference(sky)
    block = AlignReferenceSources(ref)
    c = (W / 2, W / 2)
    # slow drift to 40 % of the width, field rotation up to 1 degree, then a sudden jump back
    steps = [transform_matrix(dx=0.4 * W * k / 5, dy=-0.1 * W * k / 5, angle_deg=k / 5, center=c) for k in range(6)]
    steps.append(transform_matrix(dx=-0.35 * W, dy=0.2 * W, angle_deg=-0.3, center=c))
    steps.append(transform_matrix(dx=1.5, dy=-2.0, center=c))
    for t in steps:
        im = _frame_image(rng, sky, t)
        block.run(im)
        truth = apply(t, ref.sources.coords)
        assert len(im.sources) == len(ref.sources)  # reference order and count kept
        seen = _inside(truth)
        err = im.sources.coords[seen] - truth[seen]
        assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.05
        assert np.array_equal(im.sources.edge, ~seen)
        centre = np.array(c) - 0.5
        assert np.allclose([im.dx, im.dy], apply(t, centre[None])[0] - centre, atol=0.05)
        assert im.computed["alignment"]["matched"] >= 6


def test_unmatched_frame_is_flagged_not_misplaced(sky):
    rng = np.random.default_rng(4)
    block = AlignReferenceSources(_reference(sky))
    for _ in range(5):
        im = Image(data=np.zeros((W, W), np.float32), sources=Sources(rng.uniform(0, W, (60, 2))))
        with pytest.raises(AlignmentFailed):
            block.run(im)
        assert im.transform is None
    with pytest.raises(AlignmentFailed):
        block.run(Image(data=np.zeros((W, W)), sources=Sources(np.zeros((2, 2)))))


def test_reference_must_have_sources():
    with pytest.raises(ValueError, match="no sources"):
        AlignReferenceSources(Image(data=np.zeros((10, 10))))
    with pytest.raises(ValueError):
        AlignReferenceSources(np.zeros((5, 2)), tolerance=0)
    block = AlignReferenceSources(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert block.params()["n"] == 30


def _detect(data):
    """Stars of a raw Bayer frame: 2x2 superpixels undo the RGGB pattern, sep on the
    background-subtracted binned image; positions back in full-resolution pixels."""
    import sep

    ny, nx = data.shape
    b = data[: ny // 2 * 2, : nx // 2 * 2].astype(np.float32).reshape(ny // 2, 2, nx // 2, 2).sum(axis=(1, 3))
    bkg = sep.Background(b)
    obj = sep.extract(b - bkg.back(), 5, err=bkg.globalrms, minarea=4)
    obj = obj[np.argsort(-obj["flux"])]
    return np.column_stack([obj["x"], obj["y"]]) * 2 + 0.5, b.shape


@pytest.mark.real_data
def test_real_dslr_frames():
    if not REAL.is_dir():
        pytest.skip(f"real frames not found at {REAL}")
    from astropy.io import fits

    with fits.open(REAL / "solved.fits.fz") as h:
        a = h[1].data
    with fits.open(REAL / "unsolved.fits") as h:
        b = h[0].data
    xa, _ = _detect(a)
    xb, _ = _detect(b)
    ima = Image(data=a.astype(np.float32), sources=Sources(xa))
    imb = Image(data=b.astype(np.float32), sources=Sources(xb))
    ab, ba = AlignReferenceSources(ima.copy()), AlignReferenceSources(imb.copy())
    ab.run(imb)
    ba.run(ima)
    for im in (ima, imb):
        info = im.computed["alignment"]
        assert info["matched"] > 100 and info["rms"] < 0.5
        assert abs(info["scale"] - 1) < 1e-3 and abs(info["rotation"]) < 0.05 and not info["flip"]
    # 2 minutes apart: a small shift, and the two independent solutions are inverses
    assert 0.5 < np.hypot(imb.dx, imb.dy) < 5
    roundtrip = imb.transform @ ima.transform
    pts = np.array([[0, 0], [699, 0], [0, 699], [699, 699], [350, 350]], float)
    back = pts @ roundtrip[:2, :2].T + roundtrip[:2, 2]
    assert np.abs(back - pts).max() < 0.05


def test_stars_shifted_off_the_frame_never_crash_the_chain():
    """Regression (bench_alignment): reference stars aligned to positions outside the frame are
    kept in reference order by every later block, marked edge, and flag nothing."""
    from reduce.blocks import AnnulusBackground, AperturePhotometry, CentroidQuadratic, GetFluxes
    from tests.algorithms._stars import render

    rng = np.random.default_rng(5)
    sky = np.vstack([rng.uniform(40, 560, (30, 2)), [[595.0, 300.0], [300.0, 3.0], [590.0, 590.0]]])
    flux = np.r_[np.full(30, 5e4), 3e4, 3e4, 3e4]
    t = transform_matrix(dx=12.3, dy=-7.6, angle_deg=0.2, center=(300, 300))
    pos = apply(t, sky)
    data = render((W, W), pos, flux, fwhm=3.0, sky=200, noise=5, rng=rng).astype(np.float32)
    ref = Image(data=np.zeros((W, W), np.float32), sources=Sources(sky, flux=flux))
    im = Image(data=data, sources=Sources(pos[_inside(pos)]), fwhm=3.0, jd=1.0, gain=1.0, bkg=200.0)
    get = GetFluxes()
    for block in (AlignReferenceSources(ref), CentroidQuadratic(), AperturePhotometry(), AnnulusBackground(), get):
        block.run(im)
    out = ~_inside(pos)
    assert out.sum() == 3 and len(im.sources) == len(sky)
    assert im.aperture["edge"][out].all() and np.isfinite(im.annulus["median"][~out]).all()
    assert np.hypot(*(im.sources.coords[~out] - pos[~out]).T).max() < 0.1
    assert im.flags == 0
    get.finish()
    assert get.fluxes.flux.shape[1] == len(sky)


def test_measured_caps_to_the_brightest_unsaturated_and_keeps_the_target():
    """max_stars: the N brightest unsaturated stars in order, then the kept ones not among them."""
    from reduce.image import Sources

    sat = np.zeros(10, bool)
    sat[[0, 3]] = True
    src = Sources(np.c_[np.arange(10.0), np.arange(10.0)], saturated=sat)
    block = AlignReferenceSources(max_stars=4)
    assert block.measured(src).tolist() == [1, 2, 4, 5]
    assert block.measured(src, keep=(8,)).tolist() == [1, 2, 4, 5, 8]
    assert block.measured(src, keep=(0,)).tolist() == [1, 2, 4, 5, 0]  # a saturated target stays
    assert block.measured(src, keep=(2,)).tolist() == [1, 2, 4, 5]
    assert AlignReferenceSources(max_stars=10).measured(src).tolist() == list(range(10))
    assert AlignReferenceSources(max_stars=None).measured(src, keep=(3,)).tolist() == list(range(10))
    with pytest.raises(ValueError, match="max_stars"):
        AlignReferenceSources(max_stars=0)
