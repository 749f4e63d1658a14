"""The figure helper process: same PNGs as in-process, fallback on failure, no process left behind."""
from __future__ import annotations

import os

import numpy as np
import pytest

from reduce import plotter as P
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


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "spawn"])
def test_helper_draws_the_same_pngs_as_in_process(tmp_path, fork):
    ref_jobs = _jobs(tmp_path, "inproc")
    for job in ref_jobs:
        P.draw(job)
    jobs = _jobs(tmp_path, "helper")
    with P.Plotter.start(fork=fork) as plotter:
        plotter.submit(jobs)
        answers = plotter.results(timeout=120)
        assert answers == {j.path: None for j in jobs}
        assert P.draw_all(jobs, plotter) == [j.path for j in jobs]  # nothing redrawn
        pid = plotter.proc.pid
    assert not _alive(pid)
    for mine, theirs in zip(jobs, ref_jobs):
        data = mine.path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert data == theirs.path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "helper").iterdir()) == ["lc.png", "ref.png"]


def test_helper_serves_several_batches(tmp_path):
    with P.Plotter.start() as plotter:
        for sub in ("a", "b"):
            jobs = _jobs(tmp_path, sub)
            plotter.submit(jobs)
            assert P.draw_all(jobs, plotter) == [j.path for j in jobs]
            assert all(j.path.read_bytes()[:8] == PNG_MAGIC for j in jobs)
        assert plotter.results() == {j.path: None for j in jobs}


def test_failed_job_is_drawn_in_process(tmp_path):
    jobs = _jobs(tmp_path, "x")
    bad = P.FigureJob("reference", tmp_path / "x" / "bad.png",
                      {"image": np.zeros(5), "target": 0, "comparisons": []})  # 1-D: rejected
    with P.Plotter.start() as plotter:
        plotter.submit([jobs[0], bad])
        answers = plotter.results(timeout=120)
    assert answers[jobs[0].path] is None
    assert "2-D image" in answers[bad.path]
    with pytest.raises(ValueError, match="2-D image"):  # the fallback reports the real error
        P.draw_all([bad], None)


def test_dead_helper_falls_back_to_in_process(tmp_path):
    jobs = _jobs(tmp_path, "dead")
    plotter = P.Plotter.start()
    try:
        plotter.proc.kill()
        plotter.proc.wait(timeout=10)
        plotter.submit(jobs)
        assert P.draw_all(jobs, plotter, timeout=10) == [j.path for j in jobs]
    finally:
        plotter.close()
    assert all(j.path.read_bytes()[:8] == PNG_MAGIC for j in jobs)


def test_discard_removes_what_the_helper_drew(tmp_path):
    jobs = _jobs(tmp_path, "gone")
    with P.Plotter.start() as plotter:
        plotter.submit(jobs)
        plotter.discard(timeout=120)
        assert not any(j.path.exists() for j in jobs)
        assert list((tmp_path / "gone").iterdir()) == []


def test_close_stops_a_helper_still_importing():
    plotter = P.Plotter.start()
    pid = plotter.proc.pid
    plotter.close()
    plotter.close()  # idempotent
    assert not _alive(pid)


def test_start_plotter_policy(monkeypatch):
    monkeypatch.setenv("REDUCE_PLOTTER", "0")
    assert P.start_plotter() is None
    monkeypatch.delenv("REDUCE_PLOTTER")
    import matplotlib.figure  # noqa: F401 - a warm process draws in-process: no helper

    assert P.start_plotter() is None
    monkeypatch.setenv("REDUCE_PLOTTER", "1")
    helper = P.start_plotter()
    assert helper is not None
    helper.close()
