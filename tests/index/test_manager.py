"""FitsManager: incremental SQLite index, concurrency, read-only nights, bad files, selection,
groups and calibration matching, on small generated nights."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reduce.config import Config, Instrument
from reduce.index.db import cache_index_path, default_index_path
from reduce.index.manager import FitsManager

from .fitsfactory import light, write_fits

ROOT = Path(__file__).resolve().parents[2]


def make_night(folder: Path, n_lights: int = 4) -> Path:
    """bias x3, darks 10 s x2 + 60 s x2, flats V x2 + R x2, lights V, one light in R."""
    for i in range(3):
        write_fits(folder / f"bias_{i}.fits", light(i, IMAGETYP="Bias Frame", EXPTIME=0.0, OBJECT=None))
    for i, e in enumerate((10.0, 10.0, 60.0, 60.0)):
        write_fits(folder / "calib" / f"d{i}.fits", light(10 + i, IMAGETYP="Dark Frame", EXPTIME=e))
    for i, f in enumerate("VVRR"):
        write_fits(folder / "calib" / f"flat-{f}-{i}.fits", light(20 + i, FILTER=f, EXPTIME=5.0))
    for i in range(n_lights):
        write_fits(folder / "lights" / f"wasp12_{i:03d}.fits", light(40 - i))  # written in reverse time
    write_fits(folder / "lights" / "wasp12_R.fits", light(50, FILTER="R"))
    return folder


def test_scan_select_and_sort(tmp_path):
    night = make_night(tmp_path / "night")
    fm = FitsManager(night, index=tmp_path / "i.sqlite")
    assert (len(fm.all_bias), len(fm.all_darks), len(fm.all_flats), len(fm.all_images)) == (3, 4, 4, 5)
    times = [f.jd for f in fm.frames(type="light")]
    assert times == sorted(times) and fm.all_images[0].endswith("wasp12_003.fits")
    assert len(fm.files(type="light", filter="v")) == 4
    assert len(fm.files(type=["flat", "dark"], filter="R")) == 2
    assert fm.files(target="WASP-12", night="2021-03-03", telescope="t1m", type="light") == \
        fm.files(type="light", filter=["V", "R"])
    assert fm.files(night="2021-03-05") == []
    text = repr(fm)
    assert "WASP-12" in text and "bias" in text and "2021-03-03" in text


def test_groups_and_labels(tmp_path):
    fm = FitsManager(make_night(tmp_path / "night"), index=tmp_path / "i.sqlite")
    kinds = [(g.type, g.filter, g.exposure, len(g.files)) for g in fm.groups()]
    assert kinds == [("bias", "V", 0.0, 3), ("dark", "V", 10.0, 2), ("dark", "V", 60.0, 2),
                     ("flat", "R", 5.0, 2), ("flat", "V", 5.0, 2), ("light", "R", 30.0, 1),
                     ("light", "V", 30.0, 4)]
    lg = fm.light_groups()[-1]
    assert lg.label == "2021-03-03_T1m_WASP-12_V" and lg.target == "WASP-12"
    assert lg.to_dict() == {"date": "2021-03-03", "telescope": "T1m", "filter": "V", "type": "light",
                            "target": "WASP-12", "width": 10, "height": 8, "exposure": 30.0, "files": 4,
                                "warnings": []}


def test_targets_equal_as_file_names_are_one_group(tmp_path):
    """'WASP 12', 'WASP/12' and 'wasp_12' (one product name, WASP_12) are one group in the scan too,
    named by its first frame, not three rows of which ``reduce run`` would make one."""
    night = tmp_path / "night"
    for i, name in enumerate(("WASP 12", "WASP/12", "wasp_12", "WASP 12")):
        write_fits(night / f"l{i}.fits", light(40 - i, OBJECT=name))
    write_fits(night / "other.fits", light(30, OBJECT="WASP-12"))  # another name: another group
    groups = FitsManager(night, index=tmp_path / "i.sqlite").light_groups()
    assert sorted((g.label, len(g.files)) for g in groups) == [("2021-03-03_T1m_WASP-12_V", 1),
                                                                ("2021-03-03_T1m_WASP_12_V", 4)]
    assert next(g for g in groups if len(g.files) == 4).target == "WASP 12"  # the earliest frame's OBJECT


def test_calibration_match(tmp_path):
    night = make_night(tmp_path / "night")
    write_fits(night / "other" / "bias_big.fits", light(IMAGETYP="Bias Frame", EXPTIME=0.0), shape=(16, 16))
    write_fits(night / "other" / "bias_t2.fits", light(IMAGETYP="Bias Frame", EXPTIME=0.0, TELESCOP="T2"))
    write_fits(night / "old" / "bias_old.fits",
               light(IMAGETYP="Bias Frame", EXPTIME=0.0, **{"DATE-OBS": "2021-02-01T02:00:00"}))
    fm = FitsManager(night, index=tmp_path / "i.sqlite")
    group = [g for g in fm.light_groups() if g.filter == "V"][0]
    m = fm.calibration_for(group)
    assert sorted(Path(p).name for p in m.bias) == ["bias_0.fits", "bias_1.fits", "bias_2.fits"]
    assert m.dark_exposure == 10.0 and m.dark_exposures == [10.0, 60.0] and len(m.darks) == 2
    assert sorted(Path(p).name for p in m.flats) == ["flat-V-0.fits", "flat-V-1.fits"]
    assert m.complete and any("nearest to 30 s" in r for r in m.reasons)
    assert any("same night" in r for r in m.reasons)
    # a light in a filter without flats: a reason names the filters that exist
    fm2 = FitsManager(night, index=tmp_path / "i.sqlite")
    write_fits(night / "lights" / "b.fits", light(51, FILTER="B"))
    fm2.scan()
    m2 = fm2.calibration_for([g for g in fm2.light_groups() if g.filter == "B"][0])
    assert m2.flats == [] and not m2.complete
    assert any("none with filter 'B'" in r and "R, V" in r for r in m2.reasons)


def test_nearest_night_wins(tmp_path):
    folder = tmp_path / "n"
    for day in ("2021-03-01", "2021-03-06", "2021-03-03"):
        write_fits(folder / f"bias_{day}.fits",
                   light(IMAGETYP="Bias Frame", EXPTIME=0.0, **{"DATE-OBS": f"{day}T20:00:00"}))
    write_fits(folder / "sci.fits", light(**{"DATE-OBS": "2021-03-05T01:00:00"}))  # night of the 4th
    fm = FitsManager(folder, index=tmp_path / "i.sqlite")
    m = fm.calibration_for(fm.light_groups()[0])
    assert [Path(p).name for p in m.bias] == ["bias_2021-03-03.fits"]
    assert m.nights["bias"] == "2021-03-03" and "nearest of 3" in m.reasons[0]


def test_incremental_modify_delete_add(tmp_path):
    night = make_night(tmp_path / "night")
    idx = tmp_path / "i.sqlite"
    first = FitsManager(night, index=idx)
    assert first.stats.read == 16 and first.stats.unchanged == 0
    again = FitsManager(night, index=idx)
    assert (again.stats.read, again.stats.unchanged, again.stats.removed) == (0, 16, 0)
    assert again.files() == first.files()
    # modify (new header, new mtime), delete one, add one
    target = night / "lights" / "wasp12_000.fits"
    write_fits(target, light(40, OBJECT="HAT-P-7"), mtime_ns=time.time_ns() + 10**9)
    (night / "bias_0.fits").unlink()
    write_fits(night / "lights" / "new.fits", light(45))
    third = FitsManager(night, index=idx)
    assert (third.stats.read, third.stats.removed, third.stats.unchanged) == (2, 1, 14)
    assert third.files(target="HAT-P-7") == [str(target)]
    assert str(night / "bias_0.fits") not in third.files() and len(third.files()) == 16
    with sqlite3.connect(idx) as con:
        assert con.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 16


def test_depth_limits_and_keeps_deeper_rows(tmp_path):
    night = make_night(tmp_path / "night")
    idx = tmp_path / "i.sqlite"
    assert len(FitsManager(night, index=idx).files()) == 16
    top = FitsManager(night, depth=0, index=idx)
    assert len(top.files()) == 3 and top.stats.removed == 0
    assert FitsManager(night, index=idx).stats.read == 0  # deeper rows were kept


def test_config_change_rereads(tmp_path):
    night = make_night(tmp_path / "night", n_lights=1)
    idx = tmp_path / "i.sqlite"
    FitsManager(night, index=idx, config=Config())
    cfg = Config(instruments=(Instrument(name="one-metre", match=("T1m",), gain=3.0),))
    fm = FitsManager(night, index=idx, config=cfg)
    assert fm.stats.read == 13 and {f.gain for f in fm.frames()} == {3.0}


def test_bad_files_never_crash(tmp_path):
    night = make_night(tmp_path / "night", n_lights=1)
    (night / "zero.fits").write_bytes(b"")
    (night / "text.fits").write_text("not fits at all\n" * 400)
    good = write_fits(night / "trunc.fits", light(), shape=(50, 50)).read_bytes()
    (night / "trunc.fits").write_bytes(good[:4000])
    from astropy.io import fits
    fits.PrimaryHDU(header=fits.Header(light())).writeto(night / "header_only.fits")
    locked = write_fits(night / "locked.fits", light())
    os.chmod(locked, 0)
    (night / "notes.txt").write_text("ignored: not a FITS name")
    # cut-short files changed a minute ago or less may still be being written (issue 20): these
    # stayed broken
    for name in ("zero.fits", "trunc.fits", "header_only.fits"):
        os.utime(night / name, (time.time() - 3600, time.time() - 3600))
    try:
        fm = FitsManager(night, index=tmp_path / "i.sqlite")
        reasons = dict(fm.unreadable)
    finally:
        os.chmod(locked, 0o644)
    assert "empty" in reasons[str(night / "zero.fits")]
    assert "not a FITS" in reasons[str(night / "text.fits")]
    assert "truncated" in reasons[str(night / "trunc.fits")]
    assert "header only" in reasons[str(night / "header_only.fits")]
    if str(locked) in reasons:
        assert "permission" in reasons[str(locked)]
    assert len(fm.all_images) == 3 - (str(locked) in reasons)
    # unreadable files are remembered, not re-read, while unchanged
    assert FitsManager(night, index=tmp_path / "i.sqlite").stats.read == 0


def test_read_only_night_uses_cache(tmp_path, monkeypatch):
    night = make_night(tmp_path / "ro", n_lights=1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    os.chmod(night, 0o555)
    try:
        fm = FitsManager(night)
        assert Path(fm.index_path) == cache_index_path(night)
        assert Path(fm.index_path).is_relative_to(tmp_path / "cache") and Path(fm.index_path).exists()
        assert not (night / ".reduce").exists() and len(fm.files()) == 13
        assert FitsManager(night).stats.read == 0
    finally:
        os.chmod(night, 0o755)


def test_default_index_in_night(tmp_path):
    night = make_night(tmp_path / "rw", n_lights=1)
    fm = FitsManager(night)
    assert Path(fm.index_path) == night / ".reduce" / "index.sqlite" == default_index_path(night)
    assert FitsManager(night).stats.read == 0  # .reduce itself is never scanned


def test_memory_index(tmp_path):
    fm = FitsManager(make_night(tmp_path / "n", n_lights=1), index=":memory:")
    assert len(fm.files()) == 13 and not (tmp_path / "n" / ".reduce").exists()


_SCAN = """
import os, sys, time
from reduce.index.manager import FitsManager
while not os.path.exists(sys.argv[3]):  # start both scans at the same moment
    time.sleep(0.005)
fm = FitsManager(sys.argv[1], index=sys.argv[2])
print(len(fm.files()), fm.stats.read)
"""


def test_concurrent_scans_do_not_corrupt(tmp_path):
    night = tmp_path / "big"
    for i in range(600):
        write_fits(night / f"f{i:03d}.fits", light(i % 60), shape=(4, 4))
    idx, go = tmp_path / "shared.sqlite", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _SCAN, str(night), str(idx), str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(0.5)
    go.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split()[0] == "600"
    with sqlite3.connect(idx) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 600
    assert FitsManager(night, index=idx).stats.read == 0


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        FitsManager(tmp_path / "missing")
    f = write_fits(tmp_path / "a.fits", light())
    with pytest.raises(NotADirectoryError):
        FitsManager(f)
    with pytest.raises(ValueError, match="depth"):
        FitsManager(tmp_path, depth=-1, index=":memory:")


def test_float32_and_subfolder_symlink_loop(tmp_path):
    night = tmp_path / "n"
    write_fits(night / "a.fits", light(), dtype=np.float32)
    os.symlink(night, night / "loop")
    fm = FitsManager(night, index=":memory:")
    assert len(fm.files()) == 1 and fm.frames()[0].bitpix == -32 and fm.frames()[0].saturation is None


def test_corrupt_index_is_rebuilt(tmp_path):
    night = make_night(tmp_path / "n", n_lights=1)
    idx = tmp_path / "i.sqlite"
    idx.write_bytes(b"garbage, not an sqlite database" * 100)
    fm = FitsManager(night, index=idx)
    assert len(fm.files()) == 13 and FitsManager(night, index=idx).stats.read == 0


def test_unwritable_index_location_is_an_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        FitsManager(make_night(tmp_path / "n", n_lights=1), index=blocker / "i.sqlite")


def test_table_only_fits_is_skipped_not_unreadable(tmp_path):
    """A FITS file holding only tables is skipped (with its reason), not unreadable."""
    from astropy.table import Table
    night = make_night(tmp_path / "n", n_lights=1)
    (night / "reduced").mkdir()
    Table({"time": [1.0, 2.0], "flux": [1.0, 0.99]}).write(night / "reduced" / "lc.fits")
    fm = FitsManager(night, index=tmp_path / "i.sqlite")
    assert fm.unreadable == [] and len(fm.files()) == 13
    assert fm.skipped == [(str(night / "reduced" / "lc.fits"), "no 2-D image: 1 FITS table(s) only")]


def test_reduce_products_with_flux_cubes_are_skipped(tmp_path):
    """A light-curve FITS holding flux cubes (apertures x stars x frames) is never taken for a frame."""
    import numpy as np
    from astropy.io import fits
    night = make_night(tmp_path / "n", n_lights=1)
    (night / "reduced").mkdir()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("t", "D", array=[1.0])]),
                  fits.ImageHDU(np.zeros((30, 12, 40), np.float32), name="FLUXES")]
                 ).writeto(night / "reduced" / "lc.fits")
    fm = FitsManager(night, index=tmp_path / "i.sqlite")
    assert fm.unreadable == [] and len(fm.files()) == 13
    assert [p for p, _ in fm.skipped] == [str(night / "reduced" / "lc.fits")]
    assert all(g.target != "" or g.type != "light" for g in fm.light_groups())
