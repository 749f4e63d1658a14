"""The real camera frames in ../shared/data/real are classified and described correctly."""
from __future__ import annotations

import pytest

from reduce.index.headers import frame_info, read_header
from reduce.index.manager import FitsManager

from .fitsfactory import REAL

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real frames not found at {REAL}"),
]
SBIG = REAL / "ast443_sbig_stl1001_calib"


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    # explicit index in tmp: never write next to the shared frames
    return FitsManager(REAL, index=tmp_path_factory.mktemp("idx") / "index.sqlite", config=None)


def test_sbig_set(fm):
    sbig = fm.frames(telescope="SBIG STL-1001 3 CCD Camera")
    assert len(sbig) == 25
    by_type = {t: [f for f in sbig if f.type == t] for t in ("bias", "dark", "flat", "light")}
    assert [len(by_type[t]) for t in ("bias", "dark", "flat", "light")] == [8, 9, 8, 0]
    # the flats say 'Light Frame' in IMAGETYP; only their file name says flat
    assert all("flat" in f.path for f in by_type["flat"])
    assert sorted({f.exptime for f in by_type["dark"]}) == [10, 20, 30, 60, 150, 300]
    assert all(f.exptime == 0 for f in by_type["bias"])
    assert {(f.width, f.height, f.bitpix, f.bzero) for f in sbig} == {(1024, 1024, 16, 32768.0)}
    assert {f.night for f in sbig} == {"2017-09-08"} and {f.filter for f in sbig} == {"Visible"}


def test_sbig_flats_get_bias_and_darks(fm):
    flats = fm.groups(type="flat")
    assert len(flats) == 1 and len(flats[0].files) == 8
    match = fm.calibration_for(flats[0])
    assert len(match.bias) == 8
    assert match.dark_exposure == 20 and match.dark_exposures == [10, 20, 30, 60, 150, 300]
    assert any("nearest to 23 s" in r for r in match.reasons)


def test_panoptes_compressed_with_wcs_in_extension(fm):
    p = REAL / "panoptes_kic8462852" / "solved.fits.fz"
    fi = frame_info(p)
    assert (fi.hdu, fi.type, fi.target, fi.width, fi.height) == (1, "light", "KIC 8462852", 700, 700)
    assert fi.exptime == pytest.approx(120.4) and fi.date_obs == "2016-09-09T08:14:34.000"
    assert fi.night == "2016-09-08"  # Hawaii evening (LONG-OBS -155.58)
    header, hdu, _ = read_header(p)
    assert hdu == 1 and header["CTYPE1"].startswith("RA---TAN")
    group = [g for g in fm.light_groups() if g.target == "KIC 8462852"]
    assert len(group) == 1 and len(group[0].files) == 2


def test_iraf_frame(fm):
    fi = frame_info(REAL / "ccdproc_testdata" / "a8280271.fits")
    assert (fi.type, fi.telescope, fi.target, fi.filter) == ("light", "SAAO 1.0m", "rf0420", "48")
    assert fi.date_obs == "2013-07-13T00:57:33.000"  # date-only DATE-OBS + UT
    assert fi.jd == pytest.approx(2456486.5 + (57 * 60 + 33 + 75.02) / 86400, abs=1e-7)
    assert fi.ra == pytest.approx(331.0334, abs=1e-3) and fi.dec == pytest.approx(-0.9253, abs=1e-3)
    assert (fi.airmass, fi.gain, fi.read_noise) == (1.176, 1.9, 5.0)


def test_nothing_unreadable(fm):
    assert fm.unreadable == []
    # 2 ccdproc + 2 panoptes + 142 HAT-P-32 lights
    assert len(fm.all_images) == 146 and fm.all_images[0].endswith("sip-wcs.fit")


def test_raw_card_parser_agrees_with_astropy():
    """The fast header parser gives astropy's value for every keyword of every plain real file."""
    from astropy.io import fits

    from reduce.io.fits import read_raw
    for path in sorted(REAL.glob("*/*.fit*")):
        if path.name.endswith(".fz"):
            continue
        cards, _, _, _ = read_raw(str(path))
        header = fits.getheader(path)
        checked = 0
        for key in {k for k in header if k and k not in ("COMMENT", "HISTORY")}:
            expected = header[key]
            got = cards.get(key)
            if isinstance(expected, float):
                assert got == pytest.approx(expected), (path.name, key)
            else:
                assert got == expected, (path.name, key, got, expected)
            checked += 1
        assert checked > 15


HATP32 = REAL / "exotic_hatp32"


@pytest.mark.skipif(not HATP32.is_dir(), reason=f"HAT-P-32 night not found at {HATP32}")
def test_hatp32_is_one_night_with_the_west_longitude(tmp_path):
    """LONGITUD = 110.88 is west-positive (DATE-OBS says -0700): one group, one warning naming the
    keyword and the config fix; no false time warning (MJD-OBS has 3 decimals: 86 s)."""
    fm = FitsManager(HATP32, index=tmp_path / "index.sqlite", config=None)
    groups = fm.light_groups()
    assert [(g.night, len(g.files)) for g in groups] == [("2017-12-19", 142)]
    g = groups[0]
    assert [w["code"] for w in g.warnings] == ["longitude_west"]
    message = g.warnings[0]["message"]
    assert "LONGITUD = 110.88" in message and "longitude_positive_west: true" in message
    assert "142 of 142 frames" in message
    lat, lon, _ = g.site
    assert (lat, lon) == (31.68, -110.88)
    assert g.ra == pytest.approx(31.3, abs=0.3) and g.dec == pytest.approx(46.7, abs=0.3)
    first = fm.frames()[0]
    assert first.time_source == "DATE-OBS"
    assert first.date_obs == "2017-12-20T01:33:43.317"  # DATE-OBS -0700 local = UT-OBS


def test_hatp32_scan_cli_is_one_group(tmp_path, monkeypatch):
    """`reduce scan` on the read-only shared folder (index in the cache): one light group."""
    if not HATP32.is_dir():
        pytest.skip(f"HAT-P-32 night not found at {HATP32}")
    from click.testing import CliRunner

    from reduce.cli import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    res = CliRunner().invoke(cli, ["scan", str(HATP32), "--format", "json"])
    assert res.exit_code == 0, res.output
    import json
    groups = json.loads(res.stdout)
    assert [(g["date"], g["files"]) for g in groups] == [("2017-12-19", 142)]
    assert "west-positive" in groups[0]["warnings"][0]


@pytest.mark.skipif(not HATP32.is_dir(), reason=f"HAT-P-32 night not found at {HATP32}")
def test_hatp32_site_for_bjd_and_airmass_is_west():
    """What the pipeline uses for BJD_TDB and airmass when it reads the site from a frame's header
    (astropy Header path): the corrected, east-positive -110.88."""
    from reduce.index.headers import site

    header, _, _ = read_header(sorted(HATP32.glob("*.FITS"))[0])
    assert site(header) == (31.68, -110.88, None)
