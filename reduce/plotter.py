"""Figures drawn by a helper process while ``reduce run`` goes on.

Importing matplotlib costs about 0.4 s and drawing a group's two PNGs about 0.5 s, all of it on
one core while the other core sits idle during the serial phases of a run (masters, reference,
tables, provenance). A :class:`Plotter` started at the beginning of a group imports matplotlib in a
separate process meanwhile; at the end it receives the figure jobs (plain data: the differential
``Fluxes``, the reference pixels, target, comparisons), draws the two figures concurrently (itself
and a short-lived fork of itself) and writes them atomically with :func:`reduce.plots.save_figure`,
while the parent writes tables and provenance. The figures are the very same as drawn in-process.

Safety: the helper is forked when the parent has no other thread (fork is then safe), else it is a
fresh interpreter (``python -m reduce.plotter FD``). It ignores Ctrl-C (the parent stops it), dies
with its parent (``PR_SET_PDEATHSIG`` on Linux, and EOF on its pipe), never runs the parent's exit
handlers, and is always reaped by :meth:`Plotter.close`. Any failure (helper gone, error, timeout)
falls back to drawing in-process: a figure is never lost. ``REDUCE_PLOTTER=0`` disables the
helper, ``REDUCE_PLOTTER=1`` uses it even when matplotlib is already imported.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FigureJob", "Plotter", "InProcess", "draw", "draw_all", "lightcurve_job", "reference_job",
           "start_plotter"]

log = logging.getLogger("reduce.plotter")

#: seconds to wait for the helper's figures before drawing them in-process instead
DEFAULT_TIMEOUT = 300.0
_PR_SET_PDEATHSIG = 1


@dataclass
class FigureJob:
    """One figure to draw and save: ``kind`` ('lightcurve' | 'reference'), keyword arguments of the
    matching :mod:`reduce.plots` function, and the output path."""

    kind: str
    path: Path
    kwargs: dict = field(default_factory=dict)


@dataclass
class _RefImage:
    """What :func:`reduce.plots.reference_figure` reads from an Image: pixels and sources."""

    data: object
    sources: object
    fwhm: object = None
    aperture: object = None


def lightcurve_job(fluxes, path, *, binned_dt, title=None, info=None) -> FigureJob:
    """Job for :func:`reduce.plots.lightcurve_figure` (the raw Fluxes in ``meta`` are not sent)."""
    meta = {k: v for k, v in fluxes.meta.items() if k != "raw"}
    lite = fluxes._replace(meta=meta) if hasattr(fluxes, "_replace") else fluxes
    return FigureJob("lightcurve", Path(path), {"fluxes": lite, "binned_dt": binned_dt, "title": title,
                                                 "info": info})


def reference_job(image, target, comparisons, path, *, radius=None, annulus=None, title=None,
                  filename=None) -> FigureJob:
    """Job for :func:`reduce.plots.reference_figure` from an Image (only what is drawn is sent)."""
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
    with _DRAW_LOCK:
        return _draw(job)


def _draw(job: FigureJob) -> Path:
    from .plots import lightcurve_figure, reference_figure, save_figure

    kw = dict(job.kwargs)
    if job.kind == "lightcurve":
        fig = lightcurve_figure(kw.pop("fluxes"), **kw)
    elif job.kind == "reference":
        fig = reference_figure(kw.pop("image"), kw.pop("target"), kw.pop("comparisons"), **kw)
    else:
        raise ValueError(f"unknown figure kind {job.kind!r}")
    return save_figure(fig, job.path)


def draw_all(jobs, plotter: "Plotter | None" = None, *, timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Draw ``jobs`` (through ``plotter`` when given and alive); the paths, in job order.

    A job the helper could not draw is drawn here, so every figure is written or an error raised.
    """
    jobs = list(jobs)
    helper = plotter is not None and not isinstance(plotter, InProcess)
    answers = plotter.results(timeout=timeout) if helper else {}
    for job in jobs:
        failed = answers.get(job.path, "not submitted")
        if failed is not None:
            if helper:
                log.info("figure %s drawn in-process (helper: %s)", job.path.name, failed)
            draw(job)
    return [j.path for j in jobs]


# -- the helper process ---------------------------------------------------------------------------
def _warm_up() -> None:
    """Import what drawing needs (the whole point: this runs while the parent works)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.patches  # noqa: F401
    import matplotlib.patheffects  # noqa: F401
    from astropy.visualization import ZScaleInterval  # noqa: F401

    from . import lightcurve, plots  # noqa: F401


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans after a SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _quiet_signals() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides, then stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _draw_pair(jobs: list) -> dict:
    """Draw ``jobs``: the first in a fork of this process when there are several, concurrently."""
    results: dict = {}
    child = None
    if len(jobs) > 1:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # grandchild: one figure, its status on the pipe, then out without cleanup
            code = 0
            try:
                os.close(r)
                _die_with_parent()
                try:
                    draw(jobs[0])
                    msg = b""
                except BaseException as e:  # noqa: BLE001 - reported to the parent, drawn again there
                    msg = _error(e).encode("utf-8", "replace") or b"error"
                os.write(w, msg[:4000])
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        child = (pid, r, jobs[0].path)
        jobs = jobs[1:]
    for job in jobs:
        try:
            draw(job)
            results[job.path] = None
        except Exception as e:  # noqa: BLE001 - the parent draws it again
            results[job.path] = _error(e)
    if child is not None:
        pid, r, path = child
        chunks = []
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        ok = os.waitstatus_to_exitcode(status) == 0
        msg = b"".join(chunks).decode("utf-8", "replace")
        results[path] = None if ok and not msg else (msg or f"helper exited with status {status}")
    return results


def serve(conn) -> int:
    """The helper's main loop: warm up, then draw each batch of jobs received on ``conn``."""
    _quiet_signals()
    _die_with_parent()
    try:
        _warm_up()
        conn.send(("ready", None))
    except Exception as e:  # noqa: BLE001 - the parent will draw in-process
        try:
            conn.send(("broken", _error(e)))
        except OSError:
            pass
        return 1
    while True:
        try:
            jobs = conn.recv()
        except (EOFError, OSError):
            return 0
        if jobs is None:
            return 0
        try:
            results = _draw_pair(list(jobs))
        except Exception as e:  # noqa: BLE001
            results = {j.path: _error(e) for j in jobs}
        try:
            conn.send(("done", results))
        except OSError:
            return 1


def _forked_child(conn, other) -> None:
    """Body of the forked helper: never returns and never runs the parent's exit handlers."""
    code = 1
    try:
        other.close()
        code = serve(conn)
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


class _ForkedProcess:
    """Minimal Popen-like handle on a forked pid (poll, wait, kill)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"process {self.pid} still running")
            time.sleep(0.005)
        return self.returncode

    def kill(self):
        if self.poll() is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass


class Plotter:
    """A helper process drawing figure jobs; use :func:`start_plotter` to get one.

    ``submit(jobs)`` sends a batch, ``results()`` waits for it ({path: None or error}),
    ``close()`` stops and reaps the helper (idempotent; also a context manager).
    """

    def __init__(self, proc, conn, how: str):
        self.proc, self.conn, self.how = proc, conn, how
        self._jobs: list = []
        self._answers: dict = {}
        self._pending = False
        self._broken: str | None = None

    @classmethod
    def start(cls, *, fork: bool | None = None) -> "Plotter":
        """Start the helper: forked when ``fork`` (default: when this process has one thread)."""
        import threading
        from multiprocessing import Pipe

        if fork is None:
            fork = threading.active_count() == 1 and hasattr(os, "fork") \
                and sys.platform.startswith("linux")
        ours, theirs = Pipe(duplex=True)
        if fork:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, OSError, ValueError):
                    pass
            pid = os.fork()
            if pid == 0:
                _forked_child(theirs, ours)
            theirs.close()
            return cls(_ForkedProcess(pid), ours, "fork")
        import subprocess

        fd = theirs.fileno()
        proc = subprocess.Popen([sys.executable, "-m", "reduce.plotter", str(fd)], pass_fds=(fd,),
                                stdin=subprocess.DEVNULL, close_fds=True)
        theirs.close()
        return cls(proc, ours, "spawn")

    def submit(self, jobs) -> None:
        """Send a batch of :class:`FigureJob` (the previous batch must have been collected)."""
        if self._pending:
            self.results()
        self._jobs = list(jobs)
        self._answers = {}
        self._pending = True
        if self._broken is None:
            try:
                self.conn.send(self._jobs)
            except (OSError, ValueError) as e:
                self._broken = f"cannot send the jobs: {_error(e)}"

    def results(self, *, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """{path: None (written) or why not} for the last batch; waits for it, never raises."""
        if self._pending:
            self._answers = self._collect(timeout)
            self._pending = False
        return dict(self._answers)

    def _collect(self, timeout: float) -> dict:
        paths = [j.path for j in self._jobs]
        deadline = time.monotonic() + timeout
        while self._broken is None:
            try:
                if not self.conn.poll(0.05):
                    if self.proc.poll() is not None:
                        self._broken = f"helper exited ({self.proc.returncode})"
                    elif time.monotonic() > deadline:
                        self._broken = f"no answer in {timeout:g} s"
                        self.close()
                    continue
                kind, payload = self.conn.recv()
            except (EOFError, OSError, ValueError) as e:
                self._broken = f"helper gone ({_error(e)})"
                break
            if kind == "broken":
                self._broken = str(payload)
            elif kind == "done":
                return {p: payload.get(p, "not drawn") for p in paths}
        return {p: self._broken for p in paths}

    def discard(self, *, timeout: float = 30.0) -> None:
        """Remove the figures drawn for the current batch (its group failed): the helper is let
        finish the batch (then serves the next one) or, when it does not answer, stopped."""
        answers = self.results(timeout=timeout)
        for job in self._jobs:
            if answers.get(job.path) is None:
                try:
                    job.path.unlink()
                except OSError:
                    pass
        self._jobs = []

    def close(self) -> None:
        """Stop the helper and reap it (and so leave no process behind)."""
        self._broken = self._broken or "helper closed"
        if self.conn is not None:
            try:
                if self.proc.poll() is None:
                    self.conn.send(None)
            except (OSError, ValueError):
                pass
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
        try:
            self.proc.wait(timeout=2.0)
        except Exception:  # noqa: BLE001 - TimeoutError / subprocess.TimeoutExpired
            self.proc.kill()
            try:
                self.proc.wait(timeout=2.0)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcess:
    """A Plotter stand-in that lets the group's own thread draw its figures (in this process):
    for groups reduced at once in threads, which cannot share one helper's batch."""

    def submit(self, jobs) -> None:
        """Nothing to send: :func:`draw_all` draws the jobs here."""

    def results(self, *, timeout: float = DEFAULT_TIMEOUT) -> dict:
        return {}

    def discard(self, *, timeout: float = 30.0) -> None:
        """Nothing was drawn ahead of the outputs, so nothing to remove."""

    def close(self) -> None:
        pass


_STARTED = False


def start_plotter() -> Plotter | None:
    """A helper when it pays: for the first run of a process (the ``reduce`` command runs once).

    ``None`` (figures drawn in-process) when matplotlib is already imported here or a helper was
    already started by this process (a long-lived process, e.g. a test session, then imports
    matplotlib once instead of once per run), when ``REDUCE_PLOTTER=0``, or when the helper
    cannot be started. ``REDUCE_PLOTTER=1`` always starts one.
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
        return Plotter.start()
    except (OSError, ValueError) as e:
        log.debug("figure helper not started (%s); figures are drawn in-process", e)
        return None


def _main(argv: list[str]) -> int:
    """``python -m reduce.plotter FD``: serve on the connection inherited as file descriptor FD."""
    from multiprocessing.connection import Connection

    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m reduce.plotter FD (started by reduce run)", file=sys.stderr)
        return 2
    return serve(Connection(int(argv[0])))


if __name__ == "__main__":
    code = _main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
