"""Exceptions and the per-frame quality flag registry shared by every producer.

Flags are bit masks (BANZAI/photutils style): a frame's ``flag`` column is the OR of the
reasons it was set aside or doubted. ``decode_flags`` turns a value back into names.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

__all__ = [
    "Flag", "FLAG_DESCRIPTIONS", "decode_flags",
    "ReduceError", "ConfigError", "RecipeError", "UsageError",
    "ExecutorError", "ClusterUnavailable", "FrameRejected", "Unreadable", "NoSources", "AlignmentFailed",
    "TargetSaturated", "TargetNearEdge", "CentroidRanAway", "FrameWarning",
]


class Flag(IntFlag):
    """Per-frame quality bits written in the light-curve ``flag`` column."""

    NONE = 0
    UNREADABLE = 1
    NO_SOURCES = 2
    ALIGNMENT_FAILED = 4
    TARGET_SATURATED = 8
    TARGET_NEAR_EDGE = 16
    CENTROID_RAN_AWAY = 32
    OUTLIER_REJECTED = 64
    UNEXPECTED = 128


FLAG_DESCRIPTIONS = {
    Flag.UNREADABLE: "the file could not be read as a FITS image",
    Flag.NO_SOURCES: "no (or too few) stars were detected",
    Flag.ALIGNMENT_FAILED: "no method (asterisms, voted translation, one star, cross-correlation) placed the frame",
    Flag.TARGET_SATURATED: "the target's peak reached the saturation level",
    Flag.TARGET_NEAR_EDGE: "the target aperture touches the frame edge",
    Flag.CENTROID_RAN_AWAY: "a centroid moved too far; the predicted position was kept",
    Flag.OUTLIER_REJECTED: "rejected as an outlier by sigma clipping",
    Flag.UNEXPECTED: "an unexpected error (see the log)",
}


def decode_flags(value: int) -> list[str]:
    """Names of the bits set in ``value`` (e.g. ``['NO_SOURCES']``)."""
    return [f.name for f in Flag if f and int(value) & f]


class ReduceError(Exception):
    """Base of every expected error: the CLI prints its message, never a traceback."""

    exit_code = 1


class UsageError(ReduceError):
    """Bad command-line input (exit status 2)."""

    exit_code = 2


class ConfigError(ReduceError):
    """The instrument configuration file is invalid (exit status 2)."""

    exit_code = 2


class RecipeError(ReduceError):
    """The recipe is invalid; ``messages`` holds every ``file:line: message`` found."""

    exit_code = 2

    def __init__(self, messages):
        if isinstance(messages, str):
            messages = [messages]
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class ExecutorError(ReduceError):
    """The parallel machinery itself failed (a worker died, the cluster went away)."""

    exit_code = 1


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


class TargetSaturated(FrameRejected):
    flag = Flag.TARGET_SATURATED


class TargetNearEdge(FrameRejected):
    flag = Flag.TARGET_NEAR_EDGE


class CentroidRanAway(FrameRejected):
    flag = Flag.CENTROID_RAN_AWAY


@dataclass
class FrameWarning:
    """A doubt about a frame that does not stop its chain (recorded, flag OR-ed in)."""

    flag: Flag
    message: str
