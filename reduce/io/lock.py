"""One run at a time per night: an exclusive ``fcntl.flock`` on ``<night>/.reduce/run.lock``.

The OS releases a flock when its holder dies (even on SIGKILL), so a lock left by a killed run is
simply taken over by the next one; the holder's pid, host, boot id and start time are written in
the file for the "who holds it" message. A lock file still locked although its recorded holder is
gone (its pid is dead on this boot, e.g. orphaned worker processes keep the descriptor) is stale:
it is replaced by a fresh file. Locks are never inherited by forked worker processes.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..model.errors import EXIT_LOCKED, ReduceError

__all__ = ["NightLock", "LockedError", "lock_path_for", "state_dir_for", "refuse_symlink"]

log = logging.getLogger("reduce.lock")

_HELD: set[int] = set()
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def refuse_symlink(path, what: str) -> None:
    """Raise ReduceError when ``path`` is a symbolic link: files in ``.reduce/`` are never followed
    (a link planted there could make a run truncate or create a file anywhere)."""
    if os.path.islink(path):
        raise ReduceError(f"{what} {path} is a symbolic link; refusing to follow it "
                          "(remove the link and run again)")


class LockedError(ReduceError):
    """Another ``reduce run`` is working on this night right now."""

    exit_code = EXIT_LOCKED


def _close_in_child() -> None:
    """After fork: drop the child's copies of held lock descriptors (never LOCK_UN: that would
    release the parent's lock too)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def boot_id() -> str:
    """This boot's identity (Linux), so a pid recorded before a reboot is not mistaken as alive."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def state_dir_for(night) -> Path:
    """``NIGHT/.reduce`` when writable (like the index), else a per-user cache folder."""
    from ..index.db import cache_index_path, default_index_path

    index = default_index_path(night)
    if index.parent.name == ".reduce" and index.parent.parent == Path(os.path.abspath(os.fspath(night))):
        return index.parent
    return cache_index_path(night).with_suffix("")


def lock_path_for(night, state_dir=None) -> Path:
    """``<state folder>/run.lock`` (the state folder is ``NIGHT/.reduce`` or a per-user cache)."""
    if state_dir is None:
        state_dir = state_dir_for(night)
    return Path(state_dir) / "run.lock"


class NightLock:
    """Context manager holding the run lock of one night; raises :class:`LockedError` if busy."""

    def __init__(self, path, *, night=None):
        self.path = Path(path)
        self.night = str(night) if night is not None else str(self.path.parent.parent)
        self.fd: int | None = None
        self.took_over: dict | None = None

    def acquire(self) -> "NightLock":
        import fcntl

        for attempt in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                refuse_symlink(self.path.parent, "the state folder")
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    refuse_symlink(self.path, "the run lock")
                raise ReduceError(f"cannot create the run lock {self.path}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read(fd)
                inode = os.fstat(fd).st_ino
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise ReduceError(f"cannot lock {self.path}: {e.strerror or e}") from None
                if _stale(holder) and attempt < 2:
                    log.warning("%s: lock held by pid %s, which is no longer running: taking it over",
                                self.night, holder.get("pid"))
                    self.took_over = holder
                    _unlink_if(self.path, inode)
                    continue
                raise LockedError(_busy_message(self.night, holder, self.path)) from None
            if _same_file(fd, self.path):
                previous = _read(fd)
                if previous.get("pid") and previous.get("pid") != os.getpid():
                    log.info("%s: previous run (pid %s) ended without releasing its lock: taken over",
                             self.night, previous.get("pid"))
                    self.took_over = previous
                try:
                    _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot_id(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "night": self.night})
                except OSError as e:  # a full disk: the lock is not taken, nothing else written
                    os.close(fd)
                    raise ReduceError(f"cannot write the run lock {self.path}: {e.strerror or e}") from None
                self.fd = fd
                _HELD.add(fd)
                return self
            os.close(fd)  # replaced meanwhile by a stale-lock takeover: lock the new file
        raise LockedError(f"could not lock {self.night} ({self.path}): it keeps changing; "
                          "is another run starting?")

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        _HELD.discard(fd)
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


def _write(fd: int, info: dict) -> None:
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def _unlink_if(path: Path, inode: int) -> None:
    """Remove the lock file only if it is still the one we inspected."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def _stale(holder: dict) -> bool:
    """The recorded holder is on this host and boot, and its process is gone."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return False
    if holder.get("boot_id") and holder.get("boot_id") != boot_id():
        return True
    return not _alive(pid)


def _busy_message(night: str, holder: dict, path: Path) -> str:
    who = f"pid {holder['pid']}" if holder.get("pid") else "another process"
    if holder.get("host"):
        who += f" on {holder['host']}"
    since = f" since {holder['started']}" if holder.get("started") else ""
    return (f"{night} is being reduced by {who}{since}; not starting a second run "
            f"(lock: {path}; exit status {EXIT_LOCKED})")
