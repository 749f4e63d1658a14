"""FITSImage on generated files of every storage kind and on the real camera frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from reduce.model.errors import Unreadable
from reduce.io.fitsimage import FITSImage

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def _header(**extra):
    h = fits.Header()
    h["EXPTIME"] = 12.0
    h["DATE-OBS"] = "2024-03-01T22:00:00"
    h["FILTER"] = "V"
    h["OBJECT"] = "WASP-12"
    for k, v in extra.items():
        h[k] = v
    return h


@pytest.fixture
def values():
    rng = np.random.default_rng(0)
    return rng.integers(0, 65535, (40, 30)).astype(np.uint16)


def test_uint16_with_bzero(tmp_path, values):
    path = tmp_path / "u16.fits"
    fits.PrimaryHDU(values, header=_header()).writeto(path)  # stored as int16 + BZERO 32768
    assert fits.getheader(path)["BZERO"] == 32768
    image = FITSImage(path)
    assert image.data.dtype == np.float32
    np.testing.assert_array_equal(image.data, values.astype(np.float32))
    assert image.exposure == 12.0 and image.filter == "V" and image.target == "WASP-12"
    # JD UTC at mid-exposure: 2024-03-01T22:00:06
    assert abs(image.jd - (2460371.416666667 + 6 / 86400)) < 1e-6
    assert image.saturation == 65535.0 and image.path == str(path)


def test_signed_12bit_without_bzero(tmp_path):
    data = np.array([[-5, 0, 4095], [17, -2048, 2047]], dtype=np.int16)
    path = tmp_path / "s12.fits"
    fits.PrimaryHDU(data, header=_header()).writeto(path)
    assert "BZERO" not in fits.getheader(path)
    np.testing.assert_array_equal(FITSImage(path).data, data.astype(np.float32))


def test_extension_hdu_compressed_and_gzip(tmp_path, values):
    ext = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(values, header=_header())]).writeto(ext)
    fz = tmp_path / "c.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(values, header=_header(),
                                                       compression_type="RICE_1")]).writeto(fz)
    gz = tmp_path / "g.fits.gz"
    fits.PrimaryHDU(values, header=_header()).writeto(gz)
    for path in (ext, fz, gz):
        image = FITSImage(path)
        np.testing.assert_array_equal(image.data, values.astype(np.float32))
        assert image.exposure == 12.0


@pytest.mark.parametrize("dtype,bzero,bscale", [
    (np.uint8, None, None), (np.int16, None, None), (np.uint16, None, None), (np.int16, 100.0, 0.5),
    (np.int32, None, None), (np.uint32, None, None), (np.int64, None, None), (np.float32, None, None),
    (np.float64, None, None)])
def test_direct_read_equals_astropy(tmp_path, dtype, bzero, bscale):
    """Plain files are read with numpy from the data offset: same pixels and header as astropy."""
    from reduce.io.fits import _read_astropy, _read_plain, read_pixels

    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (max(info.min, -2**40), min(info.max, 2**40)) if info else (-1e5, 1e5)
    data = (rng.integers(lo, hi, (17, 23), endpoint=True) if info else rng.uniform(lo, hi, (17, 23))).astype(dtype)
    hdu = fits.PrimaryHDU(data, header=_header())
    if bscale is not None:
        hdu.scale("int16", bzero=bzero, bscale=bscale)
    path = tmp_path / "d.fits"
    hdu.writeto(path)
    assert _read_plain(str(path)) is not None  # the fast path was taken
    fast, header, index = read_pixels(path)
    slow, slow_header, _ = _read_astropy(str(path))
    assert index == 0 and fast.dtype == np.float32 and fast.flags.writeable
    np.testing.assert_array_equal(fast, slow)
    if bscale is None:
        assert dict(header) == dict(slow_header)
    else:  # astropy rewrites BITPIX/BSCALE/BZERO for its scaled copy; the file's header is kept here
        assert (header["BITPIX"], header["BSCALE"], header["BZERO"]) == (16, bscale, bzero)


def test_blank_values_go_through_astropy(tmp_path):
    from reduce.io.fits import _read_plain

    data = np.array([[1, 2], [3, -99]], dtype=np.int16)
    h = _header(BLANK=-99)
    path = tmp_path / "blank.fits"
    fits.PrimaryHDU(data, header=h).writeto(path)
    assert _read_plain(str(path)) is None
    np.testing.assert_array_equal(FITSImage(path).data, fits.getdata(path).astype(np.float32))


def test_big_endian_float_and_cube(tmp_path):
    data = np.arange(12, dtype=">f4").reshape(1, 3, 4)
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(data, header=_header()).writeto(path)
    image = FITSImage(path)
    assert image.data.shape == (3, 4) and image.data.dtype == np.dtype(np.float32)
    assert image.data.dtype.isnative and image.data[2, 3] == 11


@pytest.mark.parametrize("content", [b"", b"not a fits file at all", None])
def test_unreadable_files_raise_unreadable(tmp_path, content):
    path = tmp_path / "bad.fits"
    if content is None:
        fits.PrimaryHDU(header=_header()).writeto(path)  # header only, no image
    else:
        path.write_bytes(content)
    with pytest.raises(Unreadable, match="bad.fits"):
        FITSImage(path)
    with pytest.raises(Unreadable):
        FITSImage(tmp_path / "missing.fits")


def test_truncated_file(tmp_path, values):
    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(values, header=_header()).writeto(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 2880])
    with pytest.raises(Unreadable):
        FITSImage(path)


def _real(*parts):
    p = REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real frames not found at {REAL}")
    return p


@pytest.mark.real_data
def test_direct_read_of_every_real_frame_equals_astropy():
    from reduce.io.fits import _read_astropy, read_pixels

    files = sorted(p for p in _real().rglob("*") if p.is_file())
    assert files
    for path in files:
        data, header, _ = read_pixels(path)
        ref, ref_header, _ = _read_astropy(str(path))
        np.testing.assert_array_equal(data, ref)
        assert dict(header) == dict(ref_header), path.name


@pytest.mark.real_data
def test_real_sbig_uint16_bias():
    image = FITSImage(_real("ast443_sbig_stl1001_calib", "biases-Neg5-Vis.00000000.BIAS.FIT"))
    raw = fits.getdata(image.path)
    assert image.data.shape == (1024, 1024)
    np.testing.assert_array_equal(image.data, raw.astype(np.float32))
    assert 900 < np.median(image.data) < 1200 and image.type == "bias" and image.exposure == 0.0


@pytest.mark.real_data
def test_real_compressed_panoptes_with_wcs():
    image = FITSImage(_real("panoptes_kic8462852", "solved.fits.fz"))
    assert image.data.shape == (700, 700) and image.data.min() >= 0
    assert image.wcs is not None and image.wcs.has_celestial
    from astropy.coordinates import SkyCoord

    centre = image.wcs.pixel_to_world(350, 350)
    assert centre.separation(SkyCoord(301.5644, 44.4568, unit="deg")).deg < 2.0  # KIC 8462852 field
    assert image.exposure == pytest.approx(120.4) and image.target == "KIC 8462852"
    plain = FITSImage(_real("panoptes_kic8462852", "unsolved.fits"))
    assert plain.wcs is None and plain.jd < image.jd


@pytest.mark.real_data
def test_real_iraf_frame_with_date_only_date_obs():
    image = FITSImage(_real("ccdproc_testdata", "a8280271.fits"))
    assert image.data.shape == (520, 536)
    assert image.header["BIASSEC"].strip().startswith("[")
    # DATE-OBS '2013-07-13' with UT '00:57:33', 150.04 s exposure -> mid-exposure JD
    assert abs(image.jd - (2456486.5 + (57 * 60 + 33 + 75.02) / 86400)) < 1e-5


def test_lazy_header_answers_as_astropy_and_builds_it_only_when_needed(tmp_path):
    """A plain frame's header answers keyword lookups from its raw cards (the frames' chain needs no
    more) with astropy's values, builds the astropy Header only for anything else, travels to and
    from workers as its text, and still gives a WCS; on every real frame too."""
    import pickle

    from reduce.io.cards import LazyHeader
    from reduce.io.fits import _read_astropy, read_pixels

    h = _header(BITPIX=16, TRIMSEC="[3:20,2:15]", CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=10.0,
                CRVAL2=20.0, CRPIX1=5.0, CRPIX2=5.0, CDELT1=-1e-4, CDELT2=1e-4)
    h["HISTORY"] = "flat-fielded"
    path = tmp_path / "w.fits"
    fits.PrimaryHDU(np.ones((17, 23), np.int16), header=h).writeto(path)
    _, header, _ = read_pixels(path)
    assert isinstance(header, LazyHeader)
    assert (header.get("TRIMSEC"), header["EXPTIME"], "FILTER" in header, header.get("NOPE", 7)) == \
        ("[3:20,2:15]", 12.0, True, 7)
    assert header._header is None  # plain lookups never built astropy's header
    assert list(header["HISTORY"]) == ["flat-fielded"] and header._header is not None
    back = pickle.loads(pickle.dumps(header))
    assert back._header is None and back["CRVAL1"] == 10.0 and dict(back) == dict(fits.getheader(path))
    image = FITSImage(path)
    assert image.wcs is not None and image.wcs.has_celestial
    for real in sorted(p for p in REAL.rglob("*") if p.is_file()) if REAL.exists() else []:
        _, lazy, _ = read_pixels(real)
        _, ref, _ = _read_astropy(str(real))
        keys = [k for k in ref if k and k not in ("COMMENT", "HISTORY")]
        assert [lazy.get(k) for k in keys] == [ref.get(k) for k in keys], real.name
