"""Executors: run the per-frame chain (:func:`~reduce.core.sequence.run_frame`) serially, in local
worker processes or on a Dask cluster, and hand the results back in frame order.

Every executor has ``map_frames(blocks, items, *, loader=None, fail_fast=False)`` returning an
iterator of ``(index, image)`` sorted by index; the Sequence feeds each result to
``Sequence.collect`` in the parent, so collectors (e.g. ``GetFluxes``) see exactly the frames and
order of a serial run and tables are bit-identical. The blocks (already ``setup``, i.e. with their
master frames built) and the loader are pickled once per group and sent once per worker (process
initializer / Dask scatter), never per frame; frames go out in chunks, with a bounded number of
chunks in flight (streaming: memory does not grow with the number of frames). Results come back
without pixel data or cutouts.

``frames`` holds what they share, ``local`` the serial and process executors, ``cluster`` Dask.
"""
from __future__ import annotations

from ...model.errors import ExecutorError, UsageError
from .cluster import DaskExecutor
from .local import ProcessExecutor, SerialExecutor, default_jobs, worker_init

__all__ = ["SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "default_jobs",
           "worker_init", "ExecutorError"]


def make_executor(kind: str | None = None, *, jobs: int | None = None, scheduler: str | None = None,
                  groups_at_once: int | None = None):
    """The executor for CLI options: ``kind`` 'local' (default; serial when ``jobs`` is 1) or 'dask'
    (``groups_at_once``: see :class:`DaskExecutor`)."""
    kind = (kind or ("dask" if scheduler else "local")).lower()
    if kind in ("local", "processes", "process"):
        if jobs is not None and jobs < 1:
            raise UsageError(f"--jobs must be at least 1 (got {jobs})")
        n = jobs or default_jobs()
        return SerialExecutor() if n == 1 else ProcessExecutor(n)
    if kind == "serial":
        return SerialExecutor()
    if kind == "dask":
        return DaskExecutor(scheduler, groups_at_once=groups_at_once)
    raise UsageError(f"unknown executor {kind!r}: use 'local' or 'dask'")
