"""Calibration masters against injected truth, application, overscan, tiling and Trim."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from reduce.blocks import Calibration, Trim
from reduce.algorithms.sections import overscan_level, parse_section
from reduce.model.image import Image, Sources

from ._make import calibration_set, write_fits

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def _images(pairs):
    return [Image(data=d.astype(np.float32), exposure=t) for d, t in pairs]


@pytest.fixture(scope="module")
def cal_set():
    return calibration_set()


@pytest.fixture(scope="module")
def calibrated(cal_set):
    biases, darks, flats, truth = cal_set
    cal = Calibration(bias=_images(biases), darks=_images(darks), flats=_images(flats))
    cal.setup()
    return cal, truth


def test_masters_match_injected_bias_dark_and_flat(calibrated):
    cal, truth = calibrated
    assert cal.master_bias.dtype == np.float32
    assert abs(np.median(cal.master_bias) - truth.bias) < 0.2
    assert np.std(cal.master_bias - truth.bias) < 5.0 / np.sqrt(7) * 1.6
    assert abs(np.median(cal.master_dark) - truth.dark_rate) < 0.01  # ADU/s
    assert abs(cal.master_dark[10, 10] - truth.dark_rate) < 0.3     # cosmic ray clipped
    assert abs(np.nanmedian(cal.master_flat) - 1.0) < 1e-6
    rel = cal.master_flat / truth.flat - 1
    assert np.abs(rel).max() < 0.005 and abs(rel[20, 20]) < 0.005  # cosmic ray in a flat clipped


def test_apply_recovers_sky_keeps_negatives_and_nans(calibrated):
    cal, truth = calibrated
    rng = np.random.default_rng(5)
    t = 30.0
    sky = 50.0
    raw = truth.bias + truth.dark_rate * t + sky * truth.flat + rng.normal(0, 5, truth.shape)
    raw[3, 4] = np.nan
    image = Image(data=raw.astype(np.float32), exposure=t)
    cal.run(image)
    out = image.data
    assert out.dtype == np.float32 and np.isnan(out[3, 4])
    good = np.isfinite(out)
    assert good.sum() == out.size - 1
    assert abs(np.median(out[good]) - sky) < 0.3
    dark_only = Image(data=(truth.bias + truth.dark_rate * t + rng.normal(0, 5, truth.shape)).astype(np.float32),
                      exposure=t)
    cal.run(dark_only)
    assert (dark_only.data < 0).sum() > dark_only.data.size / 4  # negatives kept, no -1 sentinel
    assert not np.any(dark_only.data == -1.0)


def test_shape_mismatch_is_a_clear_error(calibrated):
    cal, _ = calibrated
    with pytest.raises(ValueError, match="does not match the master bias"):
        cal.run(Image(data=np.zeros((10, 10), np.float32), exposure=1.0))


def test_missing_types_are_skipped_with_a_warning(cal_set, caplog):
    biases, _, _, truth = cal_set
    cal = Calibration(bias=_images(biases))
    with caplog.at_level(logging.WARNING, logger="reduce"):
        cal.setup()
    assert "no dark frames" in caplog.text and "no flat frames" in caplog.text
    image = Image(data=np.full(truth.shape, truth.bias + 10, np.float32), exposure=5.0)
    cal.run(image)
    assert abs(np.median(image.data) - 10) < 0.5
    assert cal.master_dark is None and cal.master_flat is None


def _files(folder, biases, darks, flats) -> dict[str, list[str]]:
    """The calibration set written as FITS files: {'bias'|'dark'|'flat': [paths]}."""
    return {k: [str(write_fits(folder / f"{k}{i}.fits", d.astype(np.float32), exptime=t))
                for i, (d, t) in enumerate(v)]
            for k, v in (("bias", biases), ("dark", darks), ("flat", flats))}


def test_memory_bounded_tiling_matches_single_pass(tmp_path, cal_set, caplog):
    biases, darks, flats, truth = cal_set
    files = _files(tmp_path, biases, darks, flats)
    one = Calibration(bias=files["bias"], darks=files["dark"], flats=files["flat"])
    one.setup()
    # 0.05 MB: a few rows of all frames at a time -> many tiles
    tiled = Calibration(bias=files["bias"], darks=files["dark"], flats=files["flat"], mem_limit_mb=0.05)
    with caplog.at_level(logging.INFO, logger="reduce"):
        tiled.setup()
    assert "row tiles" in caplog.text
    for name in ("master_bias", "master_dark", "master_flat"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(one, name), rtol=1e-6, atol=1e-5)
    prov = tiled.provenance()
    assert prov["bias"] == files["bias"] and prov["flats"] == files["flat"] and prov["dark_is_rate"]


def test_unreadable_calibration_frame_is_skipped(tmp_path, cal_set, caplog):
    biases, _, _, truth = cal_set
    good = [str(write_fits(tmp_path / f"b{i}.fits", d.astype(np.float32))) for i, (d, _) in enumerate(biases[:3])]
    bad = tmp_path / "broken.fits"
    bad.write_text("not fits")
    cal = Calibration(bias=good + [str(bad)])
    with caplog.at_level(logging.WARNING, logger="reduce"):
        cal.setup()
    assert "broken.fits skipped" in caplog.text and cal.provenance()["bias"] == good
    assert abs(np.median(cal.master_bias) - truth.bias) < 1.0


def test_parse_section_iraf_style():
    rows, cols = parse_section("[   4:  13,   1: 520]")
    assert (cols.start, cols.stop, rows.start, rows.stop) == (3, 13, 0, 520)
    with pytest.raises(ValueError):
        parse_section("[5:2,1:3]")
    with pytest.raises(ValueError, match="outside"):
        parse_section("[1:20,1:600]", (512, 512))


def test_overscan_from_header_biassec_is_subtracted():
    h, w = 60, 50
    rows = np.arange(h, dtype=np.float32)[:, None]
    level = 500 + 0.5 * rows                         # a bias level drifting along the rows
    data = np.broadcast_to(level, (h, w)).astype(np.float32) + 100.0
    data[:, :8] = level                              # overscan columns 1..8 hold only the bias
    image = Image(data=data, header={"BIASSEC": "[ 1: 8, 1: 60]"}, exposure=1.0)
    assert overscan_level(data, "[1:8,1:60]").shape == (h, 1)
    cal = Calibration()
    cal.run(image)
    np.testing.assert_allclose(image.data[:, 10:], 100.0, atol=1e-3)
    off = Image(data=data.copy(), header={"BIASSEC": "[1:8,1:60]"})
    Calibration(overscan=False).run(off)
    np.testing.assert_array_equal(off.data, data)


@pytest.mark.real_data
def test_overscan_on_real_iraf_frame():
    path = REAL / "ccdproc_testdata" / "a8280271.fits"
    if not path.exists():
        pytest.skip(f"real frames not found at {path.parent}")
    from reduce.io.fitsimage import FITSImage

    image = FITSImage(path)
    raw_level = float(np.median(image.data[:, 3:13]))
    assert raw_level > 100
    Calibration().run(image)
    assert abs(np.median(image.data[:, 3:13])) < 2.0     # overscan strip now ~0
    Trim().run(image)                                    # TRIMSEC [17:528,1:520]
    assert image.data.shape == (520, 512)


def test_trim_margin_moves_sources_and_drops_outside():
    image = Image(data=np.arange(100 * 80, dtype=np.float32).reshape(100, 80))
    image.sources = Sources([[40.0, 50.0], [2.0, 50.0]], flux=[10.0, 5.0])
    Trim(margin=(5, 10)).run(image)
    assert image.data.shape == (80, 70) and image.data[0, 0] == 10 * 80 + 5
    assert len(image.sources) == 1 and np.allclose(image.sources.coords, [[35.0, 40.0]])
    assert image.sources.flux[0] == 10.0
    with pytest.raises(ValueError):
        Trim(margin=-1)


def test_trim_from_trimsec_and_wcs_follows():
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [50, 40]
    wcs.wcs.crval = [10, 20]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    image = Image(data=np.zeros((80, 100), np.float32), header={"TRIMSEC": "[11:90, 6:75]"}, wcs=wcs)
    sky_before = wcs.pixel_to_world(60.0, 30.0)
    Trim().run(image)
    assert image.data.shape == (70, 80)
    sky_after = image.wcs.pixel_to_world(50.0, 25.0)
    assert sky_before.separation(sky_after).arcsec < 1e-6


def test_masters_from_the_same_files_are_built_once_per_process(tmp_path, cal_set, caplog):
    """Groups sharing calibration frames (every filter of a night shares bias and darks) reuse the
    masters; other settings, other or modified files, or in-memory frames build anew."""
    import os

    biases, darks, flats, _ = cal_set
    files = _files(tmp_path, biases, darks, flats)
    first = Calibration(bias=files["bias"], darks=files["dark"], flats=files["flat"])
    first.setup()
    with caplog.at_level(logging.INFO, logger="reduce"):
        again = Calibration(bias=files["bias"], darks=files["dark"], flats=files["flat"])
        again.setup()
    assert caplog.text.count("reused") == 3 and "master bias from" not in caplog.text
    assert again.master_bias is first.master_bias and again.master_flat is first.master_flat
    assert again.provenance() == first.provenance()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="reduce"):
        other_flats = Calibration(bias=files["bias"], darks=files["dark"], flats=files["flat"][:-1])
        other_flats.setup()
        stricter = Calibration(bias=files["bias"], sigma=2.0)
        stricter.setup()
    assert caplog.text.count("reused") == 2  # bias and darks of other_flats, not its flats
    assert "master flats from" in caplog.text and "master bias from" in caplog.text
    caplog.clear()
    data = np.asarray(biases[0][0], np.float32) + 7.0  # same size, new content: a new mtime
    write_fits(tmp_path / "bias0.fits", data, exptime=0.0)
    os.utime(tmp_path / "bias0.fits", ns=(1, 1))
    with caplog.at_level(logging.INFO, logger="reduce"):
        changed = Calibration(bias=files["bias"])
        changed.setup()
        in_memory = Calibration(bias=_images(biases))
        in_memory.setup()
    assert "reused" not in caplog.text and caplog.text.count("master bias from") == 2
    assert not np.array_equal(changed.master_bias, first.master_bias)
