"""Atomic file writes: a product is either the complete new file or the previous one, never half.

A set of products (a group's tables, figures and provenance) is written into a hidden staging
folder first and moved into place only when every file of the set is complete (:class:`OutputSet`),
so a failure half way leaves the whole previous set, not a new table next to an old one.

The data goes to a temporary file in the destination's directory (same file system), is flushed
and fsynced, then ``os.replace`` renames it over the destination (atomic on POSIX and Windows).
On any failure the temporary file is removed and the destination is left untouched.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..model.errors import ReduceError

__all__ = ["OutputError", "OutputSet", "atomic_write", "atomic_write_bytes", "atomic_write_text"]

_UMASK: int | None = None
# errors of writing the temporary file itself: reported as OutputError, whoever's write met them
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


class OutputError(ReduceError):
    """An output file could not be written (the previous version, if any, is intact)."""

    exit_code = 1


def _default_mode() -> int:
    """Permissions a plain ``open(path, 'w')`` would give (mkstemp makes 0600 files)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _why(e: OSError) -> str:
    return e.strerror or str(e)


@contextmanager
def atomic_write(path, mode: str = "w", *, encoding: str = "utf-8", newline: str | None = "\n"):
    """Open a temporary file to write ``path`` atomically; yields the open file object.

    ``mode`` is ``'w'`` (text, ``encoding``, ``newline``) or ``'wb'``. The destination directory
    must exist. Failures of our own file operations raise :class:`OutputError`; an exception raised
    by the caller inside the ``with`` block propagates unchanged. Either way nothing is left behind.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise OutputError(f"cannot write {path}: directory {directory} does not exist") from None
    except PermissionError:
        raise OutputError(f"cannot write {path}: directory {directory} is not writable") from None
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from None
    try:
        kwargs = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        try:
            with os.fdopen(fd, mode, **kwargs) as f:
                yield f
                _flush(f, path)
        except OSError as e:  # the disk filled up (also when the caller's writer hit it, e.g. a PNG)
            if e.errno in _WRITE_ERRNOS:
                raise OutputError(f"cannot write {path}: {_why(e)}") from None
            raise
        _commit(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def _flush(f, path: Path) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from e


def _commit(tmp: str, path: Path) -> None:
    """Give the temp file the destination's permissions and rename it over the destination."""
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else _default_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from e
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Persist the rename itself (best effort; not possible on every platform)."""
    try:
        fd = os.open(directory if str(directory) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - nothing more we can do
        pass


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as f:
        _write(f, data, path)
    return Path(path)


def atomic_write_text(path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (``\\n`` line endings); returns the path."""
    with atomic_write(path, "w", encoding=encoding) as f:
        _write(f, text, path)
    return Path(path)


def _write(f, data, path) -> None:
    try:
        f.write(data)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from e


class OutputSet:
    """Files of one product set, written into ``outdir/.<stem>.staging.tmp/`` (same file system)
    and moved into ``outdir`` together by :meth:`commit`, only once all are written.

    A failure before the commit (disk full, an error in a late step) leaves every previous output
    untouched: :meth:`discard` removes the staging folder, as does the next run if this one was
    killed. The commit itself is only renames (each atomic).
    """

    def __init__(self, outdir, stem: str):
        self.outdir = Path(outdir)
        self.dir = self.outdir / staging_name(stem)
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
            if self.dir.exists() or self.dir.is_symlink():
                self.discard()
            self.dir.mkdir()
        except OSError as e:
            raise OutputError(f"cannot write to the output folder {self.outdir}: {_why(e)}") from None

    def path(self, name: str) -> Path:
        """Where to write the product ``name`` (a bare file name) before the commit."""
        return self.dir / name

    def commit(self, staged) -> list[Path]:
        """Move the ``staged`` files into the output folder (keeping an existing file's permissions);
        returns their final paths, in the same order."""
        final = []
        for p in map(Path, staged):
            dest = self.outdir / p.name
            try:
                if dest.exists():
                    os.chmod(p, dest.stat().st_mode & 0o7777)
                os.replace(p, dest)
            except OSError as e:
                raise OutputError(f"cannot write {dest}: {_why(e)}") from None
            final.append(dest)
        _sync_directory(self.outdir)
        self.discard()
        return final

    def discard(self) -> None:
        """Remove the staging folder and whatever it holds (the previous outputs stay)."""
        if self.dir.is_symlink():
            self.dir.unlink()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def staging_name(stem: str) -> str:
    """The staging folder of a product set (hidden; removed by the next run if left behind)."""
    return f".{stem}.staging.tmp"
