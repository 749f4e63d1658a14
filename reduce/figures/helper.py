"""Figures drawn by a helper process while ``reduce run`` goes on (the same PNGs as in-process).

Importing matplotlib costs about 0.4 s and drawing a group's two PNGs about 0.5 s, on one core.
:func:`start` forks one worker (a ``concurrent.futures`` process pool of one) at the beginning of
a run: it imports matplotlib while this process builds masters and measures frames, then draws
the figure jobs (plain data) handed to it by :func:`submit` while this process writes tables and
provenance. Figures are written atomically into the group's staging folder by
:func:`reduce.figures.plots.save_figure`.

The worker ignores Ctrl-C and exits with its parent (:func:`reduce.core.executors.worker_init`);
``close`` reaps it. A worker that died is replaced by drawing in-process: no figure is lost.
``REDUCE_PLOTTER=0`` disables the helper, ``REDUCE_PLOTTER=1`` starts it even in a process that
already imported matplotlib.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FigureJob", "Plotter", "start", "submit", "collect", "discard", "draw", "lightcurve_job",
           "reference_job"]

log = logging.getLogger("reduce.figures.helper")


@dataclass
class FigureJob:
    """One figure to draw and save: ``kind`` ('lightcurve' | 'reference' | 'comparisons'), keyword arguments of the
    matching :mod:`reduce.figures.plots` function, and the output path."""

    kind: str
    path: Path
    kwargs: dict = field(default_factory=dict)


@dataclass
class _RefImage:
    """What :func:`reduce.figures.plots.reference_figure` reads from an Image: pixels and sources."""

    data: object
    sources: object
    fwhm: object = None
    aperture: object = None


def lightcurve_job(fluxes, path, *, binned_dt, title=None, info=None) -> FigureJob:
    """Job for :func:`reduce.figures.plots.lightcurve_figure` (the raw Fluxes in ``meta`` are not sent)."""
    meta = {k: v for k, v in fluxes.meta.items() if k != "raw"}
    lite = fluxes._replace(meta=meta) if hasattr(fluxes, "_replace") else fluxes
    return FigureJob("lightcurve", Path(path), {"fluxes": lite, "binned_dt": binned_dt, "title": title,
                                                 "info": info})


def reference_job(image, target, comparisons, path, *, radius=None, annulus=None, title=None,
                  filename=None) -> FigureJob:
    """Job for :func:`reduce.figures.plots.reference_figure` from an Image (only what is drawn is sent)."""
    aperture = getattr(image, "aperture", None)
    lite = _RefImage(data=getattr(image, "data", image), sources=getattr(image, "sources", None),
                     fwhm=getattr(image, "fwhm", None),
                     aperture=aperture if isinstance(aperture, (int, float)) else None)
    return FigureJob("reference", Path(path), {"image": lite, "target": target,
                                                "comparisons": list(comparisons), "radius": radius,
                                                "annulus": annulus, "title": title, "filename": filename})


# matplotlib's text and font caches are shared: figures drawn in this process (by the groups a
# run reduces at once, one thread each) are drawn one at a time
_DRAW_LOCK = threading.Lock()


def draw(job: FigureJob) -> Path:
    """Build and save one figure in this process; returns its path."""
    from .plots import lightcurve_figure, reference_figure, save_figure

    with _DRAW_LOCK:
        kw = dict(job.kwargs)
        if job.kind == "lightcurve":
            fig = lightcurve_figure(kw.pop("fluxes"), **kw)
        elif job.kind == "reference":
            fig = reference_figure(kw.pop("image"), kw.pop("target"), kw.pop("comparisons"), **kw)
        elif job.kind == "comparisons":
            from .comparisons import comparisons_figure

            fig = comparisons_figure(kw.pop("series"), **kw)
        else:
            raise ValueError(f"unknown figure kind {job.kind!r}")
        return save_figure(fig, job.path)


def _warm_up() -> None:
    """Import what drawing needs (the whole point: this runs while the parent works)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.patches  # noqa: F401
    import matplotlib.patheffects  # noqa: F401
    from astropy.visualization import ZScaleInterval  # noqa: F401

    from .. import lightcurve  # noqa: F401
    from . import plots  # noqa: F401

    # what is alive now (modules, fonts) lives as long as the helper: frozen, the collections
    # triggered by a figure's thousands of artists no longer walk it (a full one cost ~0.1 s)
    gc.freeze()


class Plotter:
    """One worker process drawing figures: ``submit(fn, *args)`` returns a
    ``concurrent.futures.Future``; ``close()`` waits for it and reaps it (also a context manager).

    The worker is forked when this process has no other thread (fork is then safe, and shares the
    modules already imported), else it is a fresh interpreter.
    """

    def __init__(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from ..core.executors import worker_init

        how = "fork" if threading.active_count() == 1 else "spawn"
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(how),
                                         initializer=worker_init, initargs=(os.getpid(),))
        self._pool.submit(_warm_up)  # starts the worker now

    def submit(self, fn, *args):
        """Run ``fn(*args)`` in the worker; its future."""
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop the worker once it is done (idempotent)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_STARTED = False


def start() -> Plotter | None:
    """A helper when it pays: for the first run of a process (the ``reduce`` command runs once).

    ``None`` (figures drawn in-process) when matplotlib is already imported here or a helper was
    already started by this process (a long-lived process, e.g. a test session, then imports
    matplotlib once instead of once per run), when ``REDUCE_PLOTTER=0``, or when the helper cannot
    be started. ``REDUCE_PLOTTER=1`` always starts one.
    """
    global _STARTED
    setting = os.environ.get("REDUCE_PLOTTER", "").strip().lower()
    if setting in ("0", "no", "false", "off"):
        return None
    forced = setting in ("1", "yes", "true", "on")
    if not forced and (_STARTED or "matplotlib.figure" in sys.modules):
        return None
    try:
        _STARTED = True
        return Plotter()
    except OSError as e:
        log.debug("figure helper not started (%s); figures are drawn in-process", e)
        return None


def submit(jobs, plotter: Plotter | None = None) -> list[tuple]:
    """Hand ``jobs`` to ``plotter`` now, as one batch drawn concurrently (see
    :func:`_draw_concurrently`); pairs (job, future of the batch) for :func:`collect` (future None:
    drawn in-process by collect, as when the helper died)."""
    from concurrent.futures.process import BrokenProcessPool

    jobs = list(jobs)
    future = None
    if plotter is not None and jobs:
        try:
            future = plotter.submit(_draw_concurrently, jobs)
        except BrokenProcessPool:
            future = None
    return [(job, future) for job in jobs]


def _draw_concurrently(jobs: list) -> list[Path]:
    """In the helper: the first figure drawn in a fork of it (warm: matplotlib is imported) while
    it draws the others, so a group's figures take the time of the slowest, not of all."""
    if len(jobs) < 2:
        return [draw(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..core.executors import worker_init

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=worker_init,
                             initargs=(os.getpid(),)) as pool:
        first = pool.submit(draw, jobs[0])
        rest = [draw(job) for job in jobs[1:]]
        return [first.result(), *rest]


def collect(figures) -> list[Path]:
    """The figures' paths once written, in order; drawn here when no helper drew them or it died
    (an error while drawing is raised as it is)."""
    from concurrent.futures.process import BrokenProcessPool

    batches: dict[int, list] = {}
    paths = []
    for job, future in figures:
        if future is None:
            paths.append(draw(job))
            continue
        try:
            if id(future) not in batches:
                batches[id(future)] = list(future.result())
            paths.append(batches[id(future)].pop(0))
        except BrokenProcessPool as e:
            log.info("figure %s drawn in-process (helper: %s)", job.path.name, e)
            paths.append(draw(job))
    return paths


def discard(figures) -> None:
    """The group failed: cancel its figures not yet begun and wait for the ones being drawn, so
    that nothing is written into its staging folder once that is removed."""
    from concurrent.futures import wait

    futures = list({id(f): f for _, f in figures if f is not None}.values())
    for f in futures:
        f.cancel()
    wait(futures)
