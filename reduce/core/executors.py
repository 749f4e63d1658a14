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

Collector blocks never leave the parent: workers get a placeholder in their slot (so per-block
timings stay aligned with the Sequence's blocks).
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
import sys
import threading
import time
from typing import Callable, Iterable, Iterator

from .block import Block
from ..model.errors import ClusterUnavailable, ExecutorError, ReduceError, UsageError

__all__ = ["SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "default_jobs",
           "ExecutorError"]

log = logging.getLogger("reduce.executors")

INSTALL_HINT = "pip install 'reduce[distributed]'  (installs dask[distributed])"


def default_jobs() -> int:
    """Number of cores this process may use (the ``--jobs`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _CollectorSlot(Block):
    """Stands in for a collector in the workers' copy of the chain (collectors run in the parent)."""

    collector = True

    def run(self, image) -> None:  # never called: run_frame skips collectors
        pass


def _payload(blocks, loader, fail_fast: bool) -> bytes:
    """The blocks (collectors replaced) and loader, pickled once for every worker."""
    work = [_CollectorSlot() if b.collector else b for b in blocks]
    try:
        return pickle.dumps((work, loader, bool(fail_fast)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise ExecutorError(f"the blocks cannot be sent to worker processes ({type(e).__name__}: {e}); "
                            "use --jobs 1, or make the block picklable") from e


def _strip(image) -> None:
    """Drop what the parent does not need (as the serial Sequence does for streamed frames)."""
    image.data = None
    image.mask = None
    image.cutouts = None


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MiB)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _run_chunk_with(state, start: int, items: list) -> tuple[int, list, float]:
    from .sequence import run_frame

    blocks, loader, fail_fast = state
    out = []
    for item in items:
        image = run_frame(blocks, item, loader, fail_fast=fail_fast)
        _strip(image)
        out.append(image)
    return start, out, _peak_rss_mb()


def _chunks(items: Iterable, size: int) -> Iterator[tuple[int, list]]:
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


def _chunk_size(total: int | None, workers: int, requested: int | None) -> int:
    """Frames per task: a few tasks per worker for balance, at most 8 frames for streaming."""
    if requested:
        return max(1, int(requested))
    if not total:
        return 4
    return max(1, min(8, total // (4 * workers)))


def _ordered(submit: Callable, wait_any: Callable, chunks: Iterator, limit: int,
             on_result: Callable | None = None) -> Iterator[tuple[int, object]]:
    """Submit chunks with at most ``limit`` pending or unconsumed, yield (index, image) in order.

    ``submit(start, items)`` returns a future; ``wait_any(futures)`` returns the completed ones;
    a future's ``result()`` is ``(start, images, peak_rss_mb)``.
    """
    pending: dict = {}
    ready: dict[int, list] = {}
    next_start = 0
    exhausted = False

    def fill():
        nonlocal exhausted
        while not exhausted and len(pending) + len(ready) < limit:
            try:
                start, items = next(chunks)
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
        for fut in wait_any(list(pending)):
            pending.pop(fut)
            start, images, rss = fut.result()
            if on_result is not None:
                on_result(rss)
            ready[start] = images
        fill()


class _Executor:
    """What every executor shares: ``map_frames`` (in subclasses), ``close`` and ``with`` use."""

    def close(self) -> None:
        """Release what the executor holds (nothing by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(_Executor):
    """In-process, one frame after the other (``--jobs 1``): exactly the Sequence's own loop."""

    name = "serial"
    jobs = 1
    #: groups the run may reduce at once with this executor (see DaskExecutor)
    groups_at_once = 1

    def __init__(self):
        self.peak_worker_rss_mb = None

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        from .sequence import _is_image, run_frame

        blocks = list(blocks)
        for index, item in enumerate(items):
            image = run_frame(blocks, item, loader, fail_fast=fail_fast)
            if not _is_image(item):
                _strip(image)
            yield index, image

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": 1}



# -- local processes -------------------------------------------------------------------------
_WORKER_STATE = None


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
        if not isinstance(h, logging.StreamHandler):
            logger.removeHandler(h)
            plain = logging.StreamHandler(sys.stderr)
            plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
            plain.setLevel(h.level)  # -q keeps the console quiet in workers too
            logger.addHandler(plain)


def _init_worker(payload: bytes, parent: int) -> None:
    """Process-pool initializer: unpickle the blocks once; the parent handles Ctrl-C."""
    import signal

    global _WORKER_STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _plain_logging()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="reduce-parent-watch").start()
    _WORKER_STATE = pickle.loads(payload)


def _process_chunk(start: int, items: list):
    return _run_chunk_with(_WORKER_STATE, start, items)


class ProcessExecutor(_Executor):
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
        self.peak_worker_rss_mb = None

    def _rss(self, value: float) -> None:
        self.peak_worker_rss_mb = max(self.peak_worker_rss_mb or 0.0, float(value))

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        items = list(items) if not hasattr(items, "__len__") else items
        total = len(items)
        payload = _payload(blocks, loader, fail_fast)
        workers = max(1, min(self.jobs, total))
        size = _chunk_size(total, workers, self.chunk_size)
        limit = self.max_in_flight or 3 * workers
        # objects alive now (modules, masters, reference) are inherited by forked workers: frozen,
        # their garbage collections never walk them (about 0.1 s CPU per worker; also less
        # copy-on-write); unfrozen again below so this process can still collect them later
        gc.freeze()
        try:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(self.context),
                                       initializer=_init_worker, initargs=(payload, os.getpid()))
        except BaseException:
            gc.unfreeze()
            raise
        try:
            yield from _ordered(lambda s, c: pool.submit(_process_chunk, s, c),
                                lambda fs: wait(fs, return_when=FIRST_COMPLETED)[0],
                                _chunks(items, size), limit, self._rss)
        except BrokenProcessPool as e:
            raise ExecutorError(f"a worker process died ({e}); out of memory? try fewer --jobs") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": self.jobs, "start_method": self.context,
                "peak_worker_rss_mb": None if self.peak_worker_rss_mb is None
                else round(self.peak_worker_rss_mb, 1)}



# -- Dask distributed ------------------------------------------------------------------------
_DASK_CACHE: dict = {}
_DASK_LOCK = threading.Lock()
#: groups whose blocks a worker keeps unpickled (a run sends frames of a few groups at once)
_DASK_CACHE_GROUPS = 4


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` for this worker (glibc only, once).

    That setting freezes glibc's mmap threshold at 128 KiB, so every frame-sized numpy array is
    mmap-ed, page-faulted and unmapped again: the chain ran 5x slower on Dask workers. Restoring
    thresholds like glibc's own adaptive ones (32 MiB mmap, 64 MiB trim) gives local speed back.
    """
    global _MALLOC_TUNED
    _MALLOC_TUNED = True
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        libc.mallopt(m_trim_threshold, 64 * 2**20)
    except (OSError, AttributeError):
        pass


def _dask_chunk(token: str, payload: bytes, start: int, items: list):
    """Dask task: unpickle the group's blocks once per worker (cached by token), run a chunk."""
    with _DASK_LOCK:
        if not _MALLOC_TUNED:
            _tune_malloc()
        state = _DASK_CACHE.get(token)
        if state is None:
            while len(_DASK_CACHE) >= _DASK_CACHE_GROUPS:  # the groups running now, roughly
                _DASK_CACHE.pop(next(iter(_DASK_CACHE)))
            state = _DASK_CACHE[token] = pickle.loads(payload)
    return _run_chunk_with(state, start, items)


def _require_distributed() -> None:
    """A clear usage error when dask.distributed is not installed (without importing it: ~0.7 s)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["distributed"] is None
        found = False
    if not found:
        raise UsageError("the Dask executor needs the optional dependency dask[distributed], which is "
                         f"not installed: {INSTALL_HINT}")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("the Dask executor needs the optional dependency dask[distributed], which is "
                         f"not installed: {INSTALL_HINT}") from None
    return distributed


def _quiet_client_logs() -> None:
    """A lost scheduler is reported once, by ClusterUnavailable: the client's own reconnection
    tracebacks (one per attempt, per group) would bury that message."""
    for name in ("distributed.client", "distributed.comm", "distributed.core", "distributed.batched"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class _LostWorker(Exception):
    """A pass over a group's frames ended because Dask lost a worker (and the data it held)."""

    def __init__(self, message: str, yielded: int):
        super().__init__(message)
        self.yielded = yielded


def _lost_worker(error: BaseException, distributed) -> bool:
    """Whether ``error`` is Dask losing a worker: its tasks cancelled or killed with it."""
    from concurrent.futures import CancelledError

    kinds = tuple(k for k in (CancelledError, getattr(distributed, "KilledWorker", None),
                              getattr(distributed.client, "FutureCancelledError", None)) if k)
    return isinstance(error, kinds)


class DaskExecutor(_Executor):
    """Frames on an existing Dask distributed cluster (``scheduler`` = ``tcp://HOST:PORT``).

    The blocks (with their masters) are scattered once per group to every worker; frames are read
    by the workers from the same paths, so the cluster needs the night on a shared file system and
    ``reduce`` installed on every worker. ``client`` may be given instead of ``scheduler``.
    ``groups_at_once`` (default 2): groups (of one or several nights) reduced at the same time, so
    the cluster computes one group's frames while this process builds the next group's masters
    and reference and writes the previous one's outputs (``map_frames`` may be called from
    several threads).
    """

    name = "dask"
    groups_at_once = 2
    #: seconds to wait for the scheduler when connecting
    connect_timeout = 30.0

    def __init__(self, scheduler: str | None = None, *, client=None, chunk_size: int | None = None,
                 max_in_flight: int | None = None, timeout: float | None = None,
                 groups_at_once: int | None = None):
        _require_distributed()
        if groups_at_once is not None:
            if int(groups_at_once) < 1:
                raise UsageError(f"groups_at_once must be at least 1 (got {groups_at_once})")
            self.groups_at_once = int(groups_at_once)
        if client is None and not scheduler:
            raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT (or REDUCE_SCHEDULER)")
        self.scheduler = scheduler
        self._client = client
        self._own_client = client is None
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight
        self.timeout = self.connect_timeout if timeout is None else float(timeout)
        self.peak_worker_rss_mb = None
        self._connecting = None   # background connection (connect_async)
        self._connect_error = None

    def _connect_now(self) -> None:
        """Import dask.distributed and connect; a failure is kept for ``client`` to raise."""
        try:
            distributed = _import_distributed()
            self._client = distributed.Client(self.scheduler, timeout=self.timeout, set_as_default=False)
            _quiet_client_logs()
        except ReduceError as e:
            self._connect_error = e
        except Exception as e:
            self._connect_error = ClusterUnavailable(
                f"cannot connect to the Dask scheduler at {self.scheduler}: {type(e).__name__}: {e}")

    def connect_async(self) -> None:
        """Start importing dask.distributed and connecting in the background (~1 s), so it overlaps
        master building and the reference choice; ``client`` waits for it and raises its error."""
        import threading

        if self._client is None and self._connecting is None:
            self._connecting = threading.Thread(target=self._connect_now, name="reduce-dask-connect",
                                                daemon=True)
            self._connecting.start()

    @property
    def client(self):
        if self._connecting is not None:
            self._connecting.join()
            self._connecting = None
        if self._client is None and self._connect_error is None:
            self._connect_now()
        if self._connect_error is not None:
            raise self._connect_error
        return self._client

    @property
    def jobs(self) -> int:
        try:
            info = self.client.scheduler_info()
            return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        except Exception:
            return 1

    def _rss(self, value: float) -> None:
        self.peak_worker_rss_mb = max(self.peak_worker_rss_mb or 0.0, float(value))

    #: times the frames of a group are resubmitted after its workers were lost
    max_retries = 2

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        """Frames on the cluster, in order. A worker that dies takes the group's blocks and its
        chunks with it: the frames not yet returned are resubmitted (``max_retries`` times, once a
        worker is back); a scheduler that is gone is :class:`ClusterUnavailable` for the whole run."""
        items = list(items) if not hasattr(items, "__len__") else items
        payload = _payload(blocks, loader, fail_fast)
        done = 0
        for attempt in range(self.max_retries + 1):
            try:
                for index, image in self._map_once(payload, items[done:]):
                    yield done + index, image
                return
            except _LostWorker as e:
                done += e.yielded
                if attempt == self.max_retries:
                    raise ExecutorError(f"the Dask workers were lost {attempt + 1} times while reducing "
                                        f"this group ({e}); {len(items) - done} frame(s) not reduced") from None
                log.warning("a Dask worker was lost (%s): resubmitting the %d frame(s) not yet reduced",
                            e, len(items) - done)
                self._wait_for_workers()

    def _map_once(self, payload, items):
        """One pass of map_frames over ``items``: raises _LostWorker (with how many frames it
        yielded) when the cluster lost a worker, ClusterUnavailable when the scheduler is gone."""
        import uuid

        distributed = _import_distributed()
        client = self.client
        self._check_up(client)
        token = uuid.uuid4().hex
        workers = self.jobs
        size = _chunk_size(len(items), workers, self.chunk_size)
        limit = self.max_in_flight or 3 * workers
        try:
            shared = client.scatter(payload, broadcast=True, hash=False)
        except Exception as e:
            self._check_up(client, e)
            raise ExecutorError(f"cannot send the blocks to the Dask workers: {type(e).__name__}: {e}") from None
        submitted = []
        completed = distributed.as_completed(loop=client.loop)

        def submit(start, chunk):
            fut = client.submit(_dask_chunk, token, shared, start, chunk, pure=False,
                                key=f"reduce-frames-{token}-{start}")
            submitted.append(fut)
            completed.add(fut)
            return fut

        def wait_any(fs):
            return [next(completed)]

        yielded = 0
        try:
            for pair in _ordered(submit, wait_any, _chunks(items, size), limit, self._rss):
                yield pair
                yielded += 1
        except ReduceError:
            raise
        except Exception as e:
            self._check_up(client, e)
            if _lost_worker(e, distributed):
                raise _LostWorker(f"{type(e).__name__}: {e}".rstrip(": "), yielded) from None
            if isinstance(e, (OSError, TimeoutError)):
                raise ExecutorError(f"the Dask cluster failed: {type(e).__name__}: {e}") from None
            raise
        finally:
            try:
                client.cancel([f for f in submitted if not f.done()] + [shared])
            except Exception:  # noqa: BLE001 - a client that lost its scheduler
                pass

    def _check_up(self, client, error: BaseException | None = None) -> None:
        """ClusterUnavailable when the client lost its scheduler (one clear error for the run: the
        groups already reduced are kept and the next run resumes with the others)."""
        status = getattr(client, "status", "running")
        if status in ("running", "newly-created"):
            return
        first = str(error).strip().splitlines()[0][:160] if error is not None and str(error).strip() else ""
        why = f" ({type(error).__name__}: {first})" if error is not None else ""
        raise ClusterUnavailable(f"the Dask cluster at {self.scheduler or 'the given client'} is "
                                 f"unavailable: the scheduler connection is {status}{why}; the groups "
                                 "reduced so far are kept, run again to resume") from None

    def _wait_for_workers(self) -> None:
        """Wait (up to ``timeout`` s) for a worker after losing one; none: ClusterUnavailable."""
        client = self.client
        try:
            client.wait_for_workers(1, timeout=self.timeout)
        except Exception as e:  # noqa: BLE001
            self._check_up(client, e)
            raise ClusterUnavailable(f"the Dask cluster at {self.scheduler or 'the given client'} has no "
                                     f"worker left (waited {self.timeout:g} s); run again to resume") from None

    def connect(self) -> None:
        """Connect to the scheduler now (raises ExecutorError with the reason when it cannot)."""
        self.client  # noqa: B018 - the property connects

    def describe(self) -> dict:
        return {"executor": self.name, "scheduler": self.scheduler, "workers": self.jobs,
                "groups_at_once": self.groups_at_once,
                "peak_worker_rss_mb": None if self.peak_worker_rss_mb is None
                else round(self.peak_worker_rss_mb, 1)}

    def close(self) -> None:
        if self._client is not None and self._own_client:
            try:
                self._client.close()
            finally:
                self._client = None


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
