"""The one rich Console of the CLI: tables and progress on a TTY, plain timestamped lines otherwise.

Science code never imports this module (it logs through ``logging``); the CLI and the Sequence's
progress display do.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["get_console", "is_interactive", "progress", "setup_logging", "check_output_file", "safe_text",
           "safe_markup"]

_console = None


def is_interactive() -> bool:
    """True when stderr is a terminal and we are not under CI (progress bars make sense)."""
    if os.environ.get("REDUCE_NO_PROGRESS"):
        return False
    try:
        return sys.stderr.isatty()
    except Exception:
        return False


def get_console(stderr: bool = False):
    """The shared rich Console (stdout), or a stderr one for diagnostics."""
    global _console
    from rich.console import Console

    if stderr:
        return Console(stderr=True, highlight=False)
    if _console is None or _console.file is not sys.stdout:
        _console = Console(highlight=False, soft_wrap=False)
    return _console


class _PlainProgress:
    """Progress stand-in without a TTY: one line at start and one at the end."""

    def __init__(self, description, total):
        self.description, self.total, self.done = description, total, 0
        self.t0 = time.perf_counter()
        logging.getLogger("reduce").info("%s: %s items", description, total if total is not None else "?")

    def advance(self, n=1):
        self.done += n

    def close(self):
        dt = time.perf_counter() - self.t0
        rate = self.done / dt if dt > 0 else float("nan")
        logging.getLogger("reduce").info("%s: %d done in %.1f s (%.1f/s)", self.description,
                                         self.done, dt, rate)


class _RichProgress:
    def __init__(self, description, total, unit):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn(),
                           console=get_console(stderr=True), transient=False)
        self._p.start()
        self._task = self._p.add_task(description, total=total, rate="")
        self._unit = unit

    def advance(self, n=1):
        task = self._p.tasks[0]
        speed = task.speed
        self._p.update(self._task, advance=n,
                       rate=f"{speed:6.1f} {self._unit}/s" if speed else "")

    def close(self):
        self._p.stop()


@contextmanager
def progress(description: str, total: int | None, show: bool = True, unit: str = "frames"):
    """A progress display: a rich bar on a TTY, plain log lines otherwise, nothing if not ``show``."""
    if not show:
        class _Null:
            def advance(self, n=1):
                pass
        yield _Null()
        return
    bar = _RichProgress(description, total, unit) if is_interactive() else _PlainProgress(description, total)
    try:
        yield bar
    finally:
        bar.close()


_GROUP = threading.local()


@contextmanager
def group_context(name: str):
    """Within it, this thread's log lines are prefixed by ``name`` (unless they start with it):
    groups reduced at once in threads interleave their lines."""
    previous = getattr(_GROUP, "name", None)
    _GROUP.name = name
    try:
        yield
    finally:
        _GROUP.name = previous


def current_group() -> str | None:
    """The group whose reduction this thread is in (see :func:`group_context`), or None."""
    return getattr(_GROUP, "name", None)


class _GroupPrefix(logging.Filter):
    """Sets ``record.group_prefix`` ('' or 'GROUP: ') for the handlers' format, and escapes the
    control characters of the message (header values and file names end up in log lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = safe_text(message, lines=True)
        if escaped != message:
            record.msg, record.args = escaped, None
        name = getattr(_GROUP, "name", None)
        record.group_prefix = f"{name}: " if name and not record.getMessage().startswith(name) else ""
        return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(value, *, lines: bool = False) -> str:
    """``value`` as text with control characters shown as ``\\xNN`` escapes: header values and file
    names (ESC sequences, BEL, NUL, CR) must never reach a terminal raw. ``lines`` keeps newlines
    and tabs (multi-line log messages)."""
    text = str(value)
    pattern = _CONTROL_KEEP_LINES if lines else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe_markup(value) -> str:
    """:func:`safe_text` also escaped for rich markup (``[red]`` in a name is shown, not applied)."""
    from rich.markup import escape

    return escape(safe_text(value))


def check_output_file(path, option: str) -> None:
    """UsageError unless ``path`` (an option's file, e.g. ``--summary-json``) can be written: its
    folder exists and is writable (by the permission bits, so a read-only folder is refused even to
    root), and it is not a folder itself. Checked before a run starts, not after the reduction."""
    import stat
    from pathlib import Path

    from .model.errors import UsageError

    if not path:
        return
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        st = folder.stat()
    except OSError:
        raise UsageError(f"{option}: folder {folder} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{option}: {folder} is not a folder")
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder, expected a file name")
    if not (st.st_mode & 0o222) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: folder {folder} is not writable")
    if path.exists() and (not (path.stat().st_mode & 0o222) or not os.access(path, os.W_OK)):
        raise UsageError(f"{option}: {path} is not writable")


def setup_logging(verbosity: int = 0, log_file: str | None = None) -> None:
    """Configure the ``reduce`` logger: rich handler on a TTY, timestamped plain lines otherwise.

    ``verbosity`` (-1 quiet: warnings; 0: info; 1: debug) sets the console's level only: a
    ``log_file`` always receives INFO and above (DEBUG with -v), so ``-q --log-file`` keeps a log.
    """
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    file_level = min(level, logging.INFO)
    logger = logging.getLogger("reduce")
    logger.setLevel(file_level if log_file else level)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    plain = "%(asctime)s %(levelname)s %(group_prefix)s%(message)s"
    if is_interactive():
        from rich.logging import RichHandler
        handler = RichHandler(console=get_console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(group_prefix)s%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(plain, "%Y-%m-%dT%H:%M:%S"))
    handler.setLevel(level)
    handlers = [handler]
    if log_file:
        check_output_file(log_file, "--log-file")
        try:
            fh = logging.FileHandler(log_file)
        except OSError as e:
            from .model.errors import UsageError

            raise UsageError(f"--log-file: cannot open {log_file}: {e.strerror or e}") from None
        fh.setFormatter(logging.Formatter(plain, "%Y-%m-%dT%H:%M:%S"))
        fh.setLevel(file_level)
        handlers.append(fh)
    for h in handlers:
        h.addFilter(_GroupPrefix())
        logger.addHandler(h)
    logger.propagate = False
