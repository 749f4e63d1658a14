"""PointSourceDetection: positions against injected truth, flags, ordering and failures."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from reduce.blocks import PointSourceDetection
from reduce.model.errors import NoSources
from reduce.model.image import Image

from ._make import star_field


def _match(found, truth):
    d, i = cKDTree(truth).query(found)
    return d, i


@pytest.mark.parametrize("fwhm,model", [(2.5, "moffat"), (4.0, "gaussian"), (6.0, "moffat")])
def test_bright_star_positions_within_a_tenth_of_a_pixel(fwhm, model):
    f = star_field((300, 300), n=40, fwhm=fwhm, model=model, seed=7, min_sep=16)
    image = Image(data=f.data.astype(np.float32))
    PointSourceDetection().run(image)
    src = image.sources
    d, i = _match(src.coords, f.xy)
    bright = f.flux[i] > 3e4
    assert bright.sum() >= 20
    assert d[bright].max() < 0.1, d[bright].max()
    assert len(set(i)) == 40  # every star found once
    assert np.all(np.diff(src.flux) <= 0)  # brightest first
    assert abs(image.bkg - f.sky) < 3.0 and abs(image.bkg_rms - 5.0) < 1.0  # wings add light


def test_saturated_and_edge_flags():
    f = star_field((200, 200), n=10, seed=2, min_sep=20, margin=20)
    data = f.data.astype(np.float32)
    x0, y0 = f.xy[0]
    data[int(y0) - 1:int(y0) + 2, int(x0) - 1:int(x0) + 2] = 60000.0     # a clipped star core
    yy, xx = np.mgrid[0:200, 0:200]
    data += (3e4 * np.exp(-((xx - 2.0) ** 2 + (yy - 100.0) ** 2) / (2 * 1.7 ** 2))).astype(np.float32)
    image = Image(data=data, saturation=60000.0)
    PointSourceDetection(edge=5).run(image)
    src = image.sources
    sat = src.coords[src.saturated]
    assert len(sat) == 1 and np.hypot(*(sat[0] - [x0, y0])) < 1.5
    edge = src.coords[src.edge]
    assert len(edge) == 1 and edge[0][0] < 5 and abs(edge[0][1] - 100) < 1
    assert not (src.saturated & src.edge).any()


def test_n_and_min_separation():
    f = star_field((200, 200), n=12, seed=4, min_sep=30)
    data = f.data.copy()
    # a fainter companion 8 px from the brightest star
    b = int(np.argmax(f.flux))
    yy, xx = np.mgrid[0:200, 0:200]
    cx, cy = f.xy[b] + [8.0, 0.0]
    data += 5000 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.5 ** 2))
    all_src = PointSourceDetection()(Image(data=data.astype(np.float32))).sources
    assert np.min(cKDTree(all_src.coords).query(all_src.coords, k=2)[0][:, 1]) < 9  # deblended pair
    assert len(PointSourceDetection(deblend=False)(Image(data=data.astype(np.float32))).sources) == 12
    pruned = PointSourceDetection(min_separation=10)(Image(data=data.astype(np.float32))).sources
    assert len(pruned) == len(all_src) - 1
    assert np.min(cKDTree(pruned.coords).query(pruned.coords, k=2)[0][:, 1]) >= 10
    top = PointSourceDetection(n=5)(Image(data=data.astype(np.float32))).sources
    assert len(top) == 5 and np.allclose(top.flux, all_src.flux[:5])


def test_background_map_mode_and_nan_pixels():
    f = star_field((200, 200), n=10, seed=5, min_sep=20)
    yy, xx = np.mgrid[0:200, 0:200]
    data = (f.data + 0.5 * xx).astype(np.float32)  # a sky gradient
    data[50:60, 10:20] = np.nan
    image = Image(data=data)
    PointSourceDetection(background="map").run(image)
    d, _ = _match(image.sources.coords, f.xy)
    assert len(image.sources) == 10 and d.max() < 0.2


def test_blank_frame_raises_no_sources():
    rng = np.random.default_rng(0)
    with pytest.raises(NoSources):
        PointSourceDetection().run(Image(data=rng.normal(100, 5, (100, 100)).astype(np.float32)))
    with pytest.raises(NoSources):
        PointSourceDetection().run(Image(data=np.full((50, 50), 7.0, np.float32)))


def test_big_endian_input_is_accepted():
    f = star_field((150, 150), n=6, seed=6, min_sep=25)
    image = Image(data=f.data.astype(">f4"))
    PointSourceDetection().run(image)
    assert len(image.sources) == 6


def test_bad_parameters():
    with pytest.raises(ValueError):
        PointSourceDetection(threshold=0)
    with pytest.raises(ValueError):
        PointSourceDetection(background="mesh")


def test_crowded_frame_outgrows_the_frame_sized_pixel_stack(monkeypatch):
    """The pixel stack is sized to the frame; a frame with more pixels above threshold than it
    holds is detected completely after growing it, and later frames start from the grown size."""
    from reduce.blocks import detection

    f = star_field((300, 300), n=40, fwhm=6.0, seed=3, min_sep=16)
    expected = len(PointSourceDetection()(Image(data=f.data.astype(np.float32))).sources)
    monkeypatch.setattr(detection, "_PIXSTACK_MIN", 64)
    monkeypatch.setattr(detection, "_PIXSTACK_MAX", 64)
    monkeypatch.setattr(detection, "_pixstack_floor", 0)
    assert detection._pixstack_for(f.data.size) == 64
    found = PointSourceDetection()(Image(data=f.data.astype(np.float32))).sources
    assert len(found) == expected == 40
    assert detection._pixstack_floor >= 256
    assert detection._pixstack_for(f.data.size) == detection._pixstack_floor


def test_windowed_refinement_is_optional_and_close_to_the_barycentres():
    f = star_field((300, 300), n=40, fwhm=4.0, seed=7, min_sep=16)
    plain = PointSourceDetection()(Image(data=f.data.astype(np.float32))).sources
    refined = PointSourceDetection(refine=20)(Image(data=f.data.astype(np.float32))).sources
    moved = np.hypot(*(refined.coords - plain.coords).T)
    assert moved[:20].max() > 0 and moved[20:].max() == 0  # only the 20 brightest are refined
    d_plain, i = _match(plain.coords[:20], f.xy)
    d_refined, _ = _match(refined.coords[:20], f.xy)
    assert d_refined.max() < 0.05 and d_plain.max() < 0.1


def test_quick_threshold_keeps_the_bright_stars_and_falls_back_when_too_few():
    """The runner's quick_threshold (frames of dense fields) detects only the brighter stars, at
    the same positions; when it would leave fewer than QUICK_MIN, the full detection is kept."""
    from reduce.blocks.detection import QUICK_MIN

    f = star_field((400, 400), n=150, fwhm=3.0, seed=4, min_sep=12, flux_range=(400, 4e5))
    full = Image(data=f.data.astype(np.float32))
    PointSourceDetection().run(full)
    quick_block = PointSourceDetection()
    quick_block.quick_threshold = 60.0
    quick = Image(data=f.data.astype(np.float32))
    quick_block.run(quick)
    n = len(quick.sources)
    assert QUICK_MIN <= n < len(full.sources) - 30, (n, len(full.sources))
    d, i = cKDTree(full.sources.coords).query(quick.sources.coords)
    # the same, brightest stars (isophotal centroids move a little with the threshold)
    assert d.max() < 0.3 and np.all(i[:20] < 30)
    too_high = PointSourceDetection()
    too_high.quick_threshold = 1e5  # would find (almost) nothing
    fallback = Image(data=f.data.astype(np.float32))
    too_high.run(fallback)
    assert np.array_equal(fallback.sources.coords, full.sources.coords)
