"""Header sanity and time sanity: absurd values are set aside with a warning naming keyword and value,
time keywords are compared within their precision, and nights are never split mid-series."""
from __future__ import annotations

import pytest

from reduce.config import Config, Instrument, load_config
from reduce.model.errors import ConfigError
from reduce.index.headers import describe, frame_info, read_header
from reduce.index.manager import FitsManager

from .fitsfactory import light, write_fits


def info(tmp_path, cards, name="frame.fits", config=None):
    """FrameInfo of a written frame; the astropy header path must agree with the fast one."""
    p = write_fits(tmp_path / name, cards)
    fi = frame_info(p, config)
    header, hdu, shape = read_header(p)
    assert describe(header, p, (config or Config()).instrument_for(header), hdu=hdu, shape=shape) == fi
    return fi


def notes(fi) -> dict:
    return dict(fi.note_list())


@pytest.mark.parametrize("card, value, field", [
    ("EXPTIME", -5.0, "exptime"), ("GAIN", 0.0, "gain"), ("GAIN", -1.2, "gain"),
    ("RDNOISE", -3.0, "read_noise"), ("SATURATE", -1, "saturation"), ("RA", "garbage", "ra"),
    ("RA", 400.0, "ra"), ("DEC", 95.0, "dec"), ("DEC", "north", "dec"), ("AIRMASS", 0.5, "airmass"),
])
def test_absurd_values_are_ignored_with_a_note(tmp_path, card, value, field):
    fi = info(tmp_path, light(**{card: value, "GAIN": 1.5 if card != "GAIN" else value}))
    # a saturation level falls back to the data type's limit; the others are unknown
    assert getattr(fi, field) == (65535.0 if field == "saturation" else None)
    message = notes(fi)[field]
    assert message.startswith(f"{card} = ") and repr(value).strip("'") in message and "ignored" in message


def test_absurd_site_values(tmp_path):
    fi = info(tmp_path, light(LATITUDE=95.0, LONGITUD=400.0, SITEELEV=-9999.0))
    assert (fi.latitude, fi.longitude, fi.elevation) == (None, None, None)
    n = notes(fi)
    assert "LATITUDE = 95.0" in n["latitude"] and "LONGITUD = 400.0" in n["longitude"]
    assert "SITEELEV = -9999.0" in n["elevation"]


def test_negative_exposure_does_not_shift_the_time(tmp_path):
    fi = info(tmp_path, light(EXPTIME=-5.0))
    assert fi.exptime is None and fi.type == "light"
    assert fi.date_obs == "2021-03-04T02:00:00.000"
    assert fi.jd == pytest.approx(2459277.5 + 2 / 24, abs=1e-8)  # no half-exposure shift


def test_sane_values_give_no_note(tmp_path):
    fi = info(tmp_path, light(GAIN=1.4, RDNOISE=9.0, RA="12:30:00", DEC="-05:00:00", AIRMASS=1.2,
                              SITELAT=-29.3, SITELONG=-70.7, SITEELEV=2400.0, SATURATE=65535))
    assert fi.notes is None and fi.ra == pytest.approx(187.5) and fi.longitude == -70.7


def test_configured_values_must_make_sense(tmp_path):
    for body, where in (("gain: -1", "gain"), ("read_noise: -2", "read_noise"),
                        ("site: {latitude: 95}", "latitude"), ("time_keyword: 3", "time_keyword")):
        p = tmp_path / "c.yaml"
        p.write_text(f"instruments:\n  cam:\n    match: [T1m]\n    {body}\n")
        with pytest.raises(ConfigError, match=where):
            load_config(p)


# ------------------------------------------------------------------ time keywords

def test_hatp32_like_keywords_agree(tmp_path):
    """DATE-OBS local with -0700, UT-OBS with -0000, MJD-OBS with 3 decimals (86 s): no warning."""
    fi = info(tmp_path, {"EXPTIME": 60.0, "DATE-OBS": "2017-12-19T18:33:43.317-0700",
                         "UT-OBS": "2017-12-20T01:33:43.317-0000", "MJD-OBS": 58107.065,
                         "OBJECT": "HATP-32", "LATITUDE": 31.68, "LONGITUD": 110.88})
    assert fi.date_obs == "2017-12-20T01:33:43.317" and fi.time_source == "DATE-OBS"
    assert [c for c, _ in fi.note_list()] == ["longitude_west"]
    assert fi.longitude == -110.88 and fi.longitude_source == "header-west-offset:LONGITUD"
    assert fi.night == "2017-12-19"


def test_mjd_with_three_decimals_is_only_good_to_86s(tmp_path):
    # 80 s apart: within MJD-OBS's 86.4 s resolution plus the 10 s exposure -> no warning
    fi = info(tmp_path, light(EXPTIME=10.0, **{"MJD-OBS": 59277.084}))
    assert fi.notes is None
    # JD with 8 decimals 80 s away is a real disagreement
    fi = info(tmp_path, light(EXPTIME=10.0, JD=2459277.584259 + 80 / 86400), name="b.fits")
    assert "time:DATE-OBS~JD" in notes(fi)


def test_disagreeing_time_keywords_named_with_the_fix(tmp_path):
    """DATE-OBS the file-writing time 31 years later, JD the observation: named, DATE-OBS used."""
    cards = light(**{"DATE-OBS": "2052-06-01T10:00:00", "JD": 2459277.5 + 2 / 24})
    fi = info(tmp_path, cards)
    message = notes(fi)["time:DATE-OBS~JD"]
    assert "DATE-OBS = '2052-06-01T10:00:00'" in message and "JD = 2459277.5833" in message
    assert "31.2 years apart" in message and "used DATE-OBS" in message
    assert "time_keyword: JD" in message
    assert fi.date_obs.startswith("2052-06-01")
    # the documented fix: time_keyword: JD
    config = Config(instruments=(Instrument(name="cam", match=("T1m",), time_keyword="JD"),))
    fi = info(tmp_path, cards, name="b.fits", config=config)
    assert fi.time_source == "JD" and fi.date_obs == "2021-03-04T02:00:00.000"
    assert "used JD" in notes(fi)["time:JD~DATE-OBS"]


def test_date_and_ut_disagreeing_with_local_date_obs(tmp_path):
    """DATE-OBS in local time without offset, UT in UTC: hours apart -> warned."""
    fi = info(tmp_path, light(**{"DATE-OBS": "2021-03-04T20:00:00", "UT-OBS": "2021-03-05T02:00:00"}))
    assert "6.0 h apart" in notes(fi)["time:DATE-OBS~UT-OBS"]


def test_time_keyword_absent_is_said(tmp_path):
    config = Config(instruments=(Instrument(name="cam", match=("T1m",), time_keyword="MJD-OBS"),))
    fi = info(tmp_path, light(), config=config)
    assert fi.time_source == "DATE-OBS" and "MJD-OBS is not in the header" in notes(fi)["time_keyword_missing"]


def test_group_warns_once_and_sees_overlapping_exposures(tmp_path):
    """60 frames whose DATE-OBS (file writing) are 1 s apart with 30 s exposures: one warning for
    the time keywords (naming the count), one for the overlap."""
    for i in range(60):
        write_fits(tmp_path / f"f{i:02d}.fits", light(**{
            "DATE-OBS": f"2021-03-04T02:00:{i:02d}", "JD": 2459277.5 + 2 / 24 + i * 216 / 86400}))
    fm = FitsManager(tmp_path, index=":memory:")
    (g,) = fm.light_groups()
    codes = [w["code"] for w in g.warnings]
    assert sorted(codes) == ["exposures_overlap", "time:DATE-OBS~JD"]
    time_w = g.warnings[codes.index("time:DATE-OBS~JD")]
    assert time_w["frames"] == 59 and time_w["message"].startswith("59 of 60 frames (e.g. f01.fits): ")  # f00 agrees
    overlap = g.warnings[codes.index("exposures_overlap")]["message"]
    assert overlap.startswith("59 of 59 consecutive exposures overlap") and "time_keyword" in overlap


def test_no_overlap_warning_for_a_normal_series(tmp_path):
    for i in range(5):
        write_fits(tmp_path / f"f{i}.fits", light(i))
    (g,) = FitsManager(tmp_path, index=":memory:").light_groups()
    assert g.warnings == []


# ------------------------------------------------------------------ nights

def _series(tmp_path, start_hour, hours, step_min=30, **cards):
    """Frames every ``step_min`` minutes from 2021-03-04 ``start_hour`` UTC for ``hours`` hours."""
    from datetime import datetime, timedelta

    t0 = datetime(2021, 3, 4) + timedelta(hours=start_hour)
    n = int(hours * 60 / step_min) + 1
    for i in range(n):
        t = t0 + timedelta(minutes=i * step_min)
        write_fits(tmp_path / f"{t:%Y%m%d_%H%M}.fits", light(**{"DATE-OBS": t.isoformat(), **cards}))
    return n


def test_series_across_utc_noon_without_site_is_one_night(tmp_path):
    """An Australian night (UTC+10) with no site nor offset: 09:00-19:00 UTC crosses UTC noon."""
    n = _series(tmp_path, 9, 10)
    groups = FitsManager(tmp_path, index=":memory:").light_groups()
    assert [(g.night, len(g)) for g in groups] == [("2021-03-03", n)]


def test_two_nights_stay_two(tmp_path):
    _series(tmp_path / "a", 1, 6)
    _series(tmp_path / "a", 25, 6)   # the next night: 18 h later
    groups = FitsManager(tmp_path, index=":memory:").light_groups()
    assert [g.night for g in groups] == ["2021-03-03", "2021-03-04"]


def test_cloud_gap_within_a_night_is_one_group(tmp_path):
    _series(tmp_path, 0, 1)
    _series(tmp_path, 8, 1)  # 7 h gap, same local (UTC) night
    assert len(FitsManager(tmp_path, index=":memory:").light_groups()) == 1


def test_west_longitude_without_offset_found_by_local_noon(tmp_path):
    """SITELONG = 110 west-positive, DATE-OBS in UTC: read east-positive it puts local noon inside
    the series (08:20-15:20 local); read west-positive it does not: corrected, warned, one night."""
    n = _series(tmp_path, 1, 7, LONGITUD=110.0, LATITUDE=31.7)
    fm = FitsManager(tmp_path, index=":memory:")
    (g,) = fm.light_groups()
    assert (g.night, len(g)) == ("2021-03-03", n)
    assert g.site[1] == -110.0
    (w,) = g.warnings
    assert w["code"] == "longitude_west" and "longitude_positive_west: true" in w["message"]
    assert "LONGITUD = 110 read east-positive puts local noon inside" in w["message"]
    assert {f.longitude for f in fm.frames()} == {-110.0}


def test_config_says_east_keeps_the_longitude(tmp_path):
    """An explicit `longitude_positive_west: false` is obeyed: no correction (still one night)."""
    n = _series(tmp_path, 1, 7, LONGITUD=110.0, LATITUDE=31.7)
    config = Config(default=Instrument(longitude_positive_west=False))
    (g,) = FitsManager(tmp_path, index=":memory:", config=config).light_groups()
    assert len(g) == n and g.site[1] == 110.0 and g.warnings == []


def test_configured_west_needs_no_warning(tmp_path):
    info_ = info(tmp_path, light(LONGITUD=110.88, **{"DATE-OBS": "2017-12-19T18:33:43-0700"}),
                 config=Config(default=Instrument(longitude_positive_west=True)))
    assert info_.longitude == -110.88 and info_.notes is None
    assert info_.longitude_source == "header-west:LONGITUD"


def test_east_longitude_agreeing_with_offset_is_kept(tmp_path):
    fi = info(tmp_path, light(LONGITUD=20.8, **{"DATE-OBS": "2021-03-04T22:00:00+0200"}))
    assert fi.longitude == 20.8 and fi.notes is None


# ------------------------------------------------------------------ non-ASCII

def test_non_ascii_byte_in_a_comment_is_readable(tmp_path):
    """astropy reads such a frame; so must the index and the loader."""
    from reduce.io.fitsimage import FITSImage

    p = write_fits(tmp_path / "accent.fits", light(OBSERVER=("Jose", "observer comment here")))
    raw = bytearray(p.read_bytes())
    i = raw.find(b"observer comment")
    raw[i] = 0xE9  # 'é' in Latin-1
    p.write_bytes(bytes(raw))
    fi = frame_info(p)
    assert fi.target == "WASP-12" and fi.exptime == 30.0
    fm = FitsManager(tmp_path, index=":memory:")
    assert fm.unreadable == [] and len(fm.all_images) == 1
    image = FITSImage(p)
    assert image.data.shape == (8, 10) and image.header["OBJECT"] == "WASP-12"


def test_scan_table_prints_the_group_warnings(tmp_path):
    from click.testing import CliRunner

    from reduce.cli import cli

    for i in range(3):
        write_fits(tmp_path / f"f{i}.fits", light(i, GAIN=-2.0, LATITUDE=95.0))
    res = CliRunner().invoke(cli, ["scan", str(tmp_path), "--index", str(tmp_path / "i.sqlite")])
    assert res.exit_code == 0, res.output
    lines = [l for l in res.stderr.splitlines() if l.startswith("warning: ")]
    assert len(lines) == 2  # one per kind, not one per frame
    assert any("3 of 3 frames (e.g. f0.fits): GAIN = -2.0 is not a gain" in l for l in lines)
    assert any("LATITUDE = 95.0 is not a latitude" in l for l in lines)


def test_daytime_series_with_east_longitude_is_not_flipped(tmp_path):
    """09:00-15:00 local at 30 E (07:00-13:00 UTC) crosses noon, but read west-positive it would be
    a morning series, not a night: the longitude is kept."""
    _series(tmp_path, 7, 6, LONGITUD=30.0, LATITUDE=45.0)
    (g,) = FitsManager(tmp_path, index=":memory:").light_groups()
    assert g.site[1] == 30.0 and g.warnings == []


def test_files_json_says_where_each_time_came_from(tmp_path):
    import json

    from reduce.index.groups import files_json

    write_fits(tmp_path / "a.fits", light(EXPTIME=-5.0))
    (row,) = json.loads(files_json(FitsManager(tmp_path, index=":memory:").frames()))
    assert row["time_source"] == "DATE-OBS" and row["warnings"][0].startswith("EXPTIME = -5.0")


def test_user_config_location(tmp_path, monkeypatch):
    """$REDUCE_CONFIG first, else config.yaml under $XDG_CONFIG_HOME/reduce (Linux), else none."""
    from reduce.config import default_config_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_config_path() is None
    user = tmp_path / "xdg" / "reduce" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("instruments: {}\n")
    assert default_config_path() == user
    monkeypatch.setenv("REDUCE_CONFIG", str(tmp_path / "site.yaml"))
    assert default_config_path() == tmp_path / "site.yaml"
