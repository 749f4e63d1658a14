"""The bad-pixel mask on small synthetic nights: raw saturation read before calibration, dead
(unilluminated) columns, the target's edge flag, and errors that grow with a bright sky."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from reduce.algorithms.apertures import EDGE, MASKED
from reduce.blocks import (AlignReferenceSources, AnnulusBackground, AperturePhotometry, Calibration,
                           CentroidQuadratic, GetFluxes, PointSourceDetection)
from reduce.model.flags import Flag
from reduce.model.image import Image, PixelFlag, Sources

from ._make import moffat_alpha

BIAS, RN, GAIN, SATURATE = 1200.0, 5.0, 1.5, 65535.0


def _stars(shape, xy, flux, fwhm=3.5, beta=3.0):
    """Moffat stars (total ``flux`` ADU each) on a zero background."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    a = moffat_alpha(fwhm, beta)
    out = np.zeros(shape)
    for (x0, y0), f in zip(xy, flux):
        out += f * (beta - 1) / (np.pi * a * a) * (1 + ((xx - x0) ** 2 + (yy - y0) ** 2) / a ** 2) ** (-beta)
    return out


def _raw(signal, flat, rng):
    """What the camera writes: bias + flat x (signal + photon noise) + read noise, clipped by the ADC."""
    electrons = rng.poisson(np.clip(signal * GAIN, 0, None)) / GAIN
    raw = BIAS + flat * electrons + rng.normal(0, RN, signal.shape)
    return np.clip(np.round(raw), 0, SATURATE).astype(np.float32)


def _calibration(shape, flat, rng, n=5):
    bias = [Image(data=(BIAS + rng.normal(0, RN, shape)).astype(np.float32)) for _ in range(n)]
    flats = [Image(data=(BIAS + 20000.0 * flat + rng.normal(0, RN, shape)).astype(np.float32), exposure=2.0)
             for _ in range(n)]
    return Calibration(bias=bias, flats=flats)


# -- saturation is read on the raw pixels (issue 9 item 4) -------------------------------------

XY = np.array([[30.0, 35.0], [80.0, 30.0], [125.0, 40.0], [40.0, 90.0], [90.0, 85.0], [130.0, 110.0],
               [30.0, 130.0], [75.0, 135.0], [110.0, 60.0], [60.0, 60.0]])
FLUX = np.array([6e4, 5e4, 4e4, 3.5e4, 3e4, 2.5e4, 2e4, 1.8e4, 1.5e4, 2.2e6])  # star 9: clipped


def _saturation_night(n_frames=12, seed=3):
    """Frames of 160x160 px with a 1,200 ADU bias and a flat of 1.04 around star 9, whose raw
    peak is clipped at 65,535 ADU by the ADC."""
    rng = np.random.default_rng(seed)
    shape = (160, 160)
    flat = 1 + 0.005 * rng.standard_normal(shape)
    flat[50:71, 50:71] = 1.04
    cal = _calibration(shape, flat, rng)
    frames = []
    for i in range(n_frames):
        scale = 1 + 0.02 * np.sin(i)  # transparency
        signal = 300.0 + _stars(shape, XY, FLUX * scale)
        frames.append(Image(data=_raw(signal, flat, rng), saturation=SATURATE, gain=GAIN, read_noise=RN,
                            jd=2460000.5 + i / 1440, exposure=30.0, path=f"f{i:02d}.fits"))
    return cal, frames


def test_a_star_clipped_in_raw_adu_is_saturated_and_never_a_comparison():
    cal, frames = _saturation_night()
    ref = frames[0].copy()
    cal.run(ref)
    y, x = np.unravel_index(np.argmax(np.where(ref.mask == 0, 0, ref.data)), ref.data.shape)
    # bias 1,200 and flat 1.04: the clipped core calibrates below the old 95 % threshold
    assert ref.mask[y, x] == PixelFlag.SATURATED and np.hypot(x - 60, y - 60) < 2
    assert ref.data[y, x] < 0.95 * SATURATE and ref.mask_bits == PixelFlag.SATURATED
    PointSourceDetection().run(ref)
    star = int(np.argmin(np.hypot(*(ref.sources.coords - XY[9]).T)))
    assert ref.sources.saturated.tolist() == [i == star for i in range(len(ref.sources))]
    target = int(np.argmin(np.hypot(*(ref.sources.coords - XY[0]).T)))
    chain = [cal, PointSourceDetection(), AlignReferenceSources(ref, min_match=5),
             CentroidQuadratic(target=target), AperturePhotometry(radii=[4.0, 6.0, 8.0], scale="pixels"),
             AnnulusBackground(inner=12, outer=18, scale="pixels")]
    collect = GetFluxes(target=target)
    collect.setup()
    for im in frames:
        for block in chain:
            block.run(im)
        assert im.sources.saturated[star]  # AlignReferenceSources keeps the reference's flags
        collect.run(im)
    collect.finish()
    f = collect.fluxes
    assert f.data["saturated"][star].all() and f.data["saturated"].sum() == len(frames)
    assert not f.flags.any()
    assert np.isnan(f.fluxes[:, star]).all()  # its apertures overlap clipped pixels: never summed
    diff = f.autodiff(max_comps=20)
    assert star not in diff.comparisons and len(diff.comparisons) >= 5


def test_saturated_target_flags_the_frame():
    cal, frames = _saturation_night(n_frames=1)
    im = frames[0]
    cal.run(im)
    PointSourceDetection().run(im)
    target = int(np.argmin(np.hypot(*(im.sources.coords - XY[9]).T)))
    AperturePhotometry(radii=[4.0, 8.0], scale="pixels").run(im)
    AnnulusBackground(inner=12, outer=18, scale="pixels").run(im)
    GetFluxes(target=target).run(im)
    assert im.flags == Flag.TARGET_SATURATED


# -- dead columns at both ends of a CCD window (issue 9 item 3) ---------------------------------

def _window_night(n_frames=3, seed=5):
    """A 130x48 px window whose 3 first and 2 last columns see no light (bias level in the flats
    too), with 4 stars, one 7 px from a dead column."""
    rng = np.random.default_rng(seed)
    shape = (48, 130)
    flat = 1 + 0.01 * rng.standard_normal(shape)
    flat[:, :3] = 0.0
    flat[:, -2:] = 0.0
    cal = _calibration(shape, flat, rng)
    xy = np.array([[40.0, 24.0], [70.0, 20.0], [100.0, 28.0], [10.0, 25.0]])
    frames = [Image(data=_raw(200.0 + _stars(shape, xy, [3e4, 2.5e4, 2e4, 2e4]), flat, rng),
                    saturation=SATURATE, gain=GAIN, read_noise=RN, jd=2460000.5 + i / 1440,
                    path=f"w{i}.fits") for i in range(n_frames)]
    return cal, frames, xy


def test_dead_columns_give_finite_masked_data_and_no_warnings():
    cal, frames, xy = _window_night()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning anywhere on the way
        collect = GetFluxes(target=0)
        collect.setup()
        for im in frames:
            cal.run(im)
            assert np.isfinite(im.data).all()
            dead = (im.mask & PixelFlag.UNILLUMINATED) != 0
            assert dead[:, :3].all() and dead[:, -2:].all() and not dead[:, 3:-2].any()
            # left undivided: the dead pixels hold their bias-subtracted value (~0), not inf
            assert abs(np.median(im.data[dead])) < 3 * RN
            PointSourceDetection().run(im)
            assert abs(im.bkg - 200.0) < 5  # the dead columns do not drag the sky down
            assert all(np.hypot(*(im.sources.coords - p).T).min() < 1 for p in xy)
            assert (im.sources.x > 3).all() and (im.sources.x < 127).all()  # nothing on the dead columns
            im.sources = Sources(xy)
            CentroidQuadratic().run(im)
            AperturePhotometry(radii=[3.0, 6.0, 8.0], scale="pixels").run(im)
            AnnulusBackground(inner=10, outer=16, scale="pixels").run(im)
            collect.run(im)
        collect.finish()
    ap = frames[0].aperture
    # star 3 sits 7.5 px from the dead columns' edge: 3 and 6 px apertures fit, 8 px does not
    assert ap["flags"][3].tolist() == [0, 0, MASKED] and (ap["flags"][:3] == 0).all()
    f = collect.fluxes
    assert np.isnan(f.fluxes[2, 3]).all() and np.isfinite(f.fluxes[:2, 3]).all()
    # its annulus is cut by the dead columns and the frame: the sky comes from the pixels left
    assert frames[0].annulus["area"][3] < frames[0].annulus["area"][0]
    assert np.allclose(f.data["bkg"], 200.0, atol=3.0)
    alpha = moffat_alpha(3.5, 3.0)
    enclosed = 1 - (1 + 36 / alpha ** 2) ** -2  # a Moffat (beta 3) star within 6 px
    assert np.allclose(f.fluxes[1, :3] / [[3e4], [2.5e4], [2e4]], enclosed, atol=0.03)


def test_annulus_with_too_few_pixels_left_is_nan():
    data = np.full((40, 300), 50.0, np.float32)
    data[:, 186:] = 0.0
    mask = np.zeros(data.shape, np.uint8)
    mask[:, 186:] = PixelFlag.UNILLUMINATED  # most of the second star's annulus
    xy = np.array([[60.0, 20.0], [200.0, 20.0]])
    im = Image(data=data, sources=Sources(xy), fwhm=3.0)
    im.set_mask(mask)
    AnnulusBackground(inner=8.0, outer=16.0, scale="pixels", min_pixels=20).run(im)
    a = im.annulus
    yy, xx = np.mgrid[0:40, 0:300]
    for i, (x, y) in enumerate(xy):
        r = np.hypot(xx - x, yy - y)
        assert a["area"][i] == np.count_nonzero((r >= 8) & (r < 16) & (mask == 0))
    assert a["area"][0] >= 20 and a["median"][0] == 50.0
    assert 0 < a["area"][1] < 20 and np.isnan(a["median"][1]) and np.isnan(a["error"][1])
    with pytest.raises(ValueError, match="min_pixels"):
        AnnulusBackground(min_pixels=0)


# -- the edge flag concerns the chosen aperture only (issue 9 item 3) ---------------------------

def test_target_near_the_edge_is_not_flagged_while_an_aperture_fits():
    shape = (120, 120)
    xy = np.array([[6.0, 60.0], [60.0, 60.0], [90.0, 30.0]])
    rng = np.random.default_rng(1)
    data = (300.0 + _stars(shape, xy, [2e4, 2e4, 2e4]) + rng.normal(0, 5, shape)).astype(np.float32)
    im = Image(data=data, sources=Sources(xy), fwhm=3.0, jd=1.0, gain=GAIN)
    AperturePhotometry(radii=[1.0, 1.5, 2.5], scale="fwhm").run(im)  # 3, 4.5, 7.5 px
    AnnulusBackground(inner=10, outer=15, scale="pixels").run(im)
    block = GetFluxes(target=0)
    block.setup()
    block.run(im)
    assert im.flags == 0  # the 7.5 px aperture leaves the frame, the others fit
    assert im.aperture["flags"][0].tolist() == [0, 0, EDGE]
    off = Image(data=data, sources=Sources([[1.0, 60.0], [60.0, 60.0], [90.0, 30.0]]), fwhm=3.0, jd=2.0)
    AperturePhotometry(radii=[1.0, 1.5, 2.5], scale="fwhm").run(off)
    block.run(off)
    assert off.flags == Flag.TARGET_NEAR_EDGE and "smallest" in off.issues[0][2]


# -- a bright (twilight) sky: errors grow with it (issue 9 item 5) ------------------------------

@pytest.mark.parametrize("sky", [300.0, 24700.0])
def test_errors_follow_the_sky_noise_per_pixel(sky):
    shape = (80, 80)
    xy = np.array([[40.0, 40.0]])
    rng = np.random.default_rng(int(sky))
    block = GetFluxes()
    block.setup()
    for i in range(60):
        signal = sky + _stars(shape, xy, [5e4])
        data = (rng.poisson(signal * GAIN) / GAIN + rng.normal(0, RN / GAIN, shape)).astype(np.float32)
        im = Image(data=data, sources=Sources(xy), fwhm=3.5, jd=float(i), gain=GAIN, read_noise=RN)
        AperturePhotometry(radii=[2.0], scale="fwhm").run(im)
        AnnulusBackground(inner=5, outer=10, scale="fwhm").run(im)
        block.run(im)
    block.finish()
    flux, err = block.fluxes.fluxes[0, 0], block.fluxes.errors[0, 0]
    area = np.pi * 7.0 ** 2
    expected = np.sqrt((5e4 * 0.9 * GAIN + area * (sky * GAIN + RN ** 2)) / GAIN ** 2)
    assert np.median(err) == pytest.approx(expected, rel=0.05)
    # and the errors are honest: the scatter of the measured fluxes matches them
    assert np.std(flux) == pytest.approx(np.median(err), rel=0.3)


REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "exotic_hatp32"


@pytest.mark.skipif(not REAL.is_dir(), reason="shared real frames (../shared/data/real) not present")
def test_a_12_bit_camera_in_16_bit_files_saturates_at_4095():
    from reduce.io.fitsimage import FITSImage

    im = FITSImage(REAL / "HATP-32171220013343.FITS")
    assert im.saturation == 32767  # BITPIX 16, no SATURATE: the data type says 32767
    clipped = im.data >= 4095
    assert 100 < clipped.sum() < 300
    Calibration().run(im)  # no masters: only the mask
    assert np.array_equal((im.mask & PixelFlag.SATURATED) != 0, clipped)
    PointSourceDetection().run(im)
    src = im.sources
    assert 3 <= src.saturated.sum() <= 40 and src.saturated[:3].any()  # the brightest stars
    target = int(np.argmin(np.hypot(src.x - 423.2, src.y - 286.0)))
    assert np.hypot(src.x[target] - 423.2, src.y[target] - 286.0) < 1.5 and not src.saturated[target]


def _write_window_night(folder: Path, n_frames=60, seed=11):
    """A 200x64 px CCD window (uint16, BZERO 32768): dead columns at both ends, bias 1,200 ADU,
    dome flats, a clipped bright star, and a twilight sky falling from 24,700 to 300 ADU over the
    first 30 one-minute frames."""
    from datetime import datetime, timedelta

    from ._make import write_fits

    rng = np.random.default_rng(seed)
    shape = (64, 200)
    flat = 1 + 0.01 * rng.standard_normal(shape)
    flat[:, :3] = 0.0
    flat[:, -3:] = 0.0
    xy = np.array([[100.0, 32.0], [30.0, 20.0], [55.0, 45.0], [80.0, 12.0], [125.0, 50.0], [150.0, 22.0],
                   [172.0, 40.0], [40.0, 52.0], [140.0, 10.0], [65.0, 28.0]])
    flux = np.array([2e5, 3e5, 2.5e5, 1.5e5, 2e5, 1.2e5, 1e5, 1.8e5, 9e4, 4e6])  # star 9: clipped
    for i in range(5):
        write_fits(folder / f"bias_{i}.fits", BIAS + rng.normal(0, RN, shape), exptime=0.0, imagetyp="bias",
                   dtype=np.uint16, bzero=32768)
        write_fits(folder / f"flat_{i}.fits", BIAS + 20000 * flat + rng.normal(0, RN, shape), exptime=2.0,
                   imagetyp="flat", dtype=np.uint16, bzero=32768, header={"FILTER": "V"})
    start = datetime(2024, 3, 1, 1, 0, 0)
    tau = 30 / np.log(24700 / 300)
    for i in range(n_frames):
        sky = 300 + 24400 * np.exp(-i / tau)
        jitter = rng.normal(0, 0.3, 2)
        dip = np.where(np.arange(len(xy)) == 0, 1 - 0.01 * (20 <= i < 40), 1.0)  # the target's transit
        signal = sky + _stars(shape, xy + jitter, flux * dip, fwhm=3.0)
        date = (start + timedelta(minutes=i)).isoformat()
        write_fits(folder / f"light_{i:03d}.fits", _raw(signal, flat, rng), exptime=60.0, imagetyp="light",
                   dtype=np.uint16, bzero=32768, header={"DATE-OBS": date, "FILTER": "V", "OBJECT": "T"})
    return xy


def test_a_window_night_with_dead_columns_and_twilight_reduces_fully(tmp_path):
    from astropy.table import Table

    from reduce.cli import main

    night = tmp_path / "night"
    night.mkdir()
    _write_window_night(night)
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "default.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in ("run", recipe, night, "-o", tmp_path / "out", "-q", "-j", "1",
                                   "--target", "100,32", "--reference", "middle")])
    assert exc.value.code == 0
    table = Table.read(next((tmp_path / "out").glob("*.csv")))
    assert len(table) == 60 and np.all(table["flag"] == 0)  # twilight frames kept, nothing flagged
    flux = np.asarray(table["flux"])
    assert np.isfinite(flux).all()
    assert np.median(flux[20:40]) / np.median(np.r_[flux[:20], flux[40:]]) == pytest.approx(0.99, abs=0.003)
    err = np.asarray(table["flux_err"])
    assert np.median(err[:5]) > 1.5 * np.median(err[-10:])  # errors grow with the twilight sky
