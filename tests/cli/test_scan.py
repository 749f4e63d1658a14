"""`reduce scan`: output formats, --files, --errors, exit codes, messages."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from reduce.cli import cli
from tests.index.fitsfactory import REAL, light, write_fits
from tests.conftest import stayed_broken

KEYS = {"date", "telescope", "filter", "type", "target", "width", "height", "exposure", "files",
        "warnings"}


@pytest.fixture
def night(tmp_path):
    folder = tmp_path / "night"
    for i in range(2):
        write_fits(folder / f"bias_{i}.fits", light(i, IMAGETYP="Bias Frame", EXPTIME=0.0))
    for i in range(3):
        write_fits(folder / "sub" / f"sci_{i}.fits", light(10 + i))
    return folder


def scan(*args, env=None):
    return CliRunner().invoke(cli, ["scan", *map(str, args)], env=env, catch_exceptions=False)


def test_json_groups(night, tmp_path):
    r = scan(night, "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.stdout)
    assert [set(g) for g in groups] == [KEYS, KEYS]
    assert [(g["type"], g["files"], g["exposure"]) for g in groups] == [("bias", 2, 0.0), ("light", 3, 30.0)]
    light_group = groups[1]
    assert (light_group["date"], light_group["target"], light_group["width"]) == ("2021-03-03", "WASP-12", 10)


def test_table_and_default_index(night):
    r = scan(night)
    assert r.exit_code == 0
    for word in ("date", "telescope", "exposure", "WASP-12", "bias", "light", "2021-03-03"):
        assert word in r.stdout
    assert (night / ".reduce" / "index.sqlite").exists()


def test_csv_and_depth(night, tmp_path):
    r = scan(night, "--format", "csv", "--depth", "0", "--index", tmp_path / "i.sqlite")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.exit_code == 0 and len(rows) == 1 and rows[0]["type"] == "bias" and rows[0]["files"] == "2"


def test_files_listing(night, tmp_path):
    r = scan(night, "--files", "--format", "json", "--index", tmp_path / "i.sqlite")
    files = json.loads(r.stdout)
    assert len(files) == 5 and {f["type"] for f in files} == {"bias", "light"}
    assert all(f["path"].startswith(str(night)) for f in files)
    r = scan(night, "--files", "--index", tmp_path / "i.sqlite")
    assert "sci_2.fits" in r.stdout


def test_unreadable_exit_status_and_errors(night, tmp_path):
    (night / "broken.fits").write_bytes(b"")
    stayed_broken(night / "broken.fits")
    (night / "sub" / "fake.fit").write_text("SIMPLE? no\n" * 300)
    idx = tmp_path / "i.sqlite"
    r = scan(night, "--index", idx)
    assert r.exit_code == 1 and "(2 unreadable" in r.stderr and "light" in r.stdout
    r = scan(night, "--errors", "--format", "json", "--index", idx)
    assert r.exit_code == 1
    errors = {e["path"].rsplit("/", 1)[1]: e["reason"] for e in json.loads(r.stdout)}
    assert errors == {"broken.fits": "empty file (0 bytes)",
                      "fake.fit": "not a FITS file (does not start with SIMPLE)"}
    r = scan(night, "--errors", "--index", idx)
    assert "broken.fits" in r.stdout and "empty file" in r.stdout


def test_own_products_do_not_fail_the_scan_but_other_tables_do(night, tmp_path):
    """reduce's light-curve products are ignored; any other image-less FITS is a skipped file."""
    import numpy as np
    from astropy.table import Table

    from reduce.lightcurve.tables import lightcurve_table, write_lightcurve
    (night / "reduced").mkdir()
    table = lightcurve_table({"time": [2460000.5, 2460000.6], "flux": [1.0, 0.99]})
    write_lightcurve(table, night / "reduced" / "lc", extra_hdus={"FLUXES": np.ones((3, 2, 2))})
    r = scan(night, "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 0 and sum(g["files"] for g in json.loads(r.stdout)) == 5
    Table({"time": [1.0], "flux": [1.0]}).write(night / "catalogue.fits")
    r = scan(night, "--errors", "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 1
    assert [(e["path"].rsplit("/", 1)[1], e["reason"]) for e in json.loads(r.stdout)] == [
        ("catalogue.fits", "no 2-D image: 1 FITS table(s) only")]


def test_missing_folder_is_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["scan", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_empty_folder_message(tmp_path):
    (tmp_path / "empty").mkdir()
    r = scan(tmp_path / "empty", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 0 and "No FITS files" in r.stderr
    r = scan(tmp_path / "empty", "--format", "json", "--index", tmp_path / "i.sqlite")
    assert json.loads(r.stdout) == []


def test_bad_config_is_usage_error(night, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments:\n  cam:\n    gian: 2\n")
    r = CliRunner().invoke(cli, ["scan", str(night), "--config", str(bad)])
    assert r.exit_code == 2 and "did you mean 'gain'" in r.output


def test_sample_config(night, tmp_path):
    from pathlib import Path
    sample = Path(__file__).resolve().parents[2] / "sample_config.yaml"
    r = scan(night, "--config", sample, "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 2


def test_help_documents_exit_status():
    r = CliRunner().invoke(cli, ["scan", "--help"])
    assert r.exit_code == 0 and "Exit status" in r.output and "unreadable" in r.output


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real frames not found at {REAL}")
def test_real_frames_json(tmp_path):
    r = scan(REAL, "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 0
    groups = json.loads(r.stdout)
    sbig = {(g["type"], g["exposure"]): g["files"] for g in groups if g["telescope"].startswith("SBIG")}
    assert sbig[("flat", 23.0)] == 8 and sbig[("bias", 0.0)] == 8 and sbig[("dark", 60.0)] == 4


def test_cube_and_table_only_folder_is_not_empty_and_exits_1(tmp_path):
    """A folder holding only a cube and a table is reported file by file, never "No FITS files"."""
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    folder = tmp_path / "odd"
    folder.mkdir()
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(folder / "cube.fits")
    Table({"a": [1]}).write(folder / "table.fits")
    r = scan(folder, "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 1 and "No FITS files" not in r.stderr and "2 without a 2-D image" in r.stderr
    r = scan(folder, "--errors", "--format", "json", "--index", tmp_path / "i.sqlite")
    reasons = {e["path"].rsplit("/", 1)[1]: e["reason"] for e in json.loads(r.stdout)}
    assert reasons == {"cube.fits": "no 2-D image: 3-D cube (8x8x2)",
                       "table.fits": "no 2-D image: 1 FITS table(s) only"}


def test_unreadable_sub_folder_is_reported_and_exits_1(night, tmp_path, monkeypatch):
    """A sub-folder that cannot be listed (no permission) is a skipped entry with its reason."""
    import os

    from reduce.index import manager

    real_scandir = os.scandir
    locked = str(night / "sub")

    def scandir(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(manager.os, "scandir", scandir)
    r = scan(night, "--errors", "--format", "json", "--index", tmp_path / "i.sqlite")
    assert r.exit_code == 1
    assert json.loads(r.stdout) == [{"path": locked, "reason": "cannot list folder: Permission denied"}]
