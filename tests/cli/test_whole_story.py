"""The cron summary tells the whole story (issue 19, items 6 and 7): every warning of a group in
the printed summary, --summary-json and the provenance; every log line of a group's reduction
names it; an unchanged re-run reports the run's counts; a bad recipe before any scan; a piped
--dry-run keeps whole names; Ctrl-C says the previous outputs are intact."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_night, stayed_broken

from .test_cron import recipe  # noqa: F401  (the default recipe without figures)
from .test_run import run_cli
from .test_summary import _fresh_console  # noqa: F401  (autouse: a new console per test)

ROOT = Path(__file__).resolve().parents[2]
LABEL = "2024-03-15_SIM-60_SIM-1_V"


@pytest.fixture(scope="module")
def bare_night(tmp_path_factory) -> Path:
    """12 frames without any bias, dark or flat, plus one truncated light frame (do not modify)."""
    from reduce.simulations import simulate_night

    dest = tmp_path_factory.mktemp("bare") / "night"
    simulate_night(dest, seed=7, n_images=12, size=200, calibration=False)
    first = sorted((dest / "light").glob("*.fits"))[0]
    (dest / "light" / "SIM-1_V_0099.fits").write_bytes(first.read_bytes()[:5000])
    stayed_broken(dest / "light" / "SIM-1_V_0099.fits")  # broken, not being written
    return dest


@pytest.fixture
def bare_copy(bare_night, tmp_path) -> Path:
    return copy_night(bare_night, tmp_path / "night")


def test_missing_calibration_and_every_warning_reach_summary_json_and_provenance(
        bare_copy, recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out, summary, logfile = tmp_path / "out", tmp_path / "s.json", tmp_path / "run.log"
    assert run_cli("run", recipe, bare_copy, "-o", out, "--jobs", "1", "--summary-json", summary,
                   "--log-file", logfile) == 3  # the truncated frame is flagged
    printed = capsys.readouterr().out
    group = json.loads(summary.read_text())["groups"][0]
    codes = {w["code"]: w for w in group["warnings"]}
    missing = codes["no_calibration"]
    assert missing["missing"] == ["bias", "dark", "flat"]
    assert "no bias, dark or flat applied" in missing["message"]
    provenance = json.loads(next(out.glob(f"{LABEL}.json")).read_text())
    assert [w["message"] for w in provenance["warnings"]] == [w["message"] for w in group["warnings"]]
    for w in group["warnings"]:
        assert f"warning: {w['message']}" in " ".join(printed.split()) or \
            w["message"].split("\n")[0] in printed
    assert "no bias, dark or flat applied" in printed
    # a warning only the log had (the calibration block's) is said once, not three times more
    assert not any(w["message"].startswith("Calibration: no ") for w in group["warnings"])
    # every warning line of the log is in the JSON (the flagged frames are reported as such)
    log_text = logfile.read_text()
    for line in re.findall(rf"WARNING {LABEL}: (.+)", log_text):
        if "frame(s) flagged" in line or "cannot be measured" in line:
            continue
        if line.startswith("Calibration: no "):
            continue  # said by no_calibration
        assert any(line.startswith(w["message"][:60]) for w in group["warnings"]), line


def test_every_log_line_of_a_group_names_it(bare_copy, recipe, tmp_path):
    logfile = tmp_path / "run.log"
    assert run_cli("run", recipe, bare_copy, "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--log-file", logfile) == 3
    lines = [ln for ln in logfile.read_text().splitlines() if re.match(r"\d{4}-\d\d-\d\dT", ln)]
    start = next(i for i, ln in enumerate(lines) if re.search(r": reducing \d+ frame", ln))
    end = next(i for i, ln in enumerate(lines) if re.search(r": done in [0-9.]+ s", ln))
    group_lines = lines[start:end + 1]
    assert any("Calibration: no bias frames" in ln for ln in group_lines)
    unnamed = [ln for ln in group_lines if f"{bare_copy.name}/{LABEL}: " not in ln]
    assert not unnamed, unnamed


def test_an_unchanged_rerun_reports_the_runs_counts(bare_copy, recipe, tmp_path):
    out = tmp_path / "out"
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    assert run_cli("run", recipe, bare_copy, "-o", out, "-q", "--jobs", "1", "--summary-json", first) == 3
    assert run_cli("run", recipe, bare_copy, "-o", out, "-q", "--summary-json", again) == 0
    ran, kept = json.loads(first.read_text())["groups"][0], json.loads(again.read_text())["groups"][0]
    assert kept["status"] == "unchanged"
    assert (kept["frames"], kept["frames_used"]) == (ran["frames"], ran["frames_used"]) == (13, 12)
    assert kept["warnings"] == ran["warnings"]


def test_a_bad_recipe_is_reported_before_the_night_is_scanned(night_copy, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detection:\n  - PointSourceDetektion: {threshold: 5}\n")
    assert run_cli("run", bad, night_copy, "-o", tmp_path / "out") == 2
    assert "bad.yaml:2" in capsys.readouterr().err
    assert not (night_copy / ".reduce").exists(), "the night was scanned before the recipe was read"
    assert run_cli("run", bad, tmp_path / "no-such-night") == 2
    assert "bad.yaml:2" in capsys.readouterr().err  # the recipe first, whatever else is wrong


def test_a_valid_recipe_is_still_checked_once_then_reruns_stay_light(night_copy, recipe, tmp_path):
    """Validating before the scan must not cost an unchanged re-run its speed (no block import)."""
    out = tmp_path / "out"
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    code = ("import sys\nfrom reduce.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('EXIT', e.code)\nprint(' '.join(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code, "run", str(recipe), str(night_copy), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert "EXIT 0" in r.stdout, r.stderr
    assert "reduce.blocks" not in r.stdout.split()
    recipe.write_text(recipe.read_text().replace("detection:", "detection:\n  - Nope: {}\n", 1))
    assert run_cli("run", recipe, night_copy, "-o", out, "-q") == 2, "an edited, broken recipe passed"


def test_dry_run_piped_to_a_file_keeps_whole_names(night_copy, recipe, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "a-rather-long-output-folder-name" / "for-this-night"
    with open(tmp_path / "plan.txt", "w") as f:
        r = subprocess.run([sys.executable, "-m", "reduce", "run", str(recipe), str(night_copy), "-o", str(out),
                            "--dry-run"], stdout=f, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    plan = (tmp_path / "plan.txt").read_text()
    assert LABEL in plan and f"{out}/{LABEL}.*" in plan
    assert "…" not in plan


def test_ctrl_c_says_the_previous_outputs_are_intact(night_copy, recipe, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    from reduce.run import group

    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(group, "_finish", interrupted)
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1", "--force") == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "previous outputs are intact" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_worker_processes_log_lines_name_the_group_too(capsys):
    """A worker replaces the console's rich handler by a plain one: it keeps the group's name."""
    import logging

    from reduce.console import _GroupPrefix, group_context
    from reduce.core.executors.local import _plain_logging

    logger = logging.getLogger("reduce")
    saved = list(logger.handlers)
    rich_like = logging.Handler()  # not a StreamHandler, as RichHandler
    rich_like.addFilter(_GroupPrefix())
    try:
        for h in saved:
            logger.removeHandler(h)
        logger.addHandler(rich_like)
        collector = logging.Handler()  # as the run's warning collectors: the parent's only
        collector.parent_only = True
        logger.addHandler(collector)
        _plain_logging()
        assert collector not in logger.handlers and len(logger.handlers) == 1
        with group_context("night/G1"):
            logging.getLogger("reduce.blocks.x").warning("a frame's warning")
        logging.getLogger("reduce.blocks.x").warning("outside any group")
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in saved:
            logger.addHandler(h)
    err = capsys.readouterr().err
    assert err.count("WARNING night/G1: a frame's warning") == 1
    assert "WARNING outside any group" in err


def test_warnings_outside_any_group_are_in_the_summary_too(night_copy, recipe, tmp_path, capsys):
    """A corrupt index rebuilt while scanning: the log's warning is in --summary-json and the
    printed summary, not only in the log."""
    (night_copy / ".reduce").mkdir()
    (night_copy / ".reduce" / "index.sqlite").write_bytes(b"not a database" * 100)
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "out", "--jobs", "1", "--summary-json",
                   tmp_path / "s.json") == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    corrupt = [w for w in summary["warnings"] if "corrupt" in w]
    assert corrupt and "rebuilding" in corrupt[0]
    printed = " ".join(capsys.readouterr().out.split())
    assert f"warning: {' '.join(corrupt[0].split())}" in printed
