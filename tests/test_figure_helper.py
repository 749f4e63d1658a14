"""The figure helper process: same PNGs as in-process, fallback on failure, no process left behind."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from reduce.figures import helper as P
from reduce.model.image import Sources

from .lightcurve.test_ensemble import synthetic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _jobs(tmp_path, sub):
    """A light-curve and a reference job writing into ``tmp_path/sub``."""
    out = tmp_path / sub
    out.mkdir()
    fl, _ = synthetic(41, n_frames=80)
    diff = fl.autodiff()
    rng = np.random.default_rng(4)
    image = rng.normal(100, 5, (90, 120)).astype(np.float32)
    coords = np.array([[30.0, 20.0], [80.0, 60.0], [100.0, 15.0]])

    class Frame:
        data = image
        sources = Sources(coords)
        fwhm = 3.0
        aperture = {"radii": np.arange(3)}  # a dict, as the photometry block leaves it

    return [P.lightcurve_job(diff, out / "lc.png", binned_dt=0.01, title="night"),
            P.reference_job(Frame(), 0, [1, 2], out / "ref.png")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_helper_draws_the_same_pngs_as_in_process(tmp_path):
    ref_jobs = _jobs(tmp_path, "inproc")
    assert P.collect(P.submit(ref_jobs)) == [j.path for j in ref_jobs]  # no helper: drawn here
    jobs = _jobs(tmp_path, "helper")
    with P.Plotter() as plotter:
        pid = plotter.submit(os.getpid).result()
        figures = P.submit(jobs, plotter)
        assert all(f is not None for _, f in figures)
        assert P.collect(figures) == [j.path for j in jobs]
    assert pid != os.getpid() and not _alive(pid)
    for mine, theirs in zip(jobs, ref_jobs):
        data = mine.path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert data == theirs.path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "helper").iterdir()) == ["lc.png", "ref.png"]


def test_helper_serves_several_batches(tmp_path):
    with P.Plotter() as plotter:
        for sub in ("a", "b"):
            jobs = _jobs(tmp_path, sub)
            assert P.collect(P.submit(jobs, plotter)) == [j.path for j in jobs]
            assert all(j.path.read_bytes()[:8] == PNG_MAGIC for j in jobs)


def test_an_error_while_drawing_is_raised_as_it_is(tmp_path):
    jobs = _jobs(tmp_path, "x")
    bad = P.FigureJob("reference", tmp_path / "x" / "bad.png",
                      {"image": np.zeros(5), "target": 0, "comparisons": []})  # 1-D: rejected
    with P.Plotter() as plotter:
        figures = P.submit([jobs[0], bad], plotter)
        with pytest.raises(ValueError, match="2-D image"):
            P.collect(figures)
    assert jobs[0].path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="2-D image"):  # the same error in-process
        P.collect(P.submit([bad]))


def test_dead_helper_falls_back_to_in_process(tmp_path):
    with P.Plotter() as plotter:
        os.kill(plotter.submit(os.getpid).result(), 9)
        for sub in ("before", "after"):  # whether or not the pool noticed yet
            jobs = _jobs(tmp_path, sub)
            assert P.collect(P.submit(jobs, plotter)) == [j.path for j in jobs]
            assert all(j.path.read_bytes()[:8] == PNG_MAGIC for j in jobs)
            time.sleep(0.5)


def test_discard_waits_for_the_figures_being_drawn(tmp_path):
    jobs = _jobs(tmp_path, "gone")
    with P.Plotter() as plotter:
        figures = P.submit(jobs, plotter)
        P.discard(figures)
        assert all(f.done() for _, f in figures)
        written = {p.name for p in (tmp_path / "gone").iterdir()}
        time.sleep(0.5)
        assert {p.name for p in (tmp_path / "gone").iterdir()} == written  # nothing written later


def test_close_reaps_the_helper():
    plotter = P.Plotter()
    pid = plotter.submit(os.getpid).result()
    plotter.close()
    plotter.close()  # idempotent
    assert not _alive(pid)


def test_helper_exits_when_its_parent_is_killed():
    code = ("import os, sys, time\n"
            "from reduce.figures import helper as plotter\n"
            "helper = plotter.Plotter()\n"
            "print(helper.submit(os.getpid).result(), flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the figure helper outlived its killed parent"


def test_start_policy(monkeypatch):
    monkeypatch.setenv("REDUCE_PLOTTER", "0")
    assert P.start() is None
    monkeypatch.delenv("REDUCE_PLOTTER")
    import matplotlib.figure  # noqa: F401 - a warm process draws in-process: no helper

    assert P.start() is None
    monkeypatch.setenv("REDUCE_PLOTTER", "1")
    helper = P.start()
    assert helper is not None
    helper.close()


@pytest.mark.parametrize("threads", [1, 2], ids=["fork", "spawn"])
def test_a_fresh_interpreter_when_threads_exist(tmp_path, monkeypatch, threads):
    """Forked only from a single-threaded process; else spawned: the same PNGs either way."""
    monkeypatch.setattr(P.threading, "active_count", lambda: threads)
    ref_jobs = _jobs(tmp_path, "inproc")
    P.collect(P.submit(ref_jobs))
    jobs = _jobs(tmp_path, "helper")
    with P.Plotter() as plotter:
        assert plotter._pool._mp_context.get_start_method() == ("fork" if threads == 1 else "spawn")
        assert P.collect(P.submit(jobs, plotter)) == [j.path for j in jobs]
    assert [j.path.read_bytes() for j in jobs] == [j.path.read_bytes() for j in ref_jobs]
