"""How a run reduces its groups: one after the other, or several at once on a Dask cluster.

Local executors reduce one group at a time: its frames already keep every core busy. On a cluster
the serial part of a group (masters, reference, differential photometry, outputs) runs in this
process while the workers wait, so for an executor with ``groups_at_once > 1`` the run keeps that
many groups of any of its nights in flight, each in its own thread: the cluster computes one
group's frames while this process builds the next group's masters and writes the previous one's
outputs. Results, outputs and the report are the same as one group at a time.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..console import group_context

__all__ = ["GroupScheduler", "Tracked"]


class Tracked:
    """An executor wrapper advancing the run's single progress display per collected frame, and
    timing the frame phase of one group (the part the executor parallelises)."""

    def __init__(self, inner, bar, lock: threading.Lock):
        self.inner, self.bar, self.lock = inner, bar, lock
        self.seconds = 0.0

    def map_frames(self, blocks, items, **kwargs):
        t0 = time.perf_counter()
        try:
            for index, image in self.inner.map_frames(blocks, items, **kwargs):
                with self.lock:  # the display is shared by the groups running at once
                    self.bar.advance()
                yield index, image
        finally:
            self.seconds += time.perf_counter() - t0


class _Done:
    """A result computed at once, with the interface of a future."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class GroupScheduler:
    """Runs ``reduce_group`` for each group and each night's pass, serially or ``at_once`` at a time.

    ``reduce_group(plan, spec, *, config, show_progress, fail_fast, executor, plotter)`` is the
    runner's function; ``plotter`` the run's figure helper, used when groups run one at a time
    (several groups at once draw their figures in their own thread instead).
    """

    def __init__(self, reduce_group: Callable, executor, bar, plotter=None, *, at_once: int = 1):
        self.reduce_group, self.executor, self.bar, self.plotter = reduce_group, executor, bar, plotter
        self.at_once = max(1, int(at_once))
        self._bar_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.at_once, thread_name_prefix="reduce-group") \
            if self.at_once > 1 else None
        self._stopped = False

    def submit(self, plan, spec, *, config, fail_fast):
        """Start reducing ``plan``; returns an object whose ``result()`` is its GroupResult."""
        if self._pool is None:
            return _Done(self._reduce(plan, spec, config, fail_fast, self.plotter))
        return self._pool.submit(self._reduce, plan, spec, config, fail_fast, None)

    def _reduce(self, plan, spec, config, fail_fast, plotter):
        from .report import GroupResult

        if self._stopped:
            return GroupResult(plan=plan, status="failed", message="not started: the run was stopped",
                               n_frames=len(plan.frames))
        tracked = Tracked(self.executor, self.bar, self._bar_lock)
        with group_context(plan.name):  # every line of the group's reduction names it
            result = self.reduce_group(plan, spec, config=config, show_progress=False, fail_fast=fail_fast,
                                       executor=tracked, plotter=plotter)
        result.frame_seconds = tracked.seconds
        return result

    def each_night(self, run_pass: Callable, nights) -> None:
        """``run_pass(night)`` for every night: in order, or up to ``at_once`` nights at a time
        (their groups share the ``at_once`` group threads). The first error stops the run: groups
        not yet started are skipped and the error is raised at once."""
        if self._pool is None:
            for night in nights:
                run_pass(night)
            return
        pool = ThreadPoolExecutor(self.at_once, thread_name_prefix="reduce-night")
        futures = [pool.submit(run_pass, night) for night in nights]
        try:
            for f in futures:
                f.result()
        except BaseException:
            self._stopped = True
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def close(self) -> None:
        """Let the group threads finish (after an error, only the groups already running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=not self._stopped, cancel_futures=True)
