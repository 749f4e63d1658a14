"""Header reading and frame description over the header conventions seen on real cameras."""
from __future__ import annotations

import os

import numpy as np
import pytest

from reduce.config import Config, Instrument
from reduce.index.headers import (UnreadableFile, describe, frame_info, is_fits_name, read_header,
                                  jd_from_datetime)

from .fitsfactory import light, write_fits

JD_2021_03_04_02H = 2459277.5 + 2 / 24  # 2021-03-04T02:00:00 UTC


def info(tmp_path, name="frame.fits", cards=None, config=None, **kw):
    """Write a file and return its FrameInfo, checking the astropy path agrees with the fast one."""
    p = write_fits(tmp_path / name, cards if cards is not None else light(), **kw)
    fi = frame_info(p, config)
    header, hdu, shape = read_header(p)
    inst = (config or Config()).instrument_for(header)
    assert describe(header, p, inst, hdu=hdu, shape=shape) == fi
    return fi


@pytest.mark.parametrize("value, expected", [
    ("Bias Frame", "bias"), ("Dark Frame", "dark"), ("Light Frame", "light"), ("LIGHT", "light"),
    ("object", "light"), ("zero", "bias"), ("Flat Field", "flat"), ("   Dark Frame     ", "dark"),
    ("FLAT", "flat"), ("Master Dark", "dark"),
])
def test_imagetyp_variants(tmp_path, value, expected):
    assert info(tmp_path, cards=light(IMAGETYP=value)).type == expected


def test_imagetyp_absent_is_light(tmp_path):
    assert info(tmp_path, cards=light(IMAGETYP=None)).type == "light"


def test_flat_labelled_light_frame_named_flat(tmp_path):
    fi = info(tmp_path, "flat-expos23s-Vis.00000001.FIT", cards=light(IMAGETYP="Light Frame"))
    assert fi.type == "flat"


@pytest.mark.parametrize("name, expected", [
    ("biases-Neg5.00000003.BIAS.FIT", "bias"), ("dark_0042.fits", "dark"), ("flat-V-001.fts", "flat"),
    ("Flat_R_3.FIT", "flat"), ("m51_001.fits", "light"), ("darkness_field.fits", "light"),
])
def test_type_from_file_name_only(tmp_path, name, expected):
    assert info(tmp_path, name, cards=light(IMAGETYP=None)).type == expected


def test_type_from_folder_name(tmp_path):
    assert info(tmp_path, "darks/0001.fits", cards=light(IMAGETYP=None)).type == "dark"


def test_calibration_imagetyp_beats_file_name(tmp_path):
    assert info(tmp_path, "flat_001.fits", cards=light(IMAGETYP="Dark Frame")).type == "dark"


@pytest.mark.parametrize("imagetyp", [None, "Dark Frame", "Light Frame"])
def test_zero_exposure_is_bias(tmp_path, imagetyp):
    fi = info(tmp_path, cards=light(IMAGETYP=imagetyp, EXPTIME=0.0))
    assert fi.type == "bias" and fi.exptime == 0.0


def test_iso_date_with_and_without_fraction(tmp_path):
    a = info(tmp_path, "a.fits", cards=light(**{"DATE-OBS": "2021-03-04T02:00:00.500"}))
    b = info(tmp_path, "b.fits", cards=light(**{"DATE-OBS": "2021-03-04T02:00:00"}))
    assert a.date_obs == "2021-03-04T02:00:00.500" and b.date_obs == "2021-03-04T02:00:00.000"
    # jd is mid-exposure (30 s frames)
    assert b.jd == pytest.approx(JD_2021_03_04_02H + 15 / 86400, abs=1e-8)
    assert a.jd - b.jd == pytest.approx(0.5 / 86400, abs=1e-9)
    assert a.night == "2021-03-03"


@pytest.mark.parametrize("timekey", ["UT", "TIME-OBS"])
def test_date_only_with_time_keyword(tmp_path, timekey):
    fi = info(tmp_path, cards=light(**{"DATE-OBS": "2021-03-04", timekey: "02:00:00"}))
    assert fi.date_obs == "2021-03-04T02:00:00.000"
    assert fi.jd == pytest.approx(JD_2021_03_04_02H + 15 / 86400, abs=1e-8)


def test_local_time_with_utc_offset(tmp_path):
    fi = info(tmp_path, cards=light(**{"DATE-OBS": "2017-12-19T18:33:43.317-0700"}))
    assert fi.date_obs == "2017-12-20T01:33:43.317"
    assert fi.night == "2017-12-19"  # local evening: the night that began on the 19th


@pytest.mark.parametrize("key, value", [
    ("JD", JD_2021_03_04_02H), ("JD-OBS", JD_2021_03_04_02H), ("MJD-OBS", JD_2021_03_04_02H - 2400000.5),
])
def test_time_from_jd_keywords_only(tmp_path, key, value):
    fi = info(tmp_path, cards=light(**{"DATE-OBS": None, key: value}))
    assert fi.date_obs == "2021-03-04T02:00:00.000"
    assert fi.jd == pytest.approx(JD_2021_03_04_02H + 15 / 86400, abs=1e-7)


def test_time_reference_mid(tmp_path):
    config = Config(instruments=(Instrument(name="mid", match=("T1m",), time_reference="mid"),))
    fi = info(tmp_path, cards=light(), config=config)
    assert fi.jd == pytest.approx(JD_2021_03_04_02H, abs=1e-8)
    assert fi.date_obs == "2021-03-04T01:59:45.000" and fi.telescope == "T1m"  # the header names it: the config only matches


@pytest.mark.parametrize("raw", ["EXPTIME =               060.00", "EXPOSURE=               060.00",
                                 "EXPTIME = '060.00'", "EXPOSURE= '060.00  '"])
def test_exposure_written_as_060(tmp_path, raw):
    fi = info(tmp_path, cards=light(EXPTIME=None), raw=(raw,))
    assert fi.exptime == 60.0


@pytest.mark.parametrize("cards, expected", [
    ({"FILTER": None}, ""), ({"FILTER": 3}, "3"), ({"FILTER": "  R  "}, "R"),
    ({"FILTER": None, "FILTERS": 48}, "48"),
])
def test_filter_absent_numeric_padded(tmp_path, cards, expected):
    assert info(tmp_path, cards=light(**cards)).filter == expected


@pytest.mark.parametrize("cards, expected", [
    ({}, "WASP-12"), ({"OBJECT": None, "FIELD": "KIC 8462852"}, "KIC 8462852"), ({"OBJECT": None}, ""),
])
def test_target(tmp_path, cards, expected):
    assert info(tmp_path, cards=light(**cards)).target == expected


def test_telescope_absent_falls_back_to_instrument(tmp_path):
    assert info(tmp_path, "a.fits", cards=light(TELESCOP=None)).telescope == ""
    fi = info(tmp_path, "b.fits", cards=light(TELESCOP=None, INSTRUME="ST-8 CCD"))
    assert fi.telescope == "ST-8 CCD" and fi.instrument == "ST-8 CCD"


def test_signed_12bit_without_bzero(tmp_path):
    fi = info(tmp_path, dtype=np.int16)
    assert (fi.bitpix, fi.bzero, fi.saturation) == (16, 0.0, 32767.0)


def test_uint16_bzero_32768(tmp_path):
    fi = info(tmp_path, dtype=np.uint16, shape=(6, 9))
    assert (fi.bitpix, fi.bzero, fi.saturation) == (16, 32768.0, 65535.0)
    assert (fi.width, fi.height) == (9, 6)


@pytest.mark.parametrize("where, name", [("extension", "e.fits"), ("compressed", "c.fits.fz"),
                                         ("primary", "g.fits.gz")])
def test_image_in_extension_compressed_gzipped(tmp_path, where, name):
    fi = info(tmp_path, name, cards=light(), where=where, shape=(12, 7))
    assert fi.hdu == (0 if where == "primary" else 1)
    assert (fi.width, fi.height, fi.type, fi.target, fi.exptime) == (7, 12, "light", "WASP-12", 30.0)
    assert fi.bzero == 32768.0


def test_ra_dec_degrees_and_sexagesimal(tmp_path):
    a = info(tmp_path, "a.fits", cards=light(RA=" 22:04:08", DEC="-00:55:31"))
    assert a.ra == pytest.approx(331.0333, abs=1e-3) and a.dec == pytest.approx(-0.92528, abs=1e-4)
    b = info(tmp_path, "b.fits", cards=light(OBJCTRA="12 30 00", OBJCTDEC="+45 30 00"))
    assert (b.ra, b.dec) == (pytest.approx(187.5), pytest.approx(45.5))
    c = info(tmp_path, "c.fits", cards=light(RA=187.5, DEC=-12.25, AIRMASS=1.31, GAIN=1.5, RDNOISE=9.0))
    assert (c.ra, c.dec, c.airmass, c.gain, c.read_noise) == (187.5, -12.25, 1.31, 1.5, 9.0)


def test_night_follows_site_longitude(tmp_path):
    """Hawaii (-155.6 E): 08:12 UTC is 21:50 local, so the night began the previous date."""
    cards = light(**{"DATE-OBS": "2016-09-09T23:12:26", "LONG-OBS": -155.58})
    assert info(tmp_path, "a.fits", cards=cards).night == "2016-09-09"  # 12:50 local: new night
    cards = light(**{"DATE-OBS": "2016-09-09T21:00:00", "LONG-OBS": -155.58})
    assert info(tmp_path, "b.fits", cards=cards).night == "2016-09-08"  # 10:40 local: still the 8th
    # Positive-west convention from the configuration flips the sign.
    config = Config(default=Instrument(longitude_positive_west=True))
    cards = light(**{"DATE-OBS": "2016-09-09T21:00:00", "LONG-OBS": 155.58})
    assert info(tmp_path, "c.fits", cards=cards, config=config).night == "2016-09-08"


def test_configured_values_override_header(tmp_path):
    config = Config(instruments=(Instrument(name="cam", match=("t1m",), gain=2.5, read_noise=7.0,
                                            saturation=50000.0),))
    fi = info(tmp_path, cards=light(GAIN=1.0, RDNOISE=20.0), config=config)
    assert (fi.telescope, fi.gain, fi.read_noise, fi.saturation) == ("T1m", 2.5, 7.0, 50000.0)  # telescope: the header's


# ------------------------------------------------------------------ bad files

def test_zero_byte(tmp_path):
    p = tmp_path / "empty.fits"
    p.write_bytes(b"")
    with pytest.raises(UnreadableFile, match="empty"):
        read_header(p)


def test_not_fits(tmp_path):
    p = tmp_path / "notes.fits"
    p.write_text("this is a text file\n" * 300)
    with pytest.raises(UnreadableFile, match="not a FITS"):
        frame_info(p)


@pytest.mark.parametrize("cut, reason", [(1000, "truncated header"), (2880 + 50, "truncated")])
def test_truncated(tmp_path, cut, reason):
    p = write_fits(tmp_path / "t.fits", light(), shape=(60, 60))
    p.write_bytes(p.read_bytes()[:cut])
    with pytest.raises(UnreadableFile, match=reason):
        frame_info(p)
    with pytest.raises(UnreadableFile, match=reason):
        read_header(p)


def test_header_only(tmp_path):
    from astropy.io import fits
    p = tmp_path / "h.fits"
    fits.PrimaryHDU(header=fits.Header(light())).writeto(p)
    with pytest.raises(UnreadableFile, match="header only"):
        frame_info(p)


def test_truncated_compressed(tmp_path):
    p = write_fits(tmp_path / "c.fits.fz", light(), where="compressed", shape=(200, 200))
    data = p.read_bytes()
    p.write_bytes(data[:len(data) - 4000])
    with pytest.raises(UnreadableFile):
        frame_info(p)


def test_no_permission(tmp_path):
    p = write_fits(tmp_path / "locked.fits", light())
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running as root: a chmod 000 file is still readable")
        with pytest.raises(UnreadableFile, match="permission"):
            frame_info(p)
    finally:
        os.chmod(p, 0o644)


def test_fits_names():
    good = ["a.fits", "a.FIT", "b.fts", "c.fits.fz", "d.fits.gz", "E.FITS", "f.fz"]
    bad = ["a.txt", "a.fits.bak", "archive.tar.gz", "notes.md"]
    assert all(is_fits_name(n) for n in good) and not any(is_fits_name(n) for n in bad)


def test_jd_epoch():
    from datetime import datetime
    assert jd_from_datetime(datetime(2000, 1, 1, 12)) == 2451545.0


def test_long_string_continue_and_hierarch(tmp_path):
    long_name = "A very long target designation " * 4
    fi = info(tmp_path, cards=light(OBJECT=long_name.strip(), **{"HIERARCH ESO DET GAIN": 3.25}))
    assert fi.target == " ".join(long_name.split())
    from reduce.io.fits import read_raw
    cards, *_ = read_raw(fi.path)
    assert cards.get("ESO DET GAIN") == 3.25 and cards["OBJECT"] == long_name.strip()


def test_quotes_and_comments_in_values(tmp_path):
    fi = info(tmp_path, raw=("OBJECT  = 'O''Brien field / 2' / a comment with 'quotes'",
                             "FILTER  = 'g''' / sloan"),
              cards=light(OBJECT=None, FILTER=None))
    assert fi.target == "O'Brien field / 2" and fi.filter == "g'"
