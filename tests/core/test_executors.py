"""Executors: the same per-frame results, in frame order, serially, in worker processes and on Dask."""
from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np
import pytest

from reduce.core.block import Block
from reduce.model.flags import Flag
from reduce.model.errors import NoSources, UsageError
from reduce.core.executors import (DaskExecutor, ExecutorError, ProcessExecutor, SerialExecutor,
                                   make_executor)
from reduce.core.sequence import Sequence
from reduce.model.image import Image


# -- small picklable test blocks (module level, so spawn workers can import them) --------------
class _Load:
    """A loader making a frame from a 'path' string 'frame-<i>' (no disk needed)."""

    def __call__(self, item):
        i = int(str(item).rsplit("-", 1)[1])
        if i == 13:
            raise OSError("truncated file")
        rng = np.random.default_rng(i)
        return Image(data=rng.normal(100, 5, (32, 32)).astype(np.float32), path=str(item), jd=float(i))


class _Measure(Block):
    """Sums the frame; rejects frame 7 (no stars); records the pid it ran in; may sleep."""

    requires = ("data",)
    provides = ("computed",)
    register = False

    def __init__(self, *, sleep: float = 0.0, crash_on: int = -1, die_on: int = -1):
        self.sleep, self.crash_on, self.die_on = sleep, crash_on, die_on
        self.setup_pids: list[int] = []
        self.prepared = None

    def setup(self, context=None):
        self.setup_pids.append(os.getpid())
        self.prepared = np.arange(5.0)  # stands for a master frame built once in the parent

    def run(self, image):
        i = int(image.jd)
        if self.prepared is None:
            raise RuntimeError("setup did not run before this block was sent to the worker")
        if self.sleep:
            time.sleep(self.sleep * ((i * 7) % 3))  # uneven: later frames may finish first
        if i == self.die_on:
            os._exit(9)
        if i == self.crash_on:
            raise ValueError("boom")
        if i == 7:
            raise NoSources("no stars: cloud")
        image.computed["sum"] = float(np.sum(image.data, dtype=np.float64)) + self.prepared.sum()
        image.computed["pid"] = os.getpid()


class _Collect(Block):
    """Collector: keeps (index order) the label, sum and flags of every frame, in the parent."""

    collector = True
    register = False

    def __init__(self):
        self.rows = []

    def run(self, image):
        self.rows.append((image.path, image.computed.get("sum"), int(image.flags), image.data is None,
                          image.computed.get("pid")))


def _run(executor, n=24, **kw):
    measure, collect = _Measure(**kw), _Collect()
    seq = Sequence([measure, collect], name="test")
    seq.run([f"frame-{i}" for i in range(n)], loader=_Load(), show_progress=False, executor=executor)
    return seq, measure, collect


def test_serial_executor_matches_the_plain_sequence():
    plain, _, c0 = _run(None)
    seq, _, c1 = _run(SerialExecutor())
    assert [r[:4] for r in c0.rows] == [r[:4] for r in c1.rows]
    assert plain.flagged == seq.flagged and plain.issues == seq.issues


def test_process_executor_same_results_in_frame_order_setup_once_in_parent():
    _, _, ref = _run(SerialExecutor())
    seq, measure, got = _run(ProcessExecutor(2, chunk_size=3), sleep=0.01)
    assert [r[:4] for r in got.rows] == [r[:4] for r in ref.rows]
    assert [r[0] for r in got.rows] == [f"frame-{i}" for i in range(24)]
    assert measure.setup_pids == [os.getpid()], "setup (masters) must run once, in the parent"
    worker_pids = {r[4] for r in got.rows if r[4] is not None}
    assert worker_pids and os.getpid() not in worker_pids
    assert all(r[3] for r in got.rows), "results come back without pixel data"
    # the rejected and the unreadable frame are flagged, with their block and reason, and counted
    assert seq.flagged["frame-7"] == Flag.NO_SOURCES and seq.flagged["frame-13"] == Flag.UNREADABLE
    assert any(i.frame == "frame-13" and "truncated" in i.message for i in seq.issues)
    rows = {r["block"]: r for r in seq.timing()}
    assert rows["_Measure"]["runs"] == 23 and rows["load"]["runs"] == 24


def test_spawn_workers_give_the_same_results():
    _, _, ref = _run(SerialExecutor(), n=10)
    _, _, got = _run(ProcessExecutor(2, context="spawn"), n=10)
    assert [r[:4] for r in got.rows] == [r[:4] for r in ref.rows]


def test_streaming_keeps_a_bounded_number_of_frames_in_flight(monkeypatch):
    from reduce.core.executors import local

    pulled = []
    original = local.chunks

    def counting(items, size):
        for start, chunk in original(items, size):
            pulled.append(len(chunk))
            yield start, chunk

    monkeypatch.setattr(local, "chunks", counting)
    ex = ProcessExecutor(2, chunk_size=2, max_in_flight=3)
    ahead, seen = [], 0
    for index, image in ex.map_frames([_prepared(_Measure())], [f"frame-{i}" for i in range(60)],
                                      loader=_Load()):
        assert index == seen
        seen += 1
        ahead.append(sum(pulled) - seen)
    # at most max_in_flight chunks pending or waiting, plus the one being handed over
    assert seen == 60 and max(ahead) <= (3 + 1) * 2, f"too many frames in flight: {max(ahead)}"
    assert ex.peak_worker_rss_mb and ex.peak_worker_rss_mb > 10


def _prepared(block):
    block.setup(None)
    return block


def test_unexpected_errors_are_flagged_and_fail_fast_raises_in_the_parent():
    seq, _, got = _run(ProcessExecutor(2), n=12, crash_on=4)
    assert seq.flagged["frame-4"] == Flag.UNEXPECTED
    with pytest.raises(ValueError, match="boom"):
        measure, collect = _Measure(crash_on=4), _Collect()
        Sequence([measure, collect]).run([f"frame-{i}" for i in range(12)], loader=_Load(),
                                          show_progress=False, fail_fast=True,
                                          executor=ProcessExecutor(2))


def test_a_dead_worker_is_a_clear_error():
    with pytest.raises(ExecutorError, match="worker process died"):
        _run(ProcessExecutor(2), n=12, die_on=5)


class _Unpicklable(_Measure):
    register = False

    def setup(self, context=None):
        super().setup(context)
        self.handle = lambda x: x  # lambdas cannot be pickled


def test_unpicklable_blocks_are_reported():
    seq = Sequence([_Unpicklable(), _Collect()])
    with pytest.raises(ExecutorError, match="cannot be sent to worker processes"):
        seq.run(["frame-1", "frame-2"], loader=_Load(), show_progress=False, executor=ProcessExecutor(2))


def test_default_recipe_blocks_with_masters_are_picklable(small_night):
    """The real chain (Calibration with its masters, the reference in the alignment block)."""
    from reduce.config import load_config
    from reduce.index.manager import FitsManager
    from reduce.recipe import REFERENCE_SECTIONS, build_blocks, load_recipe
    from pathlib import Path

    spec = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "default.yaml")
    fm = FitsManager(small_night, index=":memory:")
    cal = fm.calibration_for(fm.light_groups()[0])
    blocks = build_blocks(spec, REFERENCE_SECTIONS, bias=cal.bias, darks=cal.darks, flats=cal.flats)
    for b in blocks:
        b.setup(None)
    copy = pickle.loads(pickle.dumps(blocks))
    assert copy[0].master_flat is not None and np.array_equal(copy[0].master_flat, blocks[0].master_flat)


def test_make_executor_and_usage_errors(monkeypatch):
    assert isinstance(make_executor("local", jobs=1), SerialExecutor)
    ex = make_executor("local", jobs=3)
    assert isinstance(ex, ProcessExecutor) and ex.jobs == 3
    with pytest.raises(UsageError):
        make_executor("local", jobs=0)
    with pytest.raises(UsageError, match="unknown executor"):
        make_executor("mpi")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(UsageError, match=r"pip install 'reduce\[distributed\]'"):
        make_executor("dask", scheduler="tcp://127.0.0.1:1")


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def test_dask_executor_same_results_in_order(dask_client):
    _, _, ref = _run(SerialExecutor())
    ex = DaskExecutor(client=dask_client, chunk_size=3)
    seq, measure, got = _run(ex, sleep=0.01)
    assert [r[:4] for r in got.rows] == [r[:4] for r in ref.rows]
    assert measure.setup_pids == [os.getpid()]
    assert len({r[4] for r in got.rows if r[4]}) >= 1 and os.getpid() not in {r[4] for r in got.rows}
    assert seq.flagged["frame-7"] == Flag.NO_SOURCES
    assert ex.describe()["workers"] == 2


def test_dask_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    ex = DaskExecutor("tcp://127.0.0.1:9", timeout=2)
    with pytest.raises(ExecutorError, match="cannot connect to the Dask scheduler"):
        ex.connect()
