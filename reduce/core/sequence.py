"""The Sequence: an ordered chain of blocks run frame by frame, streaming and fault-isolated.

``run_frame(blocks, item, loader)`` is the single per-frame chain (load, then every non-collector
block in order) shared by the in-process :class:`Sequence` and the parallel executors. A block
raising :class:`~reduce.model.errors.FrameRejected` stops that frame's chain and flags it; any other
exception is recorded as ``UNEXPECTED`` (traceback logged) unless ``fail_fast``. Collector blocks
run in the parent, in frame order, on every frame (rejected ones included).
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Iterable, NamedTuple

from .block import Block
from ..model.flags import Flag
from ..model.errors import FrameRejected

__all__ = ["Sequence", "run_frame", "FrameIssue", "RunContext", "LOADER_FIELDS", "check_chain"]

log = logging.getLogger("reduce")

#: Image fields a loader sets, available to the first block of any chain.
LOADER_FIELDS = frozenset({
    "data", "header", "path", "jd", "exposure", "filter", "airmass", "gain", "read_noise",
    "saturation", "telescope", "target", "ra", "dec", "type", "instrument", "wcs",
})


class FrameIssue(NamedTuple):
    """Why one frame was flagged: its label (path), the block, the flag name and a message."""

    frame: str
    block: str
    flag: str
    message: str


@dataclass(frozen=True)
class RunContext:
    """What ``Block.setup`` is told about the coming run (read-only)."""

    n_frames: int | None
    loader: Callable | None
    first: Any = None          # the first item (path or Image), e.g. to learn the frame shape


def _is_image(item) -> bool:
    from ..model.image import Image

    return isinstance(item, Image)


def _label(item, index: int | None = None) -> str:
    """A human label for a frame: its path, or its index when it has none."""
    path = getattr(item, "path", None) if _is_image(item) else item
    if path is not None:
        return str(path)
    return f"frame {index}" if index is not None else "frame"


def _record(image, block_name: str, flag: Flag, message: str) -> None:
    image.flag(flag, message, block=block_name)


def _load(item, loader):
    """Turn a path into an Image with ``loader`` (an Image is returned as it is)."""
    if _is_image(item):
        return item
    if loader is None:
        raise TypeError(f"{item!r} is a path: give run() a loader to read it, e.g. loader=FITSImage")
    return loader(item)


def run_frame(blocks: Iterable[Block], item, loader: Callable | None = None, *,
              fail_fast: bool = False):
    """Load ``item`` (path or Image) and run every non-collector block on it, isolated.

    Returns the Image (never raises for a bad frame unless ``fail_fast``): a rejection sets
    ``image.flags``/``image.issues`` and stops the chain. Per-block wall times (s) are stored in
    ``image.computed['timing']`` as a list aligned with ``blocks`` (``None`` for blocks not run)
    and the load time in ``image.computed['load_seconds']``.
    """
    from ..model.image import Image

    blocks = list(blocks)
    timing: list[float | None] = [None] * len(blocks)
    t0 = time.perf_counter()
    try:
        image = _load(item, loader)
    except Exception as exc:  # a bad file must not end the night
        image = Image(path=str(item))
        _record(image, "loader", Flag.UNREADABLE, _message(exc))
        if not isinstance(exc, FrameRejected):
            log.debug("loading %s failed:\n%s", item, traceback.format_exc())
            if fail_fast:
                raise
        image.computed["timing"] = timing
        image.computed["load_seconds"] = time.perf_counter() - t0
        return image
    image.computed["load_seconds"] = time.perf_counter() - t0 if not _is_image(item) else 0.0
    for i, block in enumerate(blocks):
        if block.collector:
            continue
        t1 = time.perf_counter()
        try:
            block.run(image)
        except FrameRejected as exc:
            timing[i] = time.perf_counter() - t1
            _record(image, block.name, exc.flag, _message(exc))
            break
        except Exception as exc:
            timing[i] = time.perf_counter() - t1
            if fail_fast:
                raise
            log.error("%s: unexpected error in %s: %s\n%s", _label(image), block.name,
                      _message(exc), traceback.format_exc())
            _record(image, block.name, Flag.UNEXPECTED, f"{type(exc).__name__}: {_message(exc)}")
            break
        timing[i] = time.perf_counter() - t1
    image.computed["timing"] = timing
    return image


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def check_chain(blocks: list[Block], provided: Iterable[str] = ()) -> None:
    """Raise ValueError when a block requires a field no earlier block (or the loader) provides."""
    available = set(LOADER_FIELDS) | set(provided)
    for i, block in enumerate(blocks):
        missing = [f for f in block.requires if f not in available]
        if missing:
            raise ValueError(_chain_message(blocks, i, missing))
        available |= set(block.provides)


def _chain_message(blocks: list[Block], i: int, missing: list[str]) -> str:
    block = blocks[i]
    parts = []
    for field in missing:
        later = [f"{b.name} (position {j})" for j, b in enumerate(blocks) if j > i and field in b.provides]
        if later:
            parts.append(f"'{field}' is provided by {', '.join(later)}, which must come before it")
        else:
            parts.append(f"'{field}' is provided by no block of this sequence"
                         + _providers_hint(field))
    return f"{block.name} (position {i}) requires {', '.join(repr(m) for m in missing)}: " + "; ".join(parts)


def _providers_hint(field: str) -> str:
    try:
        from .block import registry

        names = [n for n, cls in registry().items() if field in getattr(cls, "provides", ())]
    except Exception:  # the hint is a courtesy; never fail building the message
        names = []
    return f" (add one of: {', '.join(names)})" if names else ""


@contextmanager
def _no_progress(description: str, total: int | None, show: bool = True):
    """The progress display when none is injected: nothing shown."""
    class _Null:
        def advance(self, n=1):
            pass

    yield _Null()


class Sequence:
    """An ordered, checked chain of blocks; list-like (``seq[-1]``, ``[*seq, ...]``, ``len``).

    Parameters
    ----------
    blocks : iterable of Block
        The chain, in order. Nested Sequences are flattened.
    provided : iterable of str, optional
        Image fields the caller guarantees are set on the inputs beyond what a loader sets.
    name : str, optional
        A label used in progress and log lines.
    """

    #: what ``run`` uses when given paths without a loader, and to show progress: injected by the
    #: package (``reduce/__init__.py`` wires the FITS loader and the console's display) because
    #: this layer imports only :mod:`reduce.model`
    default_loader: ClassVar[Callable | None] = None
    default_progress: ClassVar[Callable | None] = None

    def __init__(self, blocks: Iterable[Block], *, provided: Iterable[str] = (), name: str | None = None):
        flat: list[Block] = []
        for b in blocks:
            if isinstance(b, Sequence):
                flat.extend(b.blocks)
            elif isinstance(b, Block):
                flat.append(b)
            elif isinstance(b, type) and issubclass(b, Block):
                raise TypeError(f"{b.__name__} is a class: put an instance in the Sequence, e.g. {b.__name__}()")
            else:
                raise TypeError(f"a Sequence holds blocks, got {type(b).__name__}: {b!r}")
        self.blocks = flat
        self.provided = tuple(provided)
        self.name = name or "processing"
        check_chain(self.blocks, self.provided)
        self.issues: list[FrameIssue] = []
        self.flagged: dict[str, int] = {}
        self.n_frames = 0
        self.load_seconds = 0.0
        self.loads = 0

    # -- list-like ------------------------------------------------------------------------
    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequence(self.blocks[index], provided=self.provided, name=self.name)
        return self.blocks[index]

    def __iter__(self):
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    def __repr__(self) -> str:
        return f"Sequence([{', '.join(b.name for b in self.blocks)}])"

    def __str__(self) -> str:
        return self.timing_table()

    # -- running --------------------------------------------------------------------------
    def run(self, images_or_paths, loader: Callable | None = None, show_progress: bool = True,
            fail_fast: bool = False, executor=None, progress: Callable | None = None) -> "Sequence":
        """Run the chain on one Image, one path, or an iterable of either; returns ``self``.

        Images are processed in place. Paths are streamed: each frame is loaded, processed,
        stripped of its pixel data and handed to the collectors, so memory does not grow with the
        number of frames. Flagged frames are summarised in the log and kept in ``self.issues``
        and ``self.flagged``.

        ``executor`` (see :mod:`reduce.core.executors`) runs the per-frame chain elsewhere (worker
        processes, a Dask cluster) after every block's ``setup`` ran here; its results are
        collected here in frame order, so the outcome is the same as without one. Images given
        to a non-serial executor are processed as copies (the originals are left unchanged).
        ``loader`` (path -> Image) and ``progress`` (a context manager factory ``(description,
        total, show=)`` yielding an object with ``advance()``) default to the injected ones.
        """
        loader = loader or self.default_loader
        progress = progress or self.default_progress or _no_progress
        items = _as_items(images_or_paths)
        total = len(items) if hasattr(items, "__len__") else None
        iterator = iter(items)
        try:
            first = next(iterator)
        except StopIteration:
            log.warning("%s: nothing to process", self.name)
            return self
        context = RunContext(n_frames=total, loader=loader, first=first)
        for block in self.blocks:
            block.setup(context)
        with progress(self.name, total, show=show_progress) as bar:
            if executor is None:
                index = 0
                for item in _chain_first(first, iterator):
                    self._one(item, index, loader, fail_fast)
                    index += 1
                    bar.advance()
            else:
                for index, image in executor.map_frames(self.blocks, _chain_first(first, iterator),
                                                        loader=loader, fail_fast=fail_fast):
                    self.collect(image, index, fail_fast=fail_fast)
                    bar.advance()
        for block in self.blocks:
            block.finish()
        self._summarise()
        return self

    def _one(self, item, index: int, loader, fail_fast: bool) -> None:
        streamed = not _is_image(item)
        image = run_frame(self.blocks, item, loader, fail_fast=fail_fast)
        if streamed:
            image.data = None
            image.mask = None
            image.cutouts = None
        self.collect(image, index, fail_fast=fail_fast)

    def collect(self, image, index: int | None = None, *, fail_fast: bool = False) -> None:
        """Account a processed frame: timings, issues, then every collector (frame order).

        Executors call this in the parent for each ``run_frame`` result, sorted by index.
        """
        timing = image.computed.get("timing") or []
        for block, dt in zip(self.blocks, timing):
            if dt is not None:
                t = block._timing()
                t["runs"] += 1
                t["seconds"] += dt
        load = image.computed.get("load_seconds")
        if load:
            self.load_seconds += load
            self.loads += 1
        for block in self.blocks:
            if not block.collector:
                continue
            t1 = time.perf_counter()
            try:
                block.run(image)
            except Exception as exc:
                if fail_fast:
                    raise
                log.error("%s: collector %s failed: %s\n%s", _label(image, index), block.name,
                          _message(exc), traceback.format_exc())
                _record(image, block.name, Flag.UNEXPECTED, f"{type(exc).__name__}: {_message(exc)}")
            t = block._timing()
            t["runs"] += 1
            t["seconds"] += time.perf_counter() - t1
        self.n_frames += 1
        label = _label(image, index)
        for blk, flag, message in image.issues:
            self.issues.append(FrameIssue(label, blk, flag, message))
        if image.flags:
            self.flagged[label] = int(image.flags)

    def _summarise(self) -> None:
        if not self.issues:
            log.info("%s: %d frame(s), none flagged", self.name, self.n_frames)
            return
        counts = Counter((i.block, i.flag) for i in self.issues)
        lines = [f"  {n:4d} x {flag} in {block}" for (block, flag), n in counts.most_common()]
        log.warning("%s: %d of %d frame(s) flagged:\n%s", self.name, len(self.flagged), self.n_frames,
                    "\n".join(lines), extra={"in_report": "flagged"})

    # -- timing ---------------------------------------------------------------------------
    def timing(self) -> list[dict]:
        """Per-block wall time: rows {block, runs, seconds, ms_per_frame, fraction} (+ 'load')."""
        rows = []
        if self.loads:
            rows.append({"block": "load", "runs": self.loads, "seconds": self.load_seconds})
        for b in self.blocks:
            t = b._timing()
            rows.append({"block": b.name, "runs": t["runs"], "seconds": t["seconds"]})
        total = sum(r["seconds"] for r in rows) or 1.0
        for r in rows:
            r["ms_per_frame"] = 1e3 * r["seconds"] / r["runs"] if r["runs"] else float("nan")
            r["fraction"] = r["seconds"] / total
        return rows

    def timing_table(self) -> str:
        """The timing rows as an aligned plain-text table."""
        rows = self.timing()
        width = max([len(r["block"]) for r in rows] + [5])
        out = [f"{'block':<{width}}  {'runs':>6}  {'total s':>9}  {'ms/frame':>9}  {'share':>6}"]
        for r in rows:
            out.append(f"{r['block']:<{width}}  {r['runs']:>6d}  {r['seconds']:>9.3f}  "
                       f"{r['ms_per_frame']:>9.2f}  {100 * r['fraction']:>5.1f}%")
        return "\n".join(out)


def _as_items(x):
    """One Image / path, or an iterable of them, as an iterable of items."""
    if _is_image(x) or isinstance(x, (str, bytes, os.PathLike)):
        return [x]
    if isinstance(x, Iterable):
        return x
    raise TypeError(f"run() takes an Image, a path or an iterable of them, not {type(x).__name__}")


def _chain_first(first, rest):
    yield first
    yield from rest
