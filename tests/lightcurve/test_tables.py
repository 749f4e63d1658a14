"""Light-curve CSV/FITS writing and output-name sanitising."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.io.atomic import OutputError
from reduce.lightcurve.tables import LIGHTCURVE_SCHEMA, product_path, safe_stem, write_lightcurve


def lightcurve(n=50):
    rng = np.random.default_rng(0)
    t = Table()
    t["time"] = 2460000.5 + np.arange(n) * 0.001
    t["flux"] = 1 + rng.normal(0, 1e-3, n)
    t["flux_err"] = np.full(n, 1e-3)
    t["fwhm"] = rng.uniform(2, 3, n)
    t["flag"] = np.zeros(n, dtype=np.int64)
    t["file"] = np.array([f"f{i:03d}.fits" for i in range(n)], dtype=object)
    t.meta["target"] = "HAT-P-32 b"
    t.meta["comparisons"] = [1, 2]  # not a header value: left to provenance
    return t


def test_csv_and_fits_round_trip(tmp_path):
    t = lightcurve()
    cube = np.random.default_rng(1).normal(size=(30, 5, 50))
    weights = Table({"star": [1, 2], "weight": [0.4, 0.6]})
    paths = write_lightcurve(t, tmp_path / "night_T1_HAT-P-32_b_r", extra_hdus={"fluxes": cube, "weights": weights})
    assert [p.name for p in paths] == ["night_T1_HAT-P-32_b_r.csv", "night_T1_HAT-P-32_b_r.fits"]
    csv = Table.read(paths[0], format="ascii.csv")
    assert csv.colnames == t.colnames and np.array_equal(csv["time"], t["time"])  # full precision
    with fits.open(paths[1]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LIGHTCURVE", "FLUXES", "WEIGHTS"]
        h = hdul["LIGHTCURVE"].header
        assert h["REDUCE_SCHEMA"] == LIGHTCURVE_SCHEMA and h["TARGET"] == "HAT-P-32 b"
        assert h["TUNIT1"] == "d" and h["TCOMM1"] == "JD (UTC) at mid-exposure"
        assert np.array_equal(hdul["FLUXES"].data, cube)
        assert list(hdul["WEIGHTS"].data["weight"]) == [0.4, 0.6]
    back = Table.read(paths[1], hdu="LIGHTCURVE")
    assert np.array_equal(back["flux"], t["flux"]) and list(back["file"]) == list(t["file"])
    assert str(back["fwhm"].unit) == "pix"


def test_identical_tables_give_identical_files(tmp_path):
    a = write_lightcurve(lightcurve(), tmp_path / "a")
    b = write_lightcurve(lightcurve(), tmp_path / "b")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()


def test_failure_leaves_previous_files(tmp_path, monkeypatch):
    paths = write_lightcurve(lightcurve(10), tmp_path / "lc")
    before = [p.read_bytes() for p in paths]
    with pytest.raises(TypeError):  # a bad extra HDU is found before anything is written
        write_lightcurve(lightcurve(20), tmp_path / "lc", extra_hdus={"bad": "not an array"})
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.csv", "lc.fits"]


@pytest.mark.parametrize("parts, expected", [
    (("2024-05-01", "T1", "HAT-P-32/b", "r'"), "2024-05-01_T1_HAT-P-32_b_r"),
    ((dt.date(2024, 5, 1), "Tel 60cm", "KIC 8462852", "I+z"), "2024-05-01_Tel_60cm_KIC_8462852_I+z"),
    (("../..", "..", "../x", "/etc/passwd"), "unknown_unknown_x_etc_passwd"),
    ((None, "", "  ", "V"), "unknown_unknown_unknown_V"),
    (("2024", "Télescope", "NGC\\1234", ".hidden"), "2024_Telescope_NGC_1234_hidden"),
])
def test_safe_stem(parts, expected, tmp_path):
    stem = safe_stem(*parts)
    assert stem == expected
    path = product_path(tmp_path, stem, ".csv")
    assert path.parent == tmp_path and not stem.startswith(".") and "/" not in stem


def test_product_path_refuses_escapes(tmp_path):
    with pytest.raises(OutputError):
        product_path(tmp_path, "../evil", ".csv")
    with pytest.raises(OutputError):
        product_path(tmp_path, "sub/x", ".csv")


def test_time_columns_read_natively_as_jd_utc_and_bjd_tdb_without_warnings(tmp_path):
    """No site known: still JD UTC / BJD TDB Time columns (not MJD, not year 8595), no warning."""
    import warnings

    from astropy.time import Time

    from reduce.lightcurve.tables import lightcurve_table

    jd = 2460385.5 + np.arange(5) / 100
    table = lightcurve_table({"time": jd, "bjd_tdb": jd + 0.004, "flux": np.ones(5)})
    (path,) = write_lightcurve(table, tmp_path / "lc", csv=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = Table.read(path, hdu="LIGHTCURVE", astropy_native=True)
    assert isinstance(back["time"], Time) and back["time"].scale == "utc"
    assert isinstance(back["bjd_tdb"], Time) and back["bjd_tdb"].scale == "tdb"
    assert np.allclose(back["time"].jd, jd, rtol=0, atol=1e-9)
    assert np.allclose(back["bjd_tdb"].jd, jd + 0.004, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", ["nuit_é.fits", "日本語_001.fits", "☃ 100%.fits", "plain.fits"])
def test_non_ascii_names_are_percent_encoded_in_fits_and_utf8_in_csv(tmp_path, name):
    from reduce.lightcurve.tables import decode_name, encode_name, lightcurve_table

    table = lightcurve_table({"time": [2460000.5], "flux": [1.0], "file": [name]})
    csv, fit = write_lightcurve(table, tmp_path / "lc", header={"RECIPE": "récipe.yaml"})
    assert list(Table.read(csv)["file"]) == [name]
    with fits.open(fit) as hdul:
        stored = str(hdul["LIGHTCURVE"].data["file"][0])
        assert stored.isascii() and decode_name(stored) == name and stored == encode_name(name)
        assert decode_name(hdul[0].header["RECIPE"]) == "récipe.yaml"
