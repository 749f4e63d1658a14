"""AlignReferenceSources on synthetic drifting nights and on two real DSLR frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reduce.blocks import AlignReferenceSources
from reduce.model.errors import AlignmentFailed
from reduce.model.image import Image, Sources
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
    assert get.fluxes.fluxes.shape[1] == len(sky)


def test_measured_caps_to_the_brightest_unsaturated_and_keeps_the_target():
    """max_stars: the N brightest unsaturated stars in order, then the kept ones not among them."""
    from reduce.model.image import Sources

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



def test_capped_reference_is_matched_on_the_frames_unsaturated_stars(sky, monkeypatch):
    """A reference capped to unsaturated stars (``measured``) is matched against the frame's
    unsaturated detections: the frame's brightest, saturated stars (listed first, 40 of them
    here, none in the reference list) do not make the first asterism attempt fail, so one
    attempt places the frame, at the right place."""
    import reduce.algorithms.asterism as asterism

    rng = np.random.default_rng(5)
    t = transform_matrix(dx=-37.0, dy=21.0, angle_deg=0.3, center=(300.0, 300.0))
    ref_xy = sky[_inside(sky)]
    n = len(ref_xy)
    assert n >= 40
    sat_xy = rng.uniform(0, W - 1, (40, 2))
    det = np.concatenate([sat_xy, apply(t, ref_xy) + rng.normal(0, 0.03, (n, 2))])
    frame = Image(data=np.zeros((W, W), np.float32),
                  sources=Sources(det, saturated=np.r_[np.ones(40, bool), np.zeros(n, bool)]))
    block = AlignReferenceSources(Sources(ref_xy, saturated=np.zeros(n, bool)))
    calls = []
    solve = asterism._solve
    monkeypatch.setattr(asterism, "_solve", lambda *a, **k: calls.append(1) or solve(*a, **k))
    block.run(frame)
    assert frame.computed["alignment"]["method"] == "asterism" and len(calls) == 1
    inside = _inside(apply(t, ref_xy))
    assert np.abs(frame.sources.coords - apply(t, ref_xy))[inside].max() < 0.1


# -- sparse fields: the fallbacks (voted translation, one star, cross-correlation) -----------------

STRIPS = [(64, 521), (119, 521)]


def _strip_frame(rng, shape, xy, flux, fwhm=3.0, detect=True):
    """A rendered CCD window with its detections (PointSourceDetection defaults)."""
    from reduce.blocks import PointSourceDetection
    from tests.algorithms._stars import render

    data = render(shape, xy, flux, fwhm=fwhm, sky=300, noise=8, rng=rng).astype(np.float32)
    im = Image(data=data, fwhm=fwhm)
    if detect:
        PointSourceDetection().run(im)
    return im


@pytest.mark.parametrize("shape", STRIPS)
@pytest.mark.parametrize("n", [1, 3, 5])
def test_sparse_strips_are_placed(shape, n):
    """Windows of 1, 3 and 5 stars: jitter, a 12 px jump, a meridian flip and 1 degree of rotation."""
    rng = np.random.default_rng(n + shape[0])
    h, w = shape
    xy = np.column_stack([rng.uniform(40, w - 40, n), rng.uniform(12, h - 12, n)])
    flux = np.sort(np.exp(rng.uniform(np.log(2e4), np.log(3e5), n)))[::-1]
    ref = _strip_frame(rng, shape, xy, flux)
    assert len(ref.sources) == n
    block = AlignReferenceSources(ref)
    c = ((w - 1) / 2, (h - 1) / 2)
    moves = [transform_matrix(dx=rng.uniform(-8, 8), dy=rng.uniform(-8, 8)) for _ in range(3)]
    moves += [transform_matrix(dx=12.0, dy=-3.0), transform_matrix(dx=2, dy=1, angle_deg=180, center=c),
              transform_matrix(dx=1, dy=0.5, angle_deg=1, center=c)]
    for t in moves:
        im = _strip_frame(rng, shape, apply(t, xy), flux * rng.uniform(0.6, 1.0))
        block.run(im)
        err = im.sources.coords - apply(t, ref.sources.coords)
        assert np.abs(err).max() < 0.15, (im.computed["alignment"], err)
        # one star turned 180 degrees moves far: beyond the single-star reach, the pixels place it
        expected = {"single star", "cross-correlation"} if n == 1 else {"translation"}
        assert im.computed["alignment"]["method"] in expected


def test_sparse_strip_without_detections_is_placed_by_correlation():
    """Detections that fail (none kept) leave the pixels: the cross-correlation places the frame."""
    rng = np.random.default_rng(8)
    shape = (64, 521)
    xy = np.array([[100.0, 30.0], [260.0, 20.0], [420.0, 45.0]])
    flux = np.array([2e5, 1e5, 6e4])
    ref = _strip_frame(rng, shape, xy, flux)
    t = transform_matrix(dx=-12.0, dy=4.0)
    im = _strip_frame(rng, shape, apply(t, xy), flux, detect=False)
    im.sources = Sources(np.zeros((0, 2)))
    AlignReferenceSources(ref).run(im)
    assert im.computed["alignment"]["method"] == "cross-correlation"
    assert np.abs(im.sources.coords - apply(t, ref.sources.coords)).max() < 0.3


def test_frame_without_stars_is_flagged_with_the_reason():
    rng = np.random.default_rng(9)
    shape = (64, 521)
    ref = _strip_frame(rng, shape, np.array([[100.0, 30.0], [300.0, 20.0]]), np.array([2e5, 1e5]))
    block = AlignReferenceSources(ref)
    for sources in (None, Sources(np.zeros((0, 2)))):
        im = Image(data=np.full(shape, 300.0, np.float32), sources=sources, fwhm=3.0)
        with pytest.raises(AlignmentFailed, match="no star detected.*cross-correlation: the frame is flat"):
            block.run(im)
        assert im.transform is None and im.computed["alignment"]["method"] is None


@pytest.mark.parametrize("shape,n", [((64, 521), 1), ((119, 521), 3), ((300, 300), 40)])
def test_pure_noise_frame_is_flagged_not_placed(shape, n):
    """Noise with spurious detections of star-like fluxes: every method refuses it."""
    rng = np.random.default_rng(n)
    h, w = shape
    xy = np.column_stack([rng.uniform(20, w - 20, n), rng.uniform(10, h - 10, n)])
    flux = np.sort(np.exp(rng.uniform(np.log(2e4), np.log(3e5), n)))[::-1]
    block = AlignReferenceSources(_strip_frame(rng, shape, xy, flux))
    for m in (1, 2, 6, 20):
        fake = Sources(np.column_stack([rng.uniform(0, w, m), rng.uniform(0, h, m)]),
                       flux=np.sort(rng.uniform(1e3, 1e5, m))[::-1])
        im = Image(data=rng.normal(300, 8, shape).astype(np.float32), sources=fake, fwhm=3.0, bkg=300.0,
                   bkg_rms=8.0)
        with pytest.raises(AlignmentFailed, match="no method placed the frame"):
            block.run(im)
        assert im.transform is None


def test_large_drift_jump_flip_and_rotation_of_a_rich_field(sky):
    """300 px of drift plus a 12 px jump, a meridian flip and 1 degree, all against one reference."""
    rng = np.random.default_rng(21)
    ref = _reference(sky)
    block = AlignReferenceSources(ref)
    c = (W / 2, W / 2)
    for t in (transform_matrix(dx=-300.0, dy=40.0, center=c), transform_matrix(dx=-312.0, dy=43.0, center=c),
              transform_matrix(dx=5.0, dy=-3.0, angle_deg=180.0, center=c),
              transform_matrix(dx=-4.0, dy=2.0, angle_deg=1.0, center=c)):
        im = _frame_image(rng, sky, t)
        block.run(im)
        truth = apply(t, ref.sources.coords)
        seen = _inside(truth)
        assert np.sqrt(np.mean(np.sum((im.sources.coords[seen] - truth[seen]) ** 2, axis=1))) < 0.05
        assert im.computed["alignment"]["method"] == "asterism"


def test_match_radius_follows_the_fwhm(sky):
    """Defocused stars (FWHM 8 px) with 1 px of centroid scatter a side: a fixed 2 px radius rejects the
    frame (residual above 1 px), the default radius (0.75 FWHM) accepts it."""
    rng = np.random.default_rng(5)
    ref = _reference(sky)
    t = transform_matrix(dx=20.0, dy=-10.0, center=(W / 2, W / 2))
    p = apply(t, sky)
    keep = _inside(p)
    im = Image(data=np.zeros((W, W), np.float32), sources=Sources(p[keep] + rng.normal(0, 1.0, (keep.sum(), 2))),
               fwhm=8.0)
    with pytest.raises(AlignmentFailed, match="exceeds"):
        AlignReferenceSources(ref, tolerance=2.0, fallbacks=False).run(im.copy())
    AlignReferenceSources(ref).run(im)
    assert im.computed["alignment"]["method"] == "asterism"
    err = im.sources.coords - apply(t, ref.sources.coords)
    # an affine fit on ~50 stars of 1 px scatter: a few tenths of a pixel, far inside the 8 px FWHM
    assert np.sqrt(np.mean(np.sum(err[_inside(apply(t, ref.sources.coords))] ** 2, axis=1))) < 0.5


def test_methods_are_counted_and_logged_once(caplog):
    from reduce.blocks import AlignmentMethods
    from reduce.core.sequence import Sequence

    rng = np.random.default_rng(12)
    shape = (64, 521)
    xy = np.array([[100.0, 30.0], [260.0, 20.0], [420.0, 45.0]])
    flux = np.array([2e5, 1e5, 6e4])
    ref = _strip_frame(rng, shape, xy, flux)
    frames = [_strip_frame(rng, shape, xy + [dx, 0.0], flux) for dx in (0.0, 3.0, -5.0)]
    frames.append(Image(data=np.full(shape, 300.0, np.float32), sources=Sources(np.zeros((0, 2))), fwhm=3.0))
    counter = AlignmentMethods(label="strip night")
    with caplog.at_level("INFO", logger="reduce"):
        Sequence([AlignReferenceSources(ref), counter], provided=("sources",)).run(frames, show_progress=False)
    assert counter.counts == {"translation": 3, "failed": 1}
    lines = [r.getMessage() for r in caplog.records if "aligned" in r.getMessage()]
    assert lines == ["strip night: 3 of 4 frame(s) aligned (3 by translation); 1 failed"]
