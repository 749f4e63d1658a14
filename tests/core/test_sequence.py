"""Sequence engine: chain checks, list-likeness, streaming memory, per-frame fault isolation."""
from __future__ import annotations

import gc
import logging
import tracemalloc

import numpy as np
import pytest

from reduce import blocks
from reduce.core.block import Block
from reduce.model.flags import Flag
from reduce.model.errors import NoSources
from reduce.core.sequence import Sequence, run_frame
from reduce.model.image import Image

from ..blocks._make import star_field, write_fits


class _Count(Block):
    """Test helper: counts setup/run/finish calls; optionally fails on a given frame."""

    register = False
    provides = ("computed",)

    def __init__(self, *, fail_on: str | None = None, error: type = RuntimeError):
        self.fail_on = fail_on
        self.error = error
        self.setups = self.runs = self.finishes = 0

    def setup(self, context=None):
        self.setups += 1

    def run(self, image):
        self.runs += 1
        if self.fail_on and image.path and image.path.endswith(self.fail_on):
            raise self.error("boom")

    def finish(self):
        self.finishes += 1


class _Collect(Block):
    """Test collector: records each frame's path, flags and whether pixels were kept."""

    register = False
    collector = True

    def __init__(self):
        self.rows = []

    def run(self, image):
        self.rows.append((image.path, image.flags, image.data is not None,
                          None if image.sources is None else len(image.sources)))


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Four small star frames and one corrupt file."""
    d = tmp_path_factory.mktemp("night")
    paths = []
    for i in range(4):
        f = star_field((128, 128), n=8, seed=i, margin=12)
        paths.append(str(write_fits(d / f"light_{i}.fits", f.data.astype(np.float32), exptime=10.0)))
    bad = d / "light_bad.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"garbage" * 50)
    paths.insert(2, str(bad))
    return paths


def test_misordered_sequence_names_the_block_and_the_provider():
    with pytest.raises(ValueError) as err:
        Sequence([blocks.Cutouts(), blocks.PointSourceDetection()])
    msg = str(err.value)
    assert "Cutouts" in msg and "'sources'" in msg and "PointSourceDetection (position 1)" in msg


def test_missing_provider_suggests_registered_blocks():
    with pytest.raises(ValueError, match="MedianEPSF"):
        Sequence([blocks.Moffat2D()])
    Sequence([blocks.Moffat2D()], provided=("epsf",))  # caller-declared fields are accepted


def test_sequence_rejects_classes_and_non_blocks():
    with pytest.raises(TypeError, match="instance"):
        Sequence([blocks.PointSourceDetection])
    with pytest.raises(TypeError):
        Sequence([42])


def test_list_like():
    det, cut = blocks.PointSourceDetection(), blocks.Cutouts()
    seq = Sequence([det, cut])
    assert len(seq) == 2 and seq[-1] is cut and [*seq] == [det, cut]
    assert [*Sequence([*seq, blocks.MedianEPSF()])][:2] == [det, cut]
    assert isinstance(seq[:1], Sequence) and len(seq[:1]) == 1


def test_streaming_isolates_a_corrupt_file_and_keeps_going(night, caplog):
    counter, collect = _Count(), _Collect()
    seq = Sequence([blocks.PointSourceDetection(), counter, collect])
    with caplog.at_level(logging.WARNING, logger="reduce"):
        seq.run(night, show_progress=False)
    assert counter.setups == 1 and counter.finishes == 1 and counter.runs == 4
    assert len(collect.rows) == 5  # collectors see every frame, rejected ones too
    assert [r[0] for r in collect.rows] == night  # in frame order
    bad = collect.rows[2]
    assert bad[1] == Flag.UNREADABLE and bad[3] is None
    assert all(r[1] == 0 and r[3] >= 6 for i, r in enumerate(collect.rows) if i != 2)
    assert not any(r[2] for r in collect.rows)  # pixel data dropped when streaming
    assert len(seq.issues) == 1
    issue = seq.issues[0]
    assert issue.frame == night[2] and issue.block == "loader" and issue.flag == "UNREADABLE"
    assert seq.flagged == {night[2]: int(Flag.UNREADABLE)}
    assert "1 of 5 frame(s) flagged" in caplog.text and "UNREADABLE in loader" in caplog.text


def test_rejection_stops_the_chain_for_that_frame_only(night):
    after, collect = _Count(), _Collect()
    seq = Sequence([_Count(fail_on="light_1.fits", error=NoSources), after, collect])
    seq.run([p for p in night if "bad" not in p], show_progress=False)
    assert after.runs == 3
    flags = [r[1] for r in collect.rows]
    assert flags == [0, int(Flag.NO_SOURCES), 0, 0]
    assert seq.issues[0].block == "_Count" and seq.issues[0].message == "boom"


def test_unexpected_error_is_flagged_with_traceback_unless_fail_fast(night, caplog):
    seq = Sequence([_Count(fail_on="light_0.fits", error=ZeroDivisionError), _Collect()])
    with caplog.at_level(logging.ERROR, logger="reduce"):
        seq.run(night[:2], show_progress=False)
    assert seq[-1].rows[0][1] == Flag.UNEXPECTED and seq[-1].rows[1][1] == 0
    assert "Traceback" in caplog.text and "ZeroDivisionError" in caplog.text
    with pytest.raises(ZeroDivisionError):
        Sequence([_Count(fail_on="light_0.fits", error=ZeroDivisionError)]).run(
            night[:2], show_progress=False, fail_fast=True)


def test_images_are_processed_in_place_and_timed(night):
    from reduce.io.fitsimage import FITSImage

    image = FITSImage(night[0])
    seq = Sequence([blocks.PointSourceDetection(), blocks.Cutouts(size=11), blocks.MedianEPSF(),
                    blocks.Moffat2D()])
    assert seq.run(image, show_progress=False) is seq
    assert image.data is not None and len(image.sources) >= 6 and image.fwhm > 0
    rows = {r["block"]: r for r in seq.timing()}
    assert rows["Moffat2D"]["runs"] == 1 and rows["Moffat2D"]["seconds"] > 0
    text = str(seq)
    assert "PointSourceDetection" in text and "ms/frame" in text


def test_run_frame_returns_a_flagged_image_for_a_bad_path(tmp_path):
    image = run_frame([blocks.PointSourceDetection()], str(tmp_path / "missing.fits"))
    assert image.flags == Flag.UNREADABLE and image.issues[0][0] == "loader"
    assert image.computed["timing"] == [None]


def test_streaming_memory_does_not_grow_with_frame_count(tmp_path):
    shape = (256, 256)
    f = star_field(shape, n=10, seed=3)
    paths = [str(write_fits(tmp_path / f"f{i}.fits", f.data.astype(np.float32), exptime=5.0))
             for i in range(24)]
    seq_blocks = lambda: [blocks.PointSourceDetection(), blocks.Cutouts(size=11),  # noqa: E731
                          blocks.MedianEPSF(), blocks.Moffat2D(), _Collect()]
    Sequence(seq_blocks()).run(paths[:2], show_progress=False)  # warm imports and caches

    def peak(n):
        gc.collect()
        tracemalloc.start()
        Sequence(seq_blocks()).run(paths[:n], show_progress=False)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    small, large = peak(4), peak(24)
    frame_bytes = shape[0] * shape[1] * 4
    assert large < small + frame_bytes, (small, large)
