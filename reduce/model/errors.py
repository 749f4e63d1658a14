"""Exceptions of reduce and the one table of exit statuses the CLI returns.

``ReduceError`` and its subclasses are expected errors (the CLI prints the message, never a
traceback; ``exit_code`` is the status); ``FrameRejected`` subclasses stop one frame's chain and
carry the flag its row gets.
"""
from __future__ import annotations

from .flags import Flag

__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_PARTIAL", "EXIT_LOCKED",
    "ReduceError", "ConfigError", "RecipeError", "UsageError",
    "ExecutorError", "ClusterUnavailable", "FrameRejected", "Unreadable", "NoSources", "AlignmentFailed",
    "PSFFailed",
]

#: exit statuses: success (or nothing new), failed, usage/recipe error, partial (some frames,
#: groups or nights skipped), locked (every night is being reduced by another run)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED = 0, 1, 2, 3, 4


class ReduceError(Exception):
    """Base of every expected error: the CLI prints its message, never a traceback."""

    exit_code = EXIT_FAILED


class UsageError(ReduceError):
    """Bad command-line input (exit status 2)."""

    exit_code = EXIT_USAGE


class ConfigError(ReduceError):
    """The instrument configuration file is invalid (exit status 2)."""

    exit_code = EXIT_USAGE


class RecipeError(ReduceError):
    """The recipe is invalid; ``messages`` holds every ``file:line: message`` found."""

    exit_code = EXIT_USAGE

    def __init__(self, messages):
        if isinstance(messages, str):
            messages = [messages]
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class ExecutorError(ReduceError):
    """The parallel machinery itself failed (a worker died, the cluster went away)."""

    exit_code = EXIT_FAILED


class ClusterUnavailable(ExecutorError):
    """The cluster cannot be reached: the run stops (every group would fail the same way)."""


class FrameRejected(Exception):
    """Raised by a block to stop one frame's chain; the frame keeps its row, flagged."""

    flag = Flag.UNEXPECTED


class Unreadable(FrameRejected):
    flag = Flag.UNREADABLE


class NoSources(FrameRejected):
    flag = Flag.NO_SOURCES


class AlignmentFailed(FrameRejected):
    flag = Flag.ALIGNMENT_FAILED


class PSFFailed(FrameRejected):
    """The frame's PSF (its FWHM, which scales the apertures) could not be measured."""

    flag = Flag.NO_PSF
