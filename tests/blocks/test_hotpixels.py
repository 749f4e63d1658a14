"""Hot pixels never become stars: detection and the PSF ignore them even without the night's
map, and RepairHotPixels repairs them on every frame (issue 18 item 1)."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.blocks.detection import PointSourceDetection
from reduce.blocks.hotpixels import RepairHotPixels
from reduce.blocks.psf import Cutouts, MedianEPSF, Moffat2D
from reduce.model.image import Image, PixelFlag
from tests.blocks._make import star_field


def hot_frame(fwhm, *, fraction=1e-3, model="moffat", seed=0):
    """A 300x300 star field with ``fraction`` of its pixels hot, 20 ADU to the 65,535 ceiling
    (log-uniform, 5 of them clipped); returns (Image, field, hot map)."""
    field = star_field((300, 300), n=40, fwhm=fwhm, model=model, seed=seed, noise=5.0)
    rng = np.random.default_rng(seed + 100)
    hot = np.zeros(field.data.shape, bool)
    hot.flat[rng.choice(hot.size, int(fraction * hot.size), replace=False)] = True
    level = hot * np.exp(rng.uniform(np.log(20.0), np.log(7e4), hot.shape))
    level.flat[np.flatnonzero(hot)[:5]] = 1e5                      # a few at the ceiling
    data = field.data + level
    return Image(data=np.minimum(data, 65535.0).astype(np.float32), saturation=65535.0), field, hot


@pytest.mark.parametrize("fwhm, model", [(4.0, "moffat"), (1.6, "gaussian")])
def test_detection_and_psf_ignore_hot_pixels_without_a_map(fwhm, model):
    image, field, hot = hot_frame(fwhm, model=model)
    for block in (PointSourceDetection(threshold=5), Cutouts(21), MedianEPSF(), Moffat2D()):
        block.run(image)
    assert image.fwhm == pytest.approx(fwhm, rel=0.1)
    xy = image.sources.coords
    d_star = np.hypot(*(xy[:, None, :] - field.xy[None]).transpose(2, 0, 1)).min(axis=1)
    hy, hx = np.nonzero(hot & (image.data > 5 * 5.0 + 200 + 50))   # hot pixels bright enough to detect
    d_hot = np.hypot(xy[:, None, 0] - hx[None], xy[:, None, 1] - hy[None]).min(axis=1)
    assert not np.any((d_hot < 1.5) & (d_star > 3)), "a hot pixel on blank sky was taken for a star"
    found = np.hypot(*(field.xy[:, None, :] - xy[None]).transpose(2, 0, 1)).min(axis=1) < 1.5
    assert found.mean() >= 0.95
    assert image.computed["sharp_sources"] > 0


def test_repair_block_repairs_and_unsaturates_hot_pixels_only_on_frames_of_their_shape():
    image, field, hot = hot_frame(4.0)
    mask = np.where(image.data >= 65535.0, np.uint8(PixelFlag.SATURATED), np.uint8(0))
    image.set_mask(mask)
    assert (mask[hot] != 0).any()                       # some hot pixels reach the ceiling
    block = RepairHotPixels(hot)
    assert block.params() == {"pixels": int(hot.sum())}
    block.run(image)
    truth = field.data
    assert np.all(np.abs(image.data[hot] - truth[hot]) < 6 * 5.0 + 0.1 * (truth[hot] - 200))
    saturated = image.bad_pixels(PixelFlag.SATURATED)
    assert saturated is None or not saturated[hot].any()
    assert image.computed["hot_pixels"] == hot.sum()
    other = Image(data=np.ones((10, 10), np.float32))
    block.run(other)
    assert np.all(other.data == 1)


def test_a_steady_hot_pixel_beside_a_star_loses_its_dark_signal_only():
    """With the night's dark signal of each hot pixel (measured in the frames where the star is
    elsewhere: the field jumped), the pixel keeps the star's light exactly (a repair from the
    neighbours beside an undersampled core misses it by an amount that moves with the centring);
    a pixel under a star in most frames has none, and is repaired from its neighbours."""
    from reduce.run.hotpixels import dark_excess

    yy, xx = np.mgrid[0:21, 0:21]
    frames, truth = [], []
    hot = np.zeros((21, 21), bool)
    hot[10, 11] = hot[3, 3] = True
    for cx in (9.8, 10.3, -30.0, -30.0, -30.0):  # the star beside it, then jumped away
        star = 5e4 * np.exp(-((xx - cx) ** 2 + (yy - 10.0) ** 2) / (2 * 0.7 ** 2)) + 100.0
        truth.append(star)
        frames.append((star + 3000.0 * hot).astype(np.float32))
    before = np.stack(frames)
    repaired = before.copy()
    block = RepairHotPixels(hot)
    for i in range(len(repaired)):
        img = Image(data=repaired[i].copy())
        block.run(img)
        repaired[i] = img.data
    excess = dark_excess(before, repaired, hot, rms=5.0)
    assert np.allclose(excess, 3000.0, rtol=1e-3)  # (3, 3) on the sky, (10, 11) beside the star
    block = RepairHotPixels(hot, excess=excess)
    for f, t in zip(frames, truth):
        img = Image(data=f.copy())
        block.run(img)
        assert img.data[10, 11] == pytest.approx(t[10, 11], rel=1e-4)
    assert abs(repaired[0][10, 11] - truth[0][10, 11]) > 100  # the neighbours' repair misses it
    stays = np.stack([f if i < 2 else frames[i % 2] for i, f in enumerate(frames)])  # under the star
    assert np.isnan(dark_excess(stays, np.stack([repaired[i % 2] for i in range(5)]), hot, rms=5.0)[1])
