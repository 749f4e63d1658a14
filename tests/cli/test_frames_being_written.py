"""Issue 20 item 2: a frame still being written when a pass starts is left for the next pass (not
measured, not flagged, no exit 3); once complete it is measured; one that stays cut short is
reported as today."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from astropy.table import Table

from reduce.cli import main
from reduce.index.manager import WRITING_S, being_written
from reduce.simulations import simulate_night

DEFAULT = Path(__file__).resolve().parents[2] / "recipes" / "default.yaml"


def run(night: Path, out: Path, summary: Path, recipe: Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(recipe), str(night), "-o", str(out), "-q", "--summary-json", str(summary)])
    return exc.value.code


def table(out: Path) -> Table:
    (csv,) = sorted(out.glob("*.csv"))
    return Table.read(csv, format="ascii.csv", comment="#")


def test_being_written_rules():
    now = time.time_ns()
    assert being_written(2880, now - 10**9, "truncated: HDU 0 needs 11520 bytes, file has 2880", now)
    assert being_written(0, now, "empty file (0 bytes)", now)
    assert being_written(2880, now, "truncated header: no END card", now)
    # cut short long ago: broken, reported as unreadable
    assert not being_written(2880, now - int((WRITING_S + 5) * 1e9), "truncated header: no END card", now)
    # complete files are measured however recent; other faults are never "being written"
    assert not being_written(11520, now, None, now)
    assert not being_written(11520, now, "not a FITS file (does not start with SIMPLE)", now)


def test_a_frame_still_being_written_waits_for_the_next_pass(tmp_path):
    night, out, summary = tmp_path / "night", tmp_path / "out", tmp_path / "s.json"
    recipe = tmp_path / "noplot.yaml"
    recipe.write_text(DEFAULT.read_text().replace("plot: true", "plot: false"))
    truth = simulate_night(night, n_images=8, size=128, seed=5)
    last = night / truth["frames"]["file"][-1]
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])  # the camera is half-way through writing it

    assert run(night, out, summary, recipe) == 0, "a frame being written is not a fault"
    s = json.loads(summary.read_text())
    assert [Path(p).name for p in s["pending"]] == [last.name]
    assert s["unreadable"] == []
    t = table(out)
    assert len(t) == 7 and last.name not in set(t["file"])

    last.write_bytes(whole)  # written out: the next pass measures it
    assert run(night, out, summary, recipe) == 0
    t = table(out)
    assert len(t) == 8 and last.name in set(t["file"])
    assert json.loads(summary.read_text())["pending"] == []

    # a file that stays cut short is broken: reported, as before
    last.write_bytes(whole[: len(whole) // 2])
    old = time.time() - WRITING_S - 60
    os.utime(last, (old, old))
    assert run(night, out, summary, recipe) == 3
    t = table(out)
    row = t[list(t["file"]).index(last.name)]
    assert row["flag"] != 0
    assert json.loads(summary.read_text())["pending"] == []
