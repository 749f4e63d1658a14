"""``FitsManager``: scan a night folder into the persistent index and select frames from it.

The scan walks the folder with ``os.scandir`` (hidden folders such as ``.reduce`` are skipped),
compares each file's (size, mtime_ns) with the index in one SELECT, reads only new or changed
headers, writes them in batched transactions and drops rows of files that disappeared.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from ..config import Config, load_config
from .calibration import CalibrationMatch, match_calibration
from .db import Index, default_index_path, info_from_row, row_from_error, row_from_info
from ..io.fits import NotAnImage, OwnProduct, UnreadableFile, is_fits_name
from .groups import Group, group_frames, groups_table, link_nights, render_table
from .headers import FrameInfo, frame_info

__all__ = ["FitsManager", "ScanStats", "walk", "being_written", "PARSER_VERSION", "WRITING_S"]

log = logging.getLogger(__name__)

#: bump when header interpretation changes, so existing indexes are re-read
PARSER_VERSION = "6"
#: prefix of the ``error`` column for valid FITS files that are not images (tables, cubes): skipped
SKIP = "skip: "
#: prefix of the ``error`` column for reduce's own light-curve products: ignored
PRODUCT = "product: "
#: s: a file that looks cut short (empty, no END card, data short of its header) is taken as still
#: being written for this long after its last change; after that it is reported as unreadable
WRITING_S = 60.0
#: the reasons of a file cut short (see :mod:`reduce.io.fits`)
_CUT_SHORT = ("truncated", "empty file", "header has no END card", "no image data (header only)")


@dataclass
class ScanStats:
    """What one scan did: files seen, (re-)read, unchanged, removed, unreadable, skipped (tables)."""

    seen: int = 0
    read: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: int = 0
    skipped: int = 0
    pending: int = 0
    index: str = ""
    extra: dict = field(default_factory=dict)


def walk(root: str, depth: int | None = None,
         folder_errors: list | None = None) -> Iterable[tuple[str, int, int, str | None]]:
    """Yield (path, size, mtime_ns, error) for FITS-named files under ``root``.

    ``depth`` counts sub-folder levels below ``root`` (0: only ``root`` itself; None: all).
    Hidden folders are skipped; symlinked folders are followed once (no loops). Folders that
    cannot be listed are appended to ``folder_errors`` as (path, reason).
    """
    stack = [(root, 0)]
    visited = set()
    while stack:
        folder, level = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in visited:
                continue
            visited.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError as e:
            log.warning("cannot list %s: %s", folder, e.strerror or e)
            if folder_errors is not None:
                folder_errors.append((folder, f"cannot list folder: {e.strerror or e}"))
            continue
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not name.startswith(".") and (depth is None or level < depth):
                    stack.append((entry.path, level + 1))
                continue
            if not is_fits_name(name):
                continue
            try:
                s = entry.stat()
                yield entry.path, s.st_size, s.st_mtime_ns, None
            except OSError as e:
                yield entry.path, -1, 0, "cannot stat: " + (e.strerror or str(e))


def _fingerprint(config: Config) -> str:
    """Changes when the configuration or the header interpretation changes."""
    text = repr((PARSER_VERSION, config.instruments, config.default))
    return hashlib.sha1(text.encode()).hexdigest()


def _read_one(path: str, size: int, mtime_ns: int, config: Config) -> tuple:
    """Index row for one file; unreadable and unexpected failures become error rows."""
    try:
        return row_from_info(frame_info(path, config), size, mtime_ns)
    except OwnProduct as e:
        return row_from_error(path, size, mtime_ns, PRODUCT + str(e))
    except NotAnImage as e:
        return row_from_error(path, size, mtime_ns, SKIP + str(e))
    except UnreadableFile as e:
        return row_from_error(path, size, mtime_ns, str(e))
    except Exception as e:  # a scan never crashes on one bad file
        log.debug("unexpected error reading %s", path, exc_info=True)
        return row_from_error(path, size, mtime_ns, f"unexpected error: {type(e).__name__}: {e}")


def being_written(size: int, mtime_ns: int, error: str | None, now_ns: int | None = None) -> bool:
    """True for a file that may still be being written: cut short (empty, no END card, data short
    of what its header declares) and changed less than :data:`WRITING_S` ago (a clock ahead by
    more is not trusted). A file whose FITS structure is complete is measured at once, however
    recent: a camera or a copy that writes it again later gets it measured again."""
    if error is None or size < 0 or not error.startswith(_CUT_SHORT):
        return False
    age = ((time.time_ns() if now_ns is None else now_ns) - mtime_ns) / 1e9
    return -WRITING_S < age < WRITING_S


def scan_folder(root: str, *, depth: int | None, index: Index, config: Config,
                show_progress: bool = False) -> tuple[list[FrameInfo], list, list, ScanStats]:
    """Bring ``index`` up to date for ``root``; return (frames, unreadable, skipped, stats).

    ``unreadable`` (including folders that cannot be listed) and ``skipped`` (valid FITS
    without a 2-D image: tables, cubes) are sorted (path, reason) pairs; reduce's own
    light-curve products are in neither, nor the files still being written
    (:func:`being_written`: ``stats.extra['pending']`` lists them; a later scan takes them).
    """
    stats = ScanStats(index=str(index.path))
    known = index.rows_under(root)
    fingerprint = _fingerprint(config)
    stale = index.get_meta("fingerprint") != fingerprint
    rows, todo, fresh, folder_errors = {}, [], [], []
    for path, size, mtime_ns, error in walk(root, depth, folder_errors):
        stats.seen += 1
        if error is not None:
            rows[path] = row_from_error(path, size, mtime_ns, error)
            fresh.append(rows[path])
            continue
        old = known.get(path)
        if old is not None and not stale and old[1] == size and old[2] == mtime_ns:
            rows[path] = old
        else:
            todo.append((path, size, mtime_ns))
    if todo:
        from ..console import progress
        with progress("Reading headers", len(todo), show=show_progress, unit="files") as bar:
            for item in todo:
                row = _read_one(*item, config)
                rows[row[0]] = row
                fresh.append(row)
                bar.advance()
    stats.read = len(fresh)
    stats.unchanged = stats.seen - stats.read
    sep = os.sep
    base = len(root.rstrip(sep)) + 1
    gone = [p for p in known if p not in rows and (depth is None or p[base:].count(sep) <= depth)]
    stats.removed = len(gone)
    if fresh or gone or stale:
        index.write(fresh, delete=gone)
        if stale:
            index.set_meta("fingerprint", fingerprint)
    frames, unreadable, skipped, pending = [], [], [], []
    now = time.time_ns()
    for row in rows.values():
        if being_written(row[1], row[2], row[3], now):
            pending.append(row[0])
        elif row[3] is None:
            frames.append(info_from_row(row))
        elif row[3].startswith(SKIP):
            skipped.append((row[0], row[3][len(SKIP):]))
        elif not row[3].startswith(PRODUCT):
            unreadable.append((row[0], row[3]))
    unreadable.extend(folder_errors)
    frames.sort(key=lambda f: (f.jd if f.jd is not None else float("inf"), f.path))
    unreadable.sort()
    skipped.sort()
    stats.unreadable, stats.skipped, stats.pending = len(unreadable), len(skipped), len(pending)
    if pending:
        stats.extra["pending"] = sorted(pending)
        log.info("%d file(s) still being written (cut short, changed in the last %g s): left for the "
                 "next pass", len(pending), WRITING_S)
    return frames, unreadable, skipped, stats


def _match(value: str, wanted) -> bool:
    if wanted is None:
        return True
    options = [wanted] if isinstance(wanted, str) else list(wanted)
    return value.strip().lower() in {str(o).strip().lower() for o in options}


class FitsManager:
    """The frames of a night folder, indexed incrementally in SQLite.

    Parameters
    ----------
    folder : path of the night folder.
    depth : sub-folder levels to descend (0: the folder only; None: unlimited).
    index : SQLite index file (default ``folder/.reduce/index.sqlite``, or a per-user cache file
        when the folder is read-only; ``":memory:"`` keeps nothing).
    config : a :class:`~reduce.config.Config`, a YAML path, or None for the standard location.
    show_progress : show a progress bar while headers are read.

    Examples
    --------
    >>> fm = FitsManager("night", depth=2)           # doctest: +SKIP
    >>> fm.files(type="light", filter="V")           # doctest: +SKIP
    """

    def __init__(self, folder, depth: int | None = None, *, index=None, config=None,
                 show_progress: bool = False):
        root = os.path.abspath(os.fspath(folder))
        if not os.path.exists(root):
            raise FileNotFoundError(f"{folder}: no such folder")
        if not os.path.isdir(root):
            raise NotADirectoryError(f"{folder}: not a folder")
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, got {depth}")
        self.folder = root
        self.depth = depth
        self.config = config if isinstance(config, Config) else load_config(config)
        self.index_path = str(index) if index is not None else str(default_index_path(root))
        self.show_progress = show_progress
        self.scan()

    def scan(self) -> ScanStats:
        """(Re-)scan the folder, updating the index; returns what was done."""
        with Index(self.index_path) as idx:
            self._frames, self._unreadable, self._skipped, self.stats = scan_folder(
                self.folder, depth=self.depth, index=idx, config=self.config,
                show_progress=self.show_progress)
        self._frames = link_nights(self._frames)  # a series of frames is one night
        self._groups = None
        return self.stats

    # ------------------------------------------------------------ selection
    def frames(self, type=None, target=None, filter=None, telescope=None, night=None) -> list[FrameInfo]:
        """Readable frames matching every given criterion (case-insensitive), sorted by time.

        Each criterion may be one value or a list; ``night`` is ``'YYYY-MM-DD'`` or a date.
        """
        if isinstance(night, date):
            night = night.isoformat()
        return [f for f in self._frames
                if _match(f.type, type) and _match(f.target, target) and _match(f.filter, filter)
                and _match(f.telescope, telescope) and _match(f.night or "", night)]

    def files(self, type=None, target=None, filter=None, telescope=None, night=None) -> list[str]:
        """Paths of :meth:`frames` with the same criteria."""
        return [f.path for f in self.frames(type=type, target=target, filter=filter,
                                            telescope=telescope, night=night)]

    @property
    def all_images(self) -> list[str]:
        """Light frames, sorted by time."""
        return self.files(type="light")

    @property
    def all_darks(self) -> list[str]:
        return self.files(type="dark")

    @property
    def all_bias(self) -> list[str]:
        return self.files(type="bias")

    @property
    def all_flats(self) -> list[str]:
        return self.files(type="flat")

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        """(path, reason) of every file (or folder) that could not be read."""
        return list(self._unreadable)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of valid FITS files without a 2-D image (tables, cubes); reduce's own
        light-curve products are not listed."""
        return list(self._skipped)

    def groups(self, type=None) -> list[Group]:
        """Observation groups (see :mod:`reduce.index.groups`), optionally of one type."""
        if self._groups is None:
            self._groups = group_frames(self._frames)
        return [g for g in self._groups if _match(g.type, type)]

    def light_groups(self) -> list[Group]:
        return self.groups(type="light")

    def calibration_for(self, group: Group) -> CalibrationMatch:
        """Bias, darks and flats for ``group`` with the reasons for each choice."""
        return match_calibration(group, self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    def table(self):
        """The rich Table of groups."""
        return groups_table(self.groups())

    def __repr__(self) -> str:
        if not self._frames:
            return f"FitsManager({self.folder!r}): no readable FITS files"
        return render_table(self.table())
