"""Light-curve CSV/ECSV/FITS writing (reduce.lightcurve.tables, ecsv, fitsproduct)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.lightcurve.schema import LIGHTCURVE_SCHEMA
from reduce.lightcurve.tables import write_lightcurve


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
        assert [h.name for h in hdul] == ["PRIMARY", "LIGHTCURVE", "FILES", "FLUXES", "WEIGHTS"]
        assert "file" not in hdul["LIGHTCURVE"].columns.names  # numbers only: lightkurve bins it
        assert list(hdul["LIGHTCURVE"].data["quality"]) == list(t["flag"])
        h = hdul["LIGHTCURVE"].header
        assert h["REDUCE_SCHEMA"] == LIGHTCURVE_SCHEMA and h["TARGET"] == "HAT-P-32 b"
        assert h["TUNIT1"] == "d" and h["TCOMM1"] == "JD (UTC) at mid-exposure"
        assert np.array_equal(hdul["FLUXES"].data, cube)
        assert list(hdul["WEIGHTS"].data["weight"]) == [0.4, 0.6]
    back = Table.read(paths[1], hdu="LIGHTCURVE")
    assert np.array_equal(back["flux"], t["flux"])
    assert list(Table.read(paths[1], hdu="FILES")["file"]) == list(t["file"])
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
    from reduce.lightcurve.fitsproduct import decode_name, encode_name
    from reduce.lightcurve.tables import lightcurve_table

    table = lightcurve_table({"time": [2460000.5], "flux": [1.0], "file": [name]})
    csv, fit = write_lightcurve(table, tmp_path / "lc", header={"RECIPE": "récipe.yaml"})
    assert list(Table.read(csv)["file"]) == [name]
    with fits.open(fit) as hdul:
        stored = str(hdul["FILES"].data["file"][0])
        assert stored.isascii() and decode_name(stored) == name and stored == encode_name(name)
        assert decode_name(hdul[0].header["RECIPE"]) == "récipe.yaml"


def _astropy_ecsv(t, monkeypatch) -> str:
    """What astropy's own ECSV writer gives for ``t`` (the fast header forced off)."""
    from reduce.lightcurve import ecsv

    with monkeypatch.context() as m:
        m.setattr(ecsv, "_yaml_header", lambda t: None)
        return ecsv.ecsv_text(t)


def test_ecsv_header_written_without_astropy_yaml_is_astropys_byte_for_byte(monkeypatch):
    """The light-curve ECSV skips astropy.io.misc.yaml (it imports astropy.coordinates, ~0.6 s):
    the same bytes as astropy's writer, for the product table and awkward meta and columns."""
    from reduce.lightcurve import ecsv
    from reduce.lightcurve.tables import _prepared, lightcurve_table

    rng = np.random.default_rng(3)
    n = 7
    table = lightcurve_table({"time": 2460000.5 + np.arange(n) / 100, "flux": rng.normal(1, 1e-3, n),
                              "file": ["a b.fits", "", 'q"uote', "c,omma", "é #x", "yes", "1.0"]},
                             {"target": 0, "aperture": np.int64(12), "aperture_radius": np.float64(7.7386967907),
                              "comparisons": list(range(40)), "weights": list(rng.random(40)),
                              "target_ra": 170.775571, "nested": {"b": [1, 2.5e17, None], "a": "x: y"},
                              "flags": [True, False], "empty": "", "inf": float("inf"), "nan": float("nan"),
                              "tuple": (1, "two"), "text": "line\nbreak", "num_str": "0012",
                              "object": "Télescope ☃ HAT-P-32 b", "long": "x" * 300, "colon": "a:b # c"})
    table["extra_int"] = np.arange(n, dtype=np.int32)
    table["extra_bool"] = np.arange(n) % 2 == 0
    table["extra_unitless"] = rng.normal(size=n)
    table["extra_unitless"].description = ""
    t = _prepared(table)
    assert ecsv._yaml_header(ecsv._plain_meta_table(t)) is not None  # the fast path is the one tested
    assert ecsv.ecsv_text(t) == _astropy_ecsv(t, monkeypatch)
    back = Table.read(ecsv.ecsv_text(t), format="ascii.ecsv")
    assert back.meta["nested"] == {"a": "x: y", "b": [1, 2.5e17, None]} and back.meta["weights"] == t.meta["weights"]


def test_ecsv_of_other_tables_is_left_to_astropy(monkeypatch):
    from astropy.table import MaskedColumn

    from reduce.lightcurve import ecsv

    t = Table({"a": MaskedColumn([1.0, 2.0], mask=[False, True]), "v": np.ones((2, 3))})
    assert ecsv._yaml_header(t) is None
    assert ecsv.ecsv_text(t) == _astropy_ecsv(t, monkeypatch)
    assert "a,v" in ecsv.ecsv_text(t)
