"""Executors on this machine: serially (``--jobs 1``) or in local worker processes; and the set-up
of every worker process ``reduce`` starts (the frames' workers and the figure helper)."""
from __future__ import annotations

import gc
import logging
import os
import pickle
import sys
import threading
import time

from ...model.errors import ExecutorError, UsageError
from .frames import Executor, chunk_size, chunks, ordered, payload, run_chunk, strip


def default_jobs() -> int:
    """Number of cores this process may use (the ``--jobs`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class SerialExecutor(Executor):
    """In-process, one frame after the other (``--jobs 1``): exactly the Sequence's own loop."""

    name = "serial"
    jobs = 1
    #: groups the run may reduce at once with this executor (see DaskExecutor)
    groups_at_once = 1

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        from ..sequence import _is_image, run_frame

        blocks = list(blocks)
        for index, item in enumerate(items):
            image = run_frame(blocks, item, loader, fail_fast=fail_fast)
            if not _is_image(item):
                strip(image)
            yield index, image

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": 1}


# -- worker processes ------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Exit this worker when its parent has gone (a SIGKILLed run must not leave orphans)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _plain_logging() -> None:
    """Workers log plain lines to stderr: a forked rich handler could hold a lock of the parent."""
    logger = logging.getLogger("reduce")
    for h in list(logger.handlers):
        if getattr(h, "parent_only", False):  # e.g. the run's collectors of warnings for its summary
            logger.removeHandler(h)
            continue
        if not isinstance(h, logging.StreamHandler):
            logger.removeHandler(h)
            plain = logging.StreamHandler(sys.stderr)
            plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(group_prefix)s%(message)s",
                                                 "%Y-%m-%dT%H:%M:%S", defaults={"group_prefix": ""}))
            plain.setLevel(h.level)  # -q keeps the console quiet in workers too
            for f in h.filters:  # the group's name (inherited from the forking thread), as in the parent
                plain.addFilter(f)
            logger.addHandler(plain)


def worker_init(parent: int) -> None:
    """Set up a worker process of ``parent``: Ctrl-C is the parent's to handle, logs are plain
    lines, and the worker exits within a second of its parent's death (no orphans)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _plain_logging()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="reduce-parent-watch").start()


_WORKER_STATE = None


def _init_worker(blocks: bytes, parent: int) -> None:
    """Process-pool initializer: :func:`worker_init`, then unpickle the blocks once."""
    global _WORKER_STATE
    worker_init(parent)
    _WORKER_STATE = pickle.loads(blocks)


def _process_chunk(start: int, items: list):
    return run_chunk(_WORKER_STATE, start, items)


class ProcessExecutor(Executor):
    """``jobs`` local worker processes (``concurrent.futures``), one pool per group.

    ``context`` is the multiprocessing start method: ``'fork'`` (default on Linux: instant start,
    the payload is inherited) or ``'spawn'``/``'forkserver'`` (fresh interpreters). ``chunk_size``
    frames per task (default: a few tasks per worker, at most 8); ``max_in_flight`` chunks pending
    or waiting to be collected (default ``3 * jobs``).
    """

    name = "processes"
    groups_at_once = 1  # the cores are the limit: one group's frames already use them all

    def __init__(self, jobs: int | None = None, *, context: str | None = None,
                 chunk_size: int | None = None, max_in_flight: int | None = None):
        import multiprocessing

        self.jobs = int(jobs) if jobs else default_jobs()
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1 (got {jobs})")
        methods = multiprocessing.get_all_start_methods()
        self.context = context or os.environ.get("REDUCE_MP_CONTEXT") or ("fork" if "fork" in methods else "spawn")
        if self.context not in methods:
            raise UsageError(f"start method {self.context!r} is not available here ({', '.join(methods)})")
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        items = list(items) if not hasattr(items, "__len__") else items
        total = len(items)
        sent = payload(blocks, loader, fail_fast)
        workers = max(1, min(self.jobs, total))
        size = chunk_size(total, workers, self.chunk_size)
        limit = self.max_in_flight or 3 * workers
        # objects alive now (modules, masters, reference) are inherited by forked workers: frozen,
        # their garbage collections never walk them (about 0.1 s CPU per worker; also less
        # copy-on-write); unfrozen again below so this process can still collect them later
        gc.freeze()
        try:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(self.context),
                                       initializer=_init_worker, initargs=(sent, os.getpid()))
        except BaseException:
            gc.unfreeze()
            raise
        try:
            yield from ordered(lambda s, c: pool.submit(_process_chunk, s, c), chunks(items, size), limit,
                               self._rss)
        except BrokenProcessPool as e:
            raise ExecutorError(f"a worker process died ({e}); out of memory? try fewer --jobs") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": self.jobs, "start_method": self.context,
                "peak_worker_rss_mb": None if self.peak_worker_rss_mb is None
                else round(self.peak_worker_rss_mb, 1)}
