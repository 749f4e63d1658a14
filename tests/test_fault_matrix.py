"""The fault matrix of `reduce run` / `reduce scan`: what a hostile new user or a bad night can do,
and what must happen (issue 11). Each case reproduces one fault on a small simulated night (or a
few real frames) and asserts the promise: a clear message and the right exit status, never a
traceback; the previous outputs intact as a whole set; re-runs that settle to "nothing to do".

Cases already covered in tests/cli/test_cron.py are not repeated here (concurrent runs and stale
locks, a read-only night, an unwritable output folder, a full disk on the tables, an unreachable
scheduler): the matrix in the module's cases list says where each one lives.
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from tests.cli.test_cron import _cli, check_readable, leftovers, products, recipe, run_cli  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "recipes" / "default.yaml"
REAL = ROOT.parent.parent / "shared" / "data" / "real"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real")
TABLES = (".csv", ".fits")


def tables(out: Path) -> dict[str, bytes]:
    return {k: v for k, v in products(out).items() if k.endswith(TABLES)}


def said(capsys) -> str:
    c = capsys.readouterr()
    return c.out + c.err


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "unexpected error" not in text, text[-2000:]


def set_object(path: Path, value: str) -> None:
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["OBJECT"] = value


def lights(night: Path) -> list[Path]:
    return sorted((night / "light").glob("*.fits"))


@pytest.fixture
def plot_recipe(tmp_path) -> Path:
    """The default recipe, figures included (the helper process draws them)."""
    path = tmp_path / "plot.yaml"
    path.write_text(DEFAULT.read_text())
    return path


# -- 1. output names: one per group, stable ----------------------------------------------------
def test_sanitised_equal_names_are_one_group_and_other_sizes_get_their_own_name(night_copy, recipe, tmp_path,
                                                                               capsys):
    frames = lights(night_copy)
    for i, f in enumerate(frames[:7]):
        set_object(f, "TOI 700" if i % 2 else "TOI/700")
    for f in frames[7:]:  # a few frames cropped to a CCD window
        with fits.open(f) as hdul:
            data, header = hdul[0].data[20:180, 20:180].copy(), hdul[0].header.copy()
        header["OBJECT"] = "TOI 700"
        fits.writeto(f, data, header, overwrite=True)
    out = tmp_path / "out"
    code = run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json")
    assert code in (0, 3), said(capsys)
    summary = json.loads((tmp_path / "s.json").read_text())
    names = sorted(g["group"] for g in summary["groups"])
    # the summary names a group as its files are named (one sanitiser)
    assert names == ["2024-03-15_SIM-60_TOI_700_V", "2024-03-15_SIM-60_TOI_700_V_160x160"], names
    rows = {p.name: len(Table.read(p)) for p in out.glob("*.csv")}
    assert rows == {"2024-03-15_SIM-60_TOI_700_V.csv": 7, "2024-03-15_SIM-60_TOI_700_V_160x160.csv": 5}, rows
    # the same names on the next run, which has nothing to do
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    assert len(json.loads((tmp_path / "s.json").read_text())["skipped_unchanged"]) == 2


# -- 3. a late failure keeps the whole previous set ---------------------------------------------
def test_late_group_failure_keeps_the_previous_figures_and_tables(night_copy, plot_recipe, tmp_path, capsys,
                                                                 monkeypatch):
    out = tmp_path / "out"
    assert run_cli("run", plot_recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert any(n.endswith(".png") for n in before) and any(n.endswith(".csv") for n in before)
    import reduce.io.provenance as provenance
    from reduce.io.atomic import OutputError

    def disk_full(*args, **kwargs):  # the last file of the set cannot be written
        raise OutputError("cannot write the provenance: No space left on device")

    monkeypatch.setattr(provenance, "write_provenance", disk_full)
    monkeypatch.setenv("REDUCE_PLOTTER", "1")  # figures drawn ahead by the helper, then discarded
    assert run_cli("run", plot_recipe, night_copy, "-o", out, "--force", "--jobs", "1") == 1
    text = said(capsys)
    assert "No space left on device" in text
    no_traceback(text)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "the previous set was changed"


def test_full_disk_while_drawing_a_figure_in_process_is_a_clear_error(night_copy, plot_recipe, tmp_path,
                                                                     capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_cli("run", plot_recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import matplotlib.figure

    def full(self, fh, **kwargs):
        fh.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    monkeypatch.setenv("REDUCE_PLOTTER", "0")
    assert run_cli("run", plot_recipe, night_copy, "-o", out, "--force", "--jobs", "1") == 1
    text = said(capsys)
    assert "No space left on device" in text
    no_traceback(text)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- 4. symbolic links in .reduce/ are never followed -----------------------------------------------
def test_symlinked_run_lock_is_refused_and_its_target_untouched(night_copy, recipe, tmp_path, capsys):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me\n")
    (night_copy / ".reduce").mkdir()
    (night_copy / ".reduce" / "run.lock").symlink_to(victim)
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "out") == 1
    text = said(capsys)
    assert "symbolic link" in text and "run.lock" in text
    no_traceback(text)
    assert victim.read_text() == "do not truncate me\n"


def test_dangling_symlinked_index_creates_no_database_anywhere(night_copy, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere" / "made-by-reduce.sqlite"
    elsewhere.parent.mkdir()
    (night_copy / ".reduce").mkdir()
    (night_copy / ".reduce" / "index.sqlite").symlink_to(elsewhere)
    assert run_cli("scan", night_copy) == 1
    text = said(capsys)
    assert "symbolic link" in text
    no_traceback(text)
    assert not elsewhere.exists()


# -- 5. YAML aliases and size ---------------------------------------------------------------------
def test_recipe_alias_bomb_and_huge_recipe_are_refused_at_once(tmp_path, capsys):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 9^9 strings once expanded, 400 bytes
    assert len(bomb.read_bytes()) < 500
    t0 = time.perf_counter()
    assert run_cli("validate", bomb) == 2
    assert time.perf_counter() - t0 < 5
    text = said(capsys)
    assert "YAML aliases" in text
    no_traceback(text)
    huge = tmp_path / "huge.yaml"
    huge.write_text("x:\n" + "  - 1\n" * 2_000_000)  # 12 MB
    assert run_cli("validate", huge) == 2
    text = said(capsys)
    assert "may be at most" in text
    no_traceback(text)
    # anchors within reason still work
    ok = tmp_path / "ok.yaml"
    ok.write_text(DEFAULT.read_text() + "\nx-shared: &s {a: 1}\nx-use: *s\n")
    run_cli("validate", ok)
    assert "YAML aliases" not in said(capsys)


# -- 6. messages, not tracebacks ----------------------------------------------------------------------
def test_bad_options_fail_before_any_work_with_a_message(night_copy, recipe, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("run", recipe, night_copy, "-o", out, "--depth", "-1") == 2
    assert "--depth" in said(capsys)
    assert run_cli("run", recipe, night_copy, "-o", out, "--log-file", tmp_path / "missing" / "r.log") == 2
    text = said(capsys)
    assert "--log-file" in text and "does not exist" in text
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)  # refused by its mode bits, even to root
    try:
        assert run_cli("run", recipe, night_copy, "-o", out, "--summary-json", ro / "s.json") == 2
        assert "not writable" in said(capsys)
        assert run_cli("run", recipe, night_copy, "-o", out, "--log-file", ro / "r.log") == 2
        assert "not writable" in said(capsys)
    finally:
        ro.chmod(0o755)
    assert not out.exists(), "the reduction started before the options were checked"
    assert not (night_copy / ".reduce").exists()


def test_full_disk_on_the_lock_write_is_a_message(night_copy, recipe, capsys, monkeypatch):
    from reduce.io import lock

    def full(fd, info):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock, "_write", full)
    assert run_cli("run", recipe, night_copy) == 1
    text = said(capsys)
    assert "cannot write the run lock" in text and "No space left on device" in text
    no_traceback(text)


def test_scan_runtime_failure_exits_1_without_usage(night_copy, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_cli("scan", night_copy, "--index", blocker / "index.sqlite") == 1
    text = said(capsys)
    assert "cannot scan" in text and "Usage:" not in text
    no_traceback(text)


# -- 7. escape sequences in headers and names ---------------------------------------------------------
def _poison_object(path: Path) -> None:
    """OBJECT holds ESC, BEL and NUL (astropy refuses to write them: patch the bytes)."""
    raw = bytearray(path.read_bytes())
    i = raw.find(b"OBJECT  = 'SIM-1   '")
    assert i >= 0
    raw[i + 11:i + 19] = b"\x1b]0;X\x07\x00Z"
    path.write_bytes(bytes(raw))


def test_control_characters_never_reach_the_terminal(night_copy, recipe, tmp_path, capsys):
    for f in lights(night_copy)[:3]:
        _poison_object(f)
    evil = night_copy / "light" / "evil\x1b[2J\x07;rm -rf $HOME`id`.fits"
    shutil.copy(lights(night_copy)[4], evil)
    log = tmp_path / "run.log"
    run_cli("run", recipe, night_copy, "-o", tmp_path / "out", "--log-file", log)  # (sets up logging)
    text = said(capsys) + log.read_text()
    run_cli("scan", night_copy)
    text += said(capsys)
    run_cli("scan", night_copy, "--files")
    text += said(capsys)
    for raw in ("\x1b", "\x07", "\x00"):
        assert raw not in text, f"{raw!r} reached the terminal"
    assert "\\x1b" in text and "\\x07" in text
    no_traceback(text)


# -- 8. Dask: a dead worker, a dead scheduler -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_cluster():
    """A scheduler and one worker in their own processes (so they can be killed)."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = Path(sys.executable).parent / "dask"
    if not dask.exists():
        pytest.skip("the dask command is not installed")
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sched = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], **quiet)
    worker = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard"], **quiet)
    yield address, sched, worker
    for p in (worker, sched):
        p.kill()
        p.wait()


def _killing_executor(address, kill):
    from reduce.core.executors import DaskExecutor

    class Killing(DaskExecutor):
        """Kills something after the first frames of the first group have come back."""

        fired = False

        def map_frames(self, blocks, items, **kw):
            for k, pair in enumerate(super().map_frames(blocks, items, **kw)):
                if k == 1 and not Killing.fired:
                    Killing.fired = True
                    kill(self)
                yield pair

    ex = Killing(address)
    ex.chunk_size, ex.timeout = 2, 10.0
    return ex


def _archive(small_night, tmp_path, names="ab") -> list[Path]:
    for name in names:
        shutil.copytree(small_night, tmp_path / "archive" / name, ignore=shutil.ignore_patterns(".reduce", "reduced"))
    return [tmp_path / "archive" / n for n in names]


def test_dask_worker_killed_mid_run_its_frames_are_resubmitted(own_cluster, small_night, recipe, tmp_path):
    from reduce.config import load_config
    from reduce.recipe import load_recipe
    from reduce.run import run_nights

    address, _, _ = own_cluster

    def kill_workers(ex):
        for pid in ex.client.run(os.getpid).values():
            os.kill(pid, signal.SIGKILL)

    nights = _archive(small_night, tmp_path, "a")
    spec, config = load_recipe(recipe), load_config(None)
    assert run_nights(nights, spec, config=config, outdir=tmp_path / "ref", show_progress=False).exit_code == 0
    # the dask worker command has a nanny: the killed worker process is started again
    with _killing_executor(address, kill_workers) as ex:
        report = run_nights(nights, spec, config=config, outdir=tmp_path / "out", show_progress=False,
                            executor=ex)
    assert [g.status for g in report.groups] == ["done"], [g.message for g in report.groups]
    assert tables(tmp_path / "out") == tables(tmp_path / "ref")


def test_dask_scheduler_killed_mid_run_is_one_error_and_the_next_run_resumes(own_cluster, small_night, recipe,
                                                                             tmp_path, capsys):
    from reduce.config import load_config
    from reduce.model.errors import ClusterUnavailable
    from reduce.recipe import load_recipe
    from reduce.run import run_nights

    address, sched, _ = own_cluster
    nights = _archive(small_night, tmp_path, "abc")
    spec, config = load_recipe(recipe), load_config(None)
    with _killing_executor(address, lambda ex: sched.kill()) as ex:
        with pytest.raises(ClusterUnavailable) as info:
            run_nights(nights, spec, config=config, outdir=tmp_path / "out", show_progress=False, executor=ex)
    assert "unavailable" in str(info.value) and "run again" in str(info.value)
    for n in nights:  # no night keeps its lock
        from reduce.io.lock import NightLock, lock_path_for

        with NightLock(lock_path_for(n)):
            pass
    report = run_nights(nights, spec, config=config, outdir=tmp_path / "out", show_progress=False)
    assert report.exit_code == 0 and {g.status for g in report.groups} <= {"done", "unchanged"}


# -- 9. resumability and locking -------------------------------------------------------------------------
def test_kill_after_the_first_group_of_a_night_redoes_only_the_others(night_copy, recipe, tmp_path):
    for f in lights(night_copy)[6:]:  # a second target the same night: two groups
        set_object(f, "SIM-2")
    out = tmp_path / "out"
    env = {**os.environ, "REDUCE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(_cli("run", recipe, night_copy, "-o", out, "--jobs", "1"),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stderr:
        if "SIM-2_V: reducing" in line:  # the first group is finished: kill during the second
            break
    proc.kill()
    proc.wait()
    assert run_cli("run", recipe, night_copy, "-o", out, "-q", "--summary-json", tmp_path / "s.json") == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["skipped_unchanged"] == ["2024-03-15_SIM-60_SIM-1_V"], "a finished group was redone"
    assert summary["frames"] == 6


def test_the_lock_is_held_from_planning_through_reducing(night_copy, recipe, monkeypatch):
    import reduce.run.nights as runner
    from reduce.config import load_config
    from reduce.io.lock import LockedError, NightLock, lock_path_for

    real = runner._reduce_all
    tried = []

    def between(*args, **kwargs):  # a second run starting after the planning of the first
        with pytest.raises(LockedError):
            NightLock(lock_path_for(night_copy)).acquire()
        tried.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_reduce_all", between)
    report = runner.run_nights([night_copy], runner.RecipeSource(recipe), config=load_config(None),
                               show_progress=False)
    assert tried and report.exit_code == 0


def test_output_folder_that_is_the_night_is_a_usage_error(night_copy, recipe, capsys):
    assert run_cli("run", recipe, night_copy, "-o", night_copy) == 2
    text = said(capsys)
    assert "output folder" in text and "no light frames" not in text
    assert run_cli("run", recipe, night_copy, "-o", night_copy.parent) == 2


def test_read_only_night_gets_no_reduced_folder_even_as_root(night_copy, recipe, capsys, tmp_path,
                                                             monkeypatch):
    """A read-only night (an archive) reduces without -o: the outputs go to ./<night>_reduced in the
    current folder, the log says so, and nothing is created in the night, even by root."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    night_copy.chmod(0o555)
    try:
        assert run_cli("run", recipe, night_copy) == 0
        text = said(capsys)
        out = work / f"{night_copy.name}_reduced"
        assert "read-only" in text and str(out) in text and "-o" in text
        no_traceback(text)
        assert not (night_copy / "reduced").exists()
        assert any(out.glob("*.csv"))
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)  # and when the current folder is read-only too: a clear error, the fix
        monkeypatch.chdir(locked)
        assert run_cli("run", recipe, night_copy, "--force") == 1
        text = said(capsys)
        assert "read-only" in text and "-o" in text
        no_traceback(text)
    finally:
        night_copy.chmod(0o755)


# -- 10. numpy warnings -----------------------------------------------------------------------------------
def test_real_night_runs_without_numpy_warnings(tmp_path, recipe, capsys):
    import warnings

    frames = sorted((REAL / "exotic_hatp32").glob("*.FITS"))[:8]
    if len(frames) < 8:
        pytest.skip(f"real frames not available at {REAL / 'exotic_hatp32'}")
    night = tmp_path / "hatp32"
    night.mkdir()
    for f in frames:
        (night / f.name).symlink_to(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the target given: without a WCS, auto would measure a guess (exit 3)
        assert run_cli("run", recipe, night, "-o", tmp_path / "out", "-q", "--jobs", "1",
                       "--target", "423.2,286.0") == 0
    numpy = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numpy, numpy


@pytest.mark.parametrize("case", ["constant star", "infinite flux", "zero error"])
def test_comparison_weights_without_divide_by_zero(case):
    import warnings

    from reduce.lightcurve.ensemble import weights_broeg

    rng = np.random.default_rng(1)
    flux = 1000 + rng.normal(0, 5, (1, 6, 30))
    error = None
    if case == "constant star":
        flux[0, 2] = 1000.0
        flux[0, [0, 1, 4, 5]] = 700.0
    elif case == "infinite flux":
        flux[0, 3] = np.inf
    else:
        error = np.full_like(flux, 5.0)
        error[0, 4] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w, _ = weights_broeg(flux, error, comps=np.ones((1, 6), bool))
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)


# -- already survived: SIGKILL at random moments, byte-compare of the re-run -------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_a_random_moment_then_rerun_is_byte_identical(seed, night_copy, plot_recipe, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", plot_recipe, night_copy, "-o", out, "-q", "--jobs", "1") == 0
    previous = tables(out)
    env = {k: v for k, v in os.environ.items() if k != "REDUCE_NO_PROGRESS"}  # a real non-TTY run
    proc = subprocess.Popen(_cli("run", plot_recipe, night_copy, "-o", out, "--force", "--jobs", "2"),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    for line in proc.stderr:
        if "reducing" in line:
            break
    time.sleep(random.Random(seed).uniform(0.0, 2.0))  # frames, tables, figures or already done
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # its worker processes and figure helper notice and exit too
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("worker processes outlived the killed run")
    check_readable(out)
    assert tables(out) == previous, "a table is neither the complete old nor the complete new one"
    if seed == 1:  # the re-run as cron runs it: plain timestamped lines, no bars (from test_cron)
        log_file = tmp_path / "run.log"
        r = subprocess.run(_cli("run", plot_recipe, night_copy, "-o", out, "--log-file", log_file),
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")
        assert lines and all(stamp.match(ln) for ln in lines), lines[:5]
        assert "\x1b[" not in r.stderr and "━" not in r.stderr
        assert stamp.match(log_file.read_text())
    else:
        assert run_cli("run", plot_recipe, night_copy, "-o", out, "-q") == 0
    assert not leftovers(out), "temporary files were left behind"
    check_readable(out)
    assert tables(out) == previous, "the re-run's tables differ from an uninterrupted run"
