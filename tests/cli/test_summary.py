"""The summary `reduce run` prints tells the truth: the point-to-point scatter (unit in the header),
labels never broken mid-word, and the flagged count the log gives, failed groups included."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from reduce.lightcurve.stats import p2p_scatter

from .test_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "recipes" / "default.yaml"




@pytest.fixture(autouse=True)
def _fresh_console(monkeypatch):
    """The CLI's console reads COLUMNS when made: a new one per test."""
    import reduce.console

    monkeypatch.setattr(reduce.console, "_console", None)


@pytest.fixture
def noplot(tmp_path) -> Path:
    path = tmp_path / "noplot.yaml"
    path.write_text(DEFAULT.read_text().replace("plot: true", "plot: false"))
    return path


@pytest.fixture(scope="module")
def transit_night(tmp_path_factory) -> Path:
    from reduce.simulations import simulate_night

    dest = tmp_path_factory.mktemp("transit") / "night"
    simulate_night(dest, seed=5, n_images=40, size=200, signal="transit", n_bias=2, n_darks=2,
                   n_flats=3)
    return dest


def test_scatter_is_point_to_point_not_the_signal(transit_night, noplot, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out, summary = tmp_path / "out", tmp_path / "s.json"
    assert run_cli("run", noplot, transit_night, "-o", out, "--jobs", "1", "--summary-json", summary) == 0
    flux = np.asarray(Table.read(next(out.glob("*.csv")), format="ascii.csv", comment="#")["flux"], float)
    expected = float(p2p_scatter(flux / np.median(flux)))
    group = json.loads(summary.read_text())["groups"][0]
    assert "rms" not in group and group["scatter_p2p"] == pytest.approx(expected)
    assert group["scatter_p2p"] < 0.5 * np.std(flux)  # the transit is in the std, not in the p2p
    text = capsys.readouterr().out
    assert "p2p scatter (ppt)" in text
    row = next(ln for ln in text.splitlines() if "2024-03-15_SIM-60_SIM-1_V" in ln and "done" in ln)
    assert f"{1e3 * expected:.2f}" in row


@pytest.mark.parametrize("columns", ["40", "200"])
def test_labels_are_never_broken(night_copy, noplot, tmp_path, capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    assert run_cli("run", noplot, night_copy, "-o", tmp_path / "out", "--jobs", "1") == 0
    text = capsys.readouterr().out
    label = "2024-03-15_SIM-60_SIM-1_V"
    lines = [ln for ln in text.splitlines() if label in ln]
    assert lines, text
    for fragment in ("2024-03-15_SIM-60_SI", "M-1_V"):  # never a label's piece alone on a line
        assert not any(ln.strip(" │|") == fragment for ln in text.splitlines()), text
    if columns == "40":  # the list layout: the label alone, then key: value pairs
        assert any(ln.strip() == label for ln in lines)
        assert re.search(r"status: done \| frames: 12 \| flagged: 0", text), text
    else:
        assert "┃ group" in text or "group " in text


def test_failed_group_reports_the_frames_the_log_flagged(night_copy, noplot, tmp_path, capsys, monkeypatch):
    """A saturation level below the target's raw peak flags every frame; the group then fails. The
    summary counts the flagged frames the log reports, and says why."""
    monkeypatch.setenv("COLUMNS", "200")
    config = tmp_path / "low_saturation.yaml"
    config.write_text("version: 1\ninstruments:\n  sim:\n    match: ['SIM-60']\n    saturation: 25000\n")
    log = tmp_path / "run.log"
    summary = tmp_path / "s.json"
    code = run_cli("run", noplot, night_copy, "-o", tmp_path / "out", "--jobs", "1", "--config", config,
                   "--log-file", log, "--summary-json", summary)
    assert code == 1
    logged = re.search(r"(\d+) of (\d+) frame\(s\) flagged", log.read_text())
    assert logged and logged.group(1) == logged.group(2) == "12", log.read_text()
    group = json.loads(summary.read_text())["groups"][0]
    assert group["status"] == "failed" and len(group["flagged"]) == 12
    for f in group["flagged"]:  # the reason names the block the log names
        block = f["reason"].split(":")[0]
        assert block and f"in {block}" in log.read_text(), f
    text = capsys.readouterr().out
    row = next(ln for ln in text.splitlines() if "failed" in ln and "SIM-1_V" in ln)
    assert re.search(r"│ 12\s+│ 12\s+│", row), row  # frames 12, flagged 12
