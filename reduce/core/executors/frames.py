"""What every executor shares: the blocks sent once, frames in chunks, results back in frame order.

Collector blocks never leave the parent: workers get a placeholder in their slot (so per-block
timings stay aligned with the Sequence's blocks). Results come back without pixel data or cutouts.
"""
from __future__ import annotations

import pickle
import sys
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Callable, Iterable, Iterator

from ..block import Block
from ...model.errors import ExecutorError


class _CollectorSlot(Block):
    """Stands in for a collector in the workers' copy of the chain (collectors run in the parent)."""

    collector = True

    def run(self, image) -> None:  # never called: run_frame skips collectors
        pass


def payload(blocks, loader, fail_fast: bool) -> bytes:
    """The blocks (collectors replaced) and loader, pickled once for every worker."""
    work = [_CollectorSlot() if b.collector else b for b in blocks]
    try:
        return pickle.dumps((work, loader, bool(fail_fast)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise ExecutorError(f"the blocks cannot be sent to worker processes ({type(e).__name__}: {e}); "
                            "use --jobs 1, or make the block picklable") from e


def strip(image) -> None:
    """Drop what the parent does not need (as the serial Sequence does for streamed frames)."""
    image.data = None
    image.mask = None
    image.cutouts = None


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MiB)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def run_chunk(state, start: int, items: list) -> tuple[int, list, float]:
    """Worker side: the chain on ``items`` with ``state`` (unpickled payload); (start, images, peak RSS)."""
    from ..sequence import run_frame

    blocks, loader, fail_fast = state
    out = []
    for item in items:
        image = run_frame(blocks, item, loader, fail_fast=fail_fast)
        strip(image)
        out.append(image)
    return start, out, _peak_rss_mb()


def chunks(items: Iterable, size: int) -> Iterator[tuple[int, list]]:
    """(start index, list of up to ``size`` items), lazily."""
    chunk, start, i = [], 0, 0
    for i, item in enumerate(items):
        if not chunk:
            start = i
        chunk.append(item)
        if len(chunk) >= size:
            yield start, chunk
            chunk = []
    if chunk:
        yield start, chunk


def chunk_size(total: int | None, workers: int, requested: int | None) -> int:
    """Frames per task: a few tasks per worker for balance, at most 8 frames for streaming."""
    if requested:
        return max(1, int(requested))
    if not total:
        return 4
    return max(1, min(8, total // (4 * workers)))


def ordered(submit: Callable, parts: Iterator, limit: int,
            on_result: Callable | None = None) -> Iterator[tuple[int, object]]:
    """Submit ``parts`` (start, items) with at most ``limit`` pending or unconsumed, yield
    (index, image) in order.

    ``submit(start, items)`` returns a ``concurrent.futures.Future`` whose ``result()`` is
    ``(start, images, peak_rss_mb)``; ``on_result(peak_rss_mb)`` is called for each.
    """
    pending: dict = {}
    ready: dict[int, list] = {}
    next_start = 0
    exhausted = False

    def fill():
        nonlocal exhausted
        while not exhausted and len(pending) + len(ready) < limit:
            try:
                start, items = next(parts)
            except StopIteration:
                exhausted = True
                return
            pending[submit(start, items)] = start

    fill()
    while pending or ready:
        if next_start in ready:
            images = ready.pop(next_start)
            fill()
            for k, image in enumerate(images):
                yield next_start + k, image
            next_start += len(images)
            continue
        for fut in wait(list(pending), return_when=FIRST_COMPLETED).done:
            pending.pop(fut)
            start, images, rss = fut.result()
            if on_result is not None:
                on_result(rss)
            ready[start] = images
        fill()


class Executor:
    """What every executor shares: ``map_frames`` (in subclasses), the workers' peak memory,
    ``close`` and ``with`` use."""

    peak_worker_rss_mb = None

    def _rss(self, value: float) -> None:
        self.peak_worker_rss_mb = max(self.peak_worker_rss_mb or 0.0, float(value))

    def close(self) -> None:
        """Release what the executor holds (nothing by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
