"""Unattended `reduce run`: parallel and Dask execution, many nights, idempotent re-runs, locks,
SIGKILL, bad frames, unwritable and full disks, plain logs and the JSON summary."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.cli import main
from tests.conftest import stayed_broken

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "recipes" / "default.yaml"
PRODUCTS = (".csv", ".fits", ".json", ".yaml")


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


@pytest.fixture
def recipe(tmp_path) -> Path:
    """The default recipe without figures (they cost most of a small run's time)."""
    path = tmp_path / "noplot.yaml"
    path.write_text(DEFAULT.read_text().replace("plot: true", "plot: false"))
    return path


def products(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in PRODUCTS}


def leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def check_readable(out: Path) -> None:
    """Every product present is complete: tables parse, FITS opens with its data, JSON loads."""
    for p in out.iterdir():
        if p.suffix == ".csv":
            assert len(Table.read(p, format="ascii.csv")) > 0
        elif p.suffix == ".fits":
            with fits.open(p) as hdul:
                hdul.verify("exception")
                assert len(hdul[1].data) > 0
        elif p.suffix == ".json":
            json.loads(p.read_text())


def csv_of(out: Path) -> Path:
    return next(out.glob("*.csv"))


# -- parallel and distributed -----------------------------------------------------------------
def test_jobs_2_gives_byte_identical_tables(night_copy, recipe, tmp_path):
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "o1", "-q", "--jobs", "1") == 0
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "o2", "-q", "--jobs", "2",
                   "--summary-json", tmp_path / "s.json") == 0
    a, b = products(tmp_path / "o1"), products(tmp_path / "o2")
    for name in a:
        if name.endswith((".csv", ".fits")):
            assert a[name] == b[name], f"{name} differs between --jobs 1 and --jobs 2"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["executor"]["executor"] == "processes" and summary["executor"]["jobs"] == 2
    assert summary["executor"]["peak_worker_rss_mb"] > 0


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


def test_dask_cluster_gives_identical_tables(scheduler, night_copy, recipe, tmp_path):
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "local", "-q", "--jobs", "1") == 0
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "dask", "-q", "--executor", "dask",
                   "--scheduler", scheduler, "--summary-json", tmp_path / "s.json") == 0
    a, b = products(tmp_path / "local"), products(tmp_path / "dask")
    assert [n for n in a if n.endswith((".csv", ".fits"))] == [n for n in b if n.endswith((".csv", ".fits"))]
    for name in a:
        if name.endswith((".csv", ".fits")):
            assert a[name] == b[name], f"{name} differs between local and Dask runs"
    ex = json.loads((tmp_path / "s.json").read_text())["executor"]
    assert ex["executor"] == "dask" and ex["workers"] == 2 and ex["groups_at_once"] == 2


def test_dask_reduces_groups_of_several_nights_at_once_with_identical_outputs(scheduler, small_night, recipe,
                                                                                tmp_path):
    archive = tmp_path / "archive"
    nights = ("2024-03-15", "2024-03-16", "2024-03-17")
    for name in nights:
        shutil.copytree(small_night, archive / name, ignore=shutil.ignore_patterns(".reduce", "reduced"))
    assert run_cli("run", recipe, archive, "--nights", "-o", tmp_path / "local", "-q", "--jobs", "1") == 0
    assert run_cli("run", recipe, archive, "--nights", "-o", tmp_path / "dask", "-q", "--scheduler", scheduler,
                   "--summary-json", tmp_path / "s.json") == 0
    for name in nights:
        a, b = products(tmp_path / "local" / name), products(tmp_path / "dask" / name)
        tables = [n for n in a if n.endswith((".csv", ".fits"))]
        assert len(tables) == 2 and tables == [n for n in b if n.endswith((".csv", ".fits"))]
        for n in tables:
            assert a[n] == b[n], f"{name}/{n} differs between the local run and groups reduced at once"
    groups = json.loads((tmp_path / "s.json").read_text())["groups"]
    assert [Path(g["night"]).name for g in groups] == list(nights)  # reported in night order
    assert all(g["status"] == "done" and g["frame_seconds"] > 0 for g in groups)
    spans = sorted((g["started"], g["finished"]) for g in groups)
    assert spans[1][0] < spans[0][1], f"the groups ran one after the other: {spans}"


def test_groups_at_once_isolate_a_failing_group(small_night, recipe, tmp_path):
    """Through the API, any executor offering groups_at_once > 1: a group that fails (its night has
    no calibration and the recipe says fail) is reported, the other nights' groups are reduced."""
    from reduce.config import load_config
    from reduce.core.executors import SerialExecutor
    from reduce.run import run_nights

    class TwoAtOnce(SerialExecutor):
        groups_at_once = 2

    strict = tmp_path / "strict.yaml"
    strict.write_text(recipe.read_text().replace("missing_calibration: warn", "missing_calibration: fail"))
    archive = tmp_path / "archive"
    for name in ("a", "b", "c"):
        shutil.copytree(small_night, archive / name, ignore=shutil.ignore_patterns(".reduce", "reduced"))
    for f in (archive / "b").rglob("*.fits*"):
        if "light" not in f.parent.name.lower() and "light" not in f.name.lower():
            f.unlink()
    from reduce.recipe import load_recipe

    from reduce.console import setup_logging

    setup_logging(0, log_file=str(tmp_path / "run.log"))
    report = run_nights([archive / n for n in "abc"], load_recipe(strict), config=load_config(None),
                        outdir=tmp_path / "out", show_progress=False, executor=TwoAtOnce())
    logged = (tmp_path / "run.log").read_text()
    for night in "ac":  # interleaved lines say which group they belong to
        assert re.search(rf"INFO {night}/\S+: Calibration: master bias from", logged), logged
    status = {Path(g.night).name: g.status for g in report.groups}
    assert status == {"a": "done", "b": "failed", "c": "done"}, status
    assert "no bias, dark, flat" in next(g.message for g in report.groups if g.status == "failed")
    assert report.exit_code == 3
    assert csv_of(tmp_path / "out" / "a").exists() and csv_of(tmp_path / "out" / "c").exists()


def test_execution_settings_from_the_config_file(scheduler, night_copy, recipe, tmp_path, capsys):
    """The config's `execution` section applies when no option (nor REDUCE_* variable) says."""
    config = tmp_path / "config.yaml"
    config.write_text(f"execution:\n  scheduler: {scheduler}\n  groups_at_once: 3\n")
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "a", "-q", "--config", config,
                   "--summary-json", tmp_path / "a.json") == 0
    ex = json.loads((tmp_path / "a.json").read_text())["executor"]
    assert ex["executor"] == "dask" and ex["groups_at_once"] == 3
    # an option on the command line wins over the whole section
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "b", "-q", "--config", config, "--jobs", "1",
                   "--summary-json", tmp_path / "b.json") == 0
    assert json.loads((tmp_path / "b.json").read_text())["executor"]["executor"] == "serial"
    config.write_text("execution:\n  jobs: 2\n")
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "c", "-q", "--config", config,
                   "--summary-json", tmp_path / "c.json") == 0
    assert json.loads((tmp_path / "c.json").read_text())["executor"]["jobs"] == 2
    capsys.readouterr()
    for bad, why in (("executor: cluster", "must be 'local' or 'dask'"), ("jobs: 0", "positive whole number"),
                     ("job: 2", "did you mean 'jobs'"), ("scheduler: 8786", "address like tcp://")):
        config.write_text(f"execution:\n  {bad}\n")
        assert run_cli("run", recipe, night_copy, "-q", "--config", config) == 2
        assert why in capsys.readouterr().err, bad


def test_dask_without_the_extra_explains_how_to_install(night_copy, recipe, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert run_cli("run", recipe, night_copy, "--scheduler", "tcp://127.0.0.1:8786") == 2
    assert "pip install 'reduce[distributed]'" in capsys.readouterr().err


def test_unreachable_scheduler_fails_clearly(night_copy, recipe, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from reduce.core.executors import DaskExecutor

    monkeypatch.setattr(DaskExecutor, "connect_timeout", 2.0)
    code = run_cli("run", recipe, night_copy, "-q", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 1
    assert "cannot connect to the Dask scheduler" in capsys.readouterr().err


# -- idempotent re-runs ---------------------------------------------------------------------------
def _add_frame(night: Path, name: str = "SIM-1_V_0013.fits") -> Path:
    """A new light frame, 70 s after the last one (the night is still being observed)."""
    last = sorted((night / "light").glob("*.fits"))[-1]
    new = night / "light" / name
    shutil.copy(last, new)
    with fits.open(new, mode="update") as hdul:
        h = hdul[0].header
        h["JD"] = h["JD"] + 70 / 86400
        from astropy import units as u
        from astropy.time import Time

        h["DATE-OBS"] = (Time(h["DATE-OBS"]) + 70 * u.s).isot
    return new


def test_rerun_with_nothing_new_does_nothing_and_new_frames_are_picked_up(night_copy, recipe, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert run_cli("run", recipe, night_copy, "-o", out, "--summary-json", tmp_path / "s.json") == 0
    said = capsys.readouterr()
    assert "Nothing to do" in said.out and "unchanged" in said.err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before, "an unchanged night was redone"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["exit_status"] == 0 and summary["frames"] == 0
    assert summary["skipped_unchanged"] == ["2024-03-15_SIM-60_SIM-1_V"]
    assert summary["groups"][0]["status"] == "unchanged" and summary["groups"][0]["outputs"]
    assert summary["nights"][0]["status"] == "unchanged"

    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--force") == 0
    assert csv_of(out).stat().st_mtime_ns != before[csv_of(out).name], "--force must redo the group"

    _add_frame(night_copy)
    assert run_cli("run", recipe, night_copy, "-o", out, "-q") == 0
    assert len(Table.read(csv_of(out))) == 13, "the new frame was not reduced"

    (out / next(p.name for p in out.iterdir() if p.suffix == ".yaml")).unlink()  # an output lost
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    assert json.loads((tmp_path / "s.json").read_text())["skipped_unchanged"] == []

    recipe.write_text(recipe.read_text() + "\n# edited\n")  # any change of the recipe text
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 13


def test_no_op_rerun_imports_no_heavy_module(night_copy, recipe):
    assert run_cli("run", recipe, night_copy, "-q", "--jobs", "1") == 0
    code = ("import sys\nfrom reduce.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('EXIT', e.code)\nprint(' '.join(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code, "run", str(recipe), str(night_copy), "-q"],
                       capture_output=True, text=True, timeout=60)
    assert "EXIT 0" in r.stdout, r.stderr
    loaded = set(r.stdout.split())
    heavy = {"numpy", "astropy", "scipy", "matplotlib", "photutils", "sep", "reduce.blocks", "reduce.run.group"}
    assert not heavy & loaded, f"a no-op re-run imported {sorted(heavy & loaded)}"


# -- many nights ----------------------------------------------------------------------------------
def test_many_nights_one_summary(small_night, recipe, tmp_path, capsys):
    archive = tmp_path / "archive"
    for name in ("2024-03-15", "2024-03-16"):
        shutil.copytree(small_night, archive / name, ignore=shutil.ignore_patterns(".reduce", "reduced"))
    (archive / "notes").mkdir()
    (archive / "notes" / "log.txt").write_text("no frames here")
    (archive / ".trash").mkdir()
    out = tmp_path / "out"
    assert run_cli("run", recipe, archive, "--nights", "-o", out, "--summary-json", tmp_path / "s.json") == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [Path(n["night"]).name for n in summary["nights"]] == ["2024-03-15", "2024-03-16"]
    assert len(summary["groups"]) == 2 and summary["frames"] == 24
    assert csv_of(out / "2024-03-15").exists() and csv_of(out / "2024-03-16").exists()
    assert capsys.readouterr().out.count("reduce run: 2 group(s)") == 1, "one summary for the whole run"
    # the same nights given one by one are the same outputs: nothing to redo
    assert run_cli("run", recipe, archive / "2024-03-15", archive / "2024-03-16", "-o", out, "-q",
                   "--summary-json", tmp_path / "s.json") == 0
    assert len(json.loads((tmp_path / "s.json").read_text())["skipped_unchanged"]) == 2
    assert run_cli("run", recipe, tmp_path / "nowhere", "--nights") == 2


# -- locks -----------------------------------------------------------------------------------------
def test_second_concurrent_run_exits_at_once_with_status_4(night_copy, recipe, tmp_path, capsys):
    from reduce.io.lock import NightLock, lock_path_for

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom reduce.io.lock import NightLock\n"
         "with NightLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
         str(lock_path_for(night_copy))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        code = run_cli("run", recipe, night_copy, "-q", "--summary-json", tmp_path / "s.json")
        assert time.perf_counter() - t0 < 5
        assert code == 4
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert json.loads((tmp_path / "s.json").read_text())["locked"] == [str(night_copy)]
        assert not (night_copy / "reduced").exists() or not list((night_copy / "reduced").glob("*.csv"))
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("run", recipe, night_copy, "-q") == 0  # the OS released the dead holder's lock


def test_stale_lock_of_a_dead_run_is_taken_over(night_copy, recipe, capsys):
    """The file says a dead pid holds it and a leftover process (e.g. an orphaned worker) still
    has it flock-ed: the next run replaces it."""
    import socket

    from reduce.io.lock import boot_id, lock_path_for

    lock = lock_path_for(night_copy)
    lock.parent.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    lock.write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "boot_id": boot_id()}))
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n", str(lock)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "held"
        assert run_cli("run", recipe, night_copy, "-q", "--jobs", "1") == 0
        err = capsys.readouterr().err
        assert f"pid {dead}" in err and "taking it over" in err
    finally:
        orphan.kill()
        orphan.wait()


# -- SIGKILL, plain logs --------------------------------------------------------------------------
def _cli(*args, env=None):
    return [sys.executable, "-c", "from reduce.cli import main; main()", *map(str, args)]


# SIGKILL at random moments, with a byte-compare of the re-run and its plain log lines:
# tests/test_fault_matrix.py::test_sigkill_at_a_random_moment_then_rerun_is_byte_identical


# -- bad input -------------------------------------------------------------------------------------
def test_bad_frames_among_good_ones(night_copy, recipe, tmp_path):
    from reduce.simulations import load_truth

    light = night_copy / "light"
    frames = sorted(light.glob("*.fits"))
    (light / "zz_empty.fits").write_bytes(b"")
    (light / "zz_corrupt.fits").write_bytes(os.urandom(5000))
    data = frames[2].read_bytes()
    frames[2].write_bytes(data[: len(data) // 2])  # truncated while being copied, and left so
    stayed_broken(light / "zz_empty.fits", frames[2])
    with fits.open(frames[5], mode="update") as hdul:  # a cloud: no stars at all
        hdul[0].data[:] = np.median(hdul[0].data)
    truth = load_truth(night_copy / "truth.json")
    t = truth["target"]
    x, y = int(round(truth["stars"]["x"][t])), int(round(truth["stars"]["y"][t]))
    with fits.open(frames[8], mode="update") as hdul:  # a saturated target
        hdul[0].data[y - 6:y + 7, x - 6:x + 7] = 65535
    out = tmp_path / "out"
    code = run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json",
                   "--target", f"{x},{y}", "--reference", "first")
    assert code == 3
    summary = json.loads((tmp_path / "s.json").read_text())
    # every file of the group has a row: the unreadable ones flagged UNREADABLE, named with the reason
    unmeasured = {u["file"]: u["reason"] for u in summary["groups"][0]["unmeasured"]}
    assert {"zz_empty.fits", "zz_corrupt.fits", frames[2].name} <= set(unmeasured)
    assert summary["unreadable"] == []  # nothing left unexplained at the night level
    table = Table.read(csv_of(out))
    flags = dict(zip(table["file"], table["flag"]))
    assert len(table) == len(frames) + 2
    assert flags[frames[5].name] & 2, "the cloudy frame is flagged NO_SOURCES"
    assert flags[frames[8].name] & 8, "the saturated target is flagged TARGET_SATURATED"
    assert all(flags[name] & 1 for name in unmeasured)
    group = summary["groups"][0]
    reasons = {f["file"]: f["reason"] for f in group["flagged"]}
    assert any(frames[5].name in f for f in reasons) and all(reasons.values())
    assert group["frames_used"] == group["frames"] - len(group["flagged"])
    good = [f for f in table["file"] if not flags[f]]
    assert len(good) >= 8 and np.all(np.isfinite(table["flux"][table["flag"] == 0]))
    assert not leftovers(out)


def test_unwritable_output_folder_fails_clearly(night_copy, recipe, tmp_path, capsys, monkeypatch):
    """An -o that cannot be written is a usage error (exit 2), said before the night is reduced."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run_cli("run", recipe, night_copy, "-o", blocker / "out", "--summary-json", tmp_path / "s.json") == 2
    said = capsys.readouterr()
    assert "cannot write to the output folder" in said.out + said.err
    assert json.loads((tmp_path / "s.json").read_text())["exit_status"] == 2

    import tempfile

    out = tmp_path / "ro"
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kw):  # a read-only folder (we run as root: chmod would not stop us)
        if dir is not None and Path(dir) == out:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert run_cli("run", recipe, night_copy, "-o", out) == 2
    said = capsys.readouterr()
    assert "Permission denied" in said.out + said.err
    assert not list(out.iterdir())


def test_disk_full_keeps_previous_outputs_and_next_run_completes(night_copy, recipe, tmp_path, capsys,
                                                                  monkeypatch):
    out = tmp_path / "out"
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    previous = products(out)
    real_fsync = os.fsync

    def full(fd):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(out)) and Path(target).name.startswith("."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    assert run_cli("run", recipe, night_copy, "-o", out, "--force", "--jobs", "1") == 1
    said = capsys.readouterr()
    assert "No space left on device" in said.out + said.err
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert products(out) == previous, "a failed write changed or removed a previous output"
    assert not leftovers(out)
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 12, "the failed group was not redone"


def test_read_only_night_keeps_lock_and_state_in_the_user_cache(night_copy, recipe, tmp_path):
    """An archive mounted read-only: nothing is written in it, re-runs are still no-ops."""
    out = tmp_path / "out"
    folders = [night_copy, *[p for p in night_copy.rglob("*") if p.is_dir()]]
    for d in folders:
        d.chmod(0o555)  # honoured by the index and state code even for root
    try:
        assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
        assert not (night_copy / ".reduce").exists()
        assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
        assert json.loads((tmp_path / "s.json").read_text())["skipped_unchanged"]
    finally:
        for d in folders:
            d.chmod(0o755)


def test_quiet_run_still_writes_info_lines_to_the_log_file(night_copy, recipe, tmp_path, capsys):
    """The README's crontab line (-q --log-file): the console stays quiet, the log file is full."""
    log = tmp_path / "reduce.log"
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "out", "-q", "--jobs", "1",
                   "--log-file", log) == 0
    logged = log.read_text()
    assert re.search(r"^\S+ INFO .*master bias", logged, flags=re.M), logged
    assert " INFO " in logged and len(logged.splitlines()) >= 5
    err = capsys.readouterr().err
    assert " INFO " not in err  # -q: the console only shows warnings and errors
