"""Frames on an existing Dask distributed cluster (the optional ``reduce[distributed]``)."""
from __future__ import annotations

import logging
import pickle
import threading

from ...model.errors import ClusterUnavailable, ExecutorError, ReduceError, UsageError
from .frames import Executor, chunk_size, chunks, ordered, payload, run_chunk

log = logging.getLogger("reduce.executors")

INSTALL_HINT = "pip install 'reduce[distributed]'  (installs dask[distributed])"

_DASK_CACHE: dict = {}
_DASK_LOCK = threading.Lock()
#: groups whose blocks a worker keeps unpickled (a run sends frames of a few groups at once)
_DASK_CACHE_GROUPS = 4


def _dask_chunk(token: str, blocks: bytes, start: int, items: list):
    """Dask task: unpickle the group's blocks once per worker (cached by token), run a chunk."""
    with _DASK_LOCK:
        state = _DASK_CACHE.get(token)
        if state is None:
            while len(_DASK_CACHE) >= _DASK_CACHE_GROUPS:  # the groups running now, roughly
                _DASK_CACHE.pop(next(iter(_DASK_CACHE)))
            state = _DASK_CACHE[token] = pickle.loads(blocks)
    return run_chunk(state, start, items)


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


class DaskExecutor(Executor):
    """Frames on an existing Dask distributed cluster (``scheduler`` = ``tcp://HOST:PORT``).

    The blocks (with their masters) are scattered once per group to every worker; frames are read
    by the workers from the same paths, so the cluster needs the night on a shared file system and
    ``reduce`` installed on every worker. ``client`` may be given instead of ``scheduler``.
    ``groups_at_once`` (default 2): groups (of one or several nights) reduced at the same time, so
    the cluster computes one group's frames while this process builds the next group's masters
    and reference and writes the previous one's outputs (``map_frames`` may be called from
    several threads).

    The workers are the cluster's: ``reduce`` leaves their settings alone. Dask's nanny starts
    them with ``MALLOC_TRIM_THRESHOLD_=65536``, under which glibc maps and unmaps every frame-sized
    array again: the chain then costs about twice the CPU of a local worker.
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

    #: times the frames of a group are resubmitted after its workers were lost
    max_retries = 2

    def map_frames(self, blocks, items, *, loader=None, fail_fast: bool = False):
        """Frames on the cluster, in order. A worker that dies takes the group's blocks and its
        chunks with it: the frames not yet returned are resubmitted (``max_retries`` times, once a
        worker is back); a scheduler that is gone is :class:`ClusterUnavailable` for the whole run."""
        items = list(items) if not hasattr(items, "__len__") else items
        sent = payload(blocks, loader, fail_fast)
        done = 0
        for attempt in range(self.max_retries + 1):
            try:
                for index, image in self._map_once(sent, items[done:]):
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

    def _map_once(self, sent, items):
        """One pass of map_frames over ``items``: raises _LostWorker (with how many frames it
        yielded) when the cluster lost a worker, ClusterUnavailable when the scheduler is gone."""
        import uuid

        distributed = _import_distributed()
        client = self.client
        self._check_up(client)
        token = uuid.uuid4().hex
        workers = self.jobs
        size = chunk_size(len(items), workers, self.chunk_size)
        limit = self.max_in_flight or 3 * workers
        try:
            shared = client.scatter(sent, broadcast=True, hash=False)
        except Exception as e:
            self._check_up(client, e)
            raise ExecutorError(f"cannot send the blocks to the Dask workers: {type(e).__name__}: {e}") from None
        pool = client.get_executor(pure=False)

        def submit(start, chunk):
            return pool.submit(_dask_chunk, token, shared, start, chunk, key=f"reduce-frames-{token}-{start}")

        yielded = 0
        try:
            for pair in ordered(submit, chunks(items, size), limit, self._rss):
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
                pool.shutdown(wait=False)  # cancels its tasks still pending
                client.cancel([shared])
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
