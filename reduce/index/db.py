"""The persistent SQLite index of a night: one row per file, keyed by absolute path.

WAL journal + busy timeout let two scans run at once without corrupting anything (each commits
small batches; the last writer wins with identical content). All SQL is parameterised. The
default location is ``NIGHT/.reduce/index.sqlite``, or a per-user cache file when the night folder
is read-only (a mounted archive).
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Iterable, Iterator

from .headers import FRAME_FIELDS, FrameInfo

__all__ = ["Index", "default_index_path", "cache_index_path", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
BATCH = 2000

# file identity + status, then every FrameInfo field except 'path'
_INFO_COLUMNS = [f for f in FRAME_FIELDS if f != "path"]
COLUMNS = ["path", "size", "mtime_ns", "error"] + _INFO_COLUMNS
_TYPES = {"size": "INTEGER", "mtime_ns": "INTEGER", "hdu": "INTEGER", "width": "INTEGER",
          "height": "INTEGER", "bitpix": "INTEGER", "exptime": "REAL", "jd": "REAL", "ra": "REAL",
          "dec": "REAL", "airmass": "REAL", "gain": "REAL", "read_noise": "REAL",
          "saturation": "REAL", "bzero": "REAL", "latitude": "REAL", "longitude": "REAL",
          "elevation": "REAL", "time_resolution": "REAL"}


def writable_dir(path: Path) -> bool:
    """True when ``path`` is a directory we may write into.

    The owner-write permission bit is honoured even for root, so a folder marked read-only
    (``chmod a-w``, as archives are) is left untouched by everyone.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_IWUSR) \
        and os.access(path, os.W_OK | os.X_OK)


def cache_index_path(night) -> Path:
    """Per-user cache location: ``<hash of the night path>.sqlite`` in the platform's user cache
    folder (``$XDG_CACHE_HOME/reduce``, by default ``~/.cache/reduce``, on Linux)."""
    from platformdirs import user_cache_path

    digest = hashlib.sha1(os.path.abspath(os.fspath(night)).encode()).hexdigest()[:16]
    return user_cache_path("reduce", appauthor=False) / f"{digest}.sqlite"


def default_index_path(night) -> Path:
    """``NIGHT/.reduce/index.sqlite`` when that can be written, else :func:`cache_index_path`."""
    night = Path(os.path.abspath(os.fspath(night)))
    folder = night / ".reduce"
    target = folder / "index.sqlite"
    if folder.is_dir():
        if writable_dir(folder) and (not target.exists() or os.access(target, os.W_OK)):
            return target
    elif writable_dir(night):
        return target
    return cache_index_path(night)


def _refuse_links(path: Path) -> None:
    """An index (or its journal) that is a symbolic link is refused, never followed: a link planted
    in ``.reduce/`` (even a dangling one) would otherwise make a scan create a database anywhere."""
    from ..model.errors import ReduceError

    suspects = [Path(str(path) + s) for s in ("", "-wal", "-shm")]
    if path.parent.name == ".reduce":
        suspects.append(path.parent)
    for p in suspects:
        if p.is_symlink():
            raise ReduceError(f"{p} is a symbolic link; refusing to follow it "
                              "(remove the link and run again)")


class Index:
    """One SQLite index file; rows are :data:`COLUMNS` (``error`` set for unreadable files)."""

    def __init__(self, path, *, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = timeout
        if str(path) != ":memory:":
            _refuse_links(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            if "not a database" not in str(e) and "malformed" not in str(e):
                raise OSError(f"cannot use the index {self.path}: {e}") from None
            # the index is only a cache of headers: rebuild it rather than fail the scan
            log.warning("index %s is corrupt (%s); rebuilding it", self.path, e)
            self.con.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            try:
                self._open()
            except sqlite3.Error as e2:
                raise OSError(f"cannot use the index {self.path}: {e2}") from None

    def _open(self) -> None:
        self.con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        self.con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        self._execute_retry("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = NORMAL")
        self._create()

    def _execute_retry(self, sql: str):
        """Run a statement that may meet a lock before busy_timeout applies (journal mode)."""
        import time
        for attempt in range(100):
            try:
                return self.con.execute(sql)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 99:
                    raise
                time.sleep(0.05)

    def _create(self):
        cols = ", ".join(f'"{c}" {_TYPES.get(c, "TEXT")}' for c in COLUMNS[1:])
        self.con.execute("BEGIN IMMEDIATE")
        try:
            self.con.execute(f'CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, {cols})')
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                self.con.execute("DROP TABLE files")
                self.con.execute(f'CREATE TABLE files (path TEXT PRIMARY KEY, {cols})')
                self.con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ rows
    def rows_under(self, root: str) -> dict[str, tuple]:
        """Every row whose path lies under folder ``root`` (absolute), keyed by path."""
        root = root.rstrip(os.sep)
        lo, hi = root + os.sep, root + chr(ord(os.sep) + 1)
        sql = f'SELECT {", ".join(chr(34) + c + chr(34) for c in COLUMNS)} FROM files WHERE path >= ? AND path < ?'
        return {row[0]: row for row in self.con.execute(sql, (lo, hi))}

    def write(self, rows: Iterable[tuple], *, delete: Iterable[str] = ()) -> None:
        """Insert or replace ``rows`` (full :data:`COLUMNS` tuples) and delete paths, in batches."""
        sql = f'INSERT OR REPLACE INTO files VALUES ({", ".join("?" * len(COLUMNS))})'
        for chunk in _chunks(rows, BATCH):
            self._transaction(lambda c=chunk: self.con.executemany(sql, c))
        for chunk in _chunks(((p,) for p in delete), BATCH):
            self._transaction(lambda c=chunk: self.con.executemany("DELETE FROM files WHERE path = ?", c))

    def _transaction(self, fn) -> None:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            fn()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def row_from_info(info: FrameInfo, size: int, mtime_ns: int) -> tuple:
    """The index row of a readable file."""
    return (info.path, size, mtime_ns, None) + tuple(getattr(info, c) for c in _INFO_COLUMNS)


def row_from_error(path: str, size: int, mtime_ns: int, reason: str) -> tuple:
    """The index row of an unreadable file (``error`` holds the reason)."""
    return (path, size, mtime_ns, reason) + (None,) * len(_INFO_COLUMNS)


def info_from_row(row: tuple) -> FrameInfo:
    """Rebuild a :class:`FrameInfo` from a readable file's row."""
    return FrameInfo(row[0], *row[4:])
