"""Product names and TELESCOP come from the frames' headers: a config's instrument name only
selects the instrument, so adding --config never leaves the earlier products orphaned; a rename
that cannot be avoided (another telescope keyword) is said and the old set removed."""
from __future__ import annotations

import json
from pathlib import Path

from astropy.io import fits

from tests.cli.test_run import DEFAULT, run_cli

STEM = "2024-03-15_SIM-60_SIM-1_V"


def _config(tmp_path, name: str, extra: str = "") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"version: 1\ninstruments:\n  {name}:\n    match: ['SIM-60']\n    gain: 1.5\n{extra}")
    return p


def _stems(out: Path) -> set[str]:
    return {p.name.split(".")[0].removesuffix("_reference").removesuffix("_comparisons")
            for p in out.iterdir() if not p.name.startswith(".")}


def test_a_config_never_renames_the_products(night_copy, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out) == 0
    before = sorted(p.name for p in out.iterdir())
    assert _stems(out) == {STEM}
    cfg = _config(tmp_path, "microobservatory")
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "--config", cfg) == 0
    assert sorted(p.name for p in out.iterdir()) == before  # one set, same names
    assert fits.getheader(out / f"{STEM}.fits", 0)["TELESCOP"] == "SIM-60"  # the header's, not the config's


def test_an_unavoidable_rename_removes_the_old_set(night_copy, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night_copy, "-o", out) == 0
    cfg = _config(tmp_path, "sim", "    keywords:\n      telescope: [INSTRUME]\n")
    summary = tmp_path / "summary.json"
    assert run_cli("run", DEFAULT, night_copy, "-o", out, "--config", cfg, "--summary-json", summary) == 0
    new = "2024-03-15_SimCam_SIM-1_V"
    assert _stems(out) == {new}  # the SIM-60 set is gone, not left beside the new one
    warnings = [w for g in json.loads(summary.read_text())["groups"] for w in g["warnings"]]
    assert any(w.get("code") == "products_renamed" and w["old"] == STEM and w["new"] == new for w in warnings)
    said = json.loads((out / f"{new}.json").read_text())["warnings"]  # the provenance says it too
    assert any(w.get("code") == "products_renamed" for w in said)
