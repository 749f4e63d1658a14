"""The outcome of `reduce run`: what was planned and what happened, per group, per night and per run.

Plain dataclasses (no I/O, no heavy imports) that the runner fills and the CLI prints or writes as
JSON; the exit status of a run is :attr:`RunReport.exit_code`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from ..model.reasons import group_reasons

if TYPE_CHECKING:
    from .plan import GroupPlan

__all__ = ["GroupResult", "NightResult", "RunReport"]


@dataclass
class GroupResult:
    """What happened to one group."""

    plan: GroupPlan
    status: str = "done"            # done | failed | unchanged
    message: str = ""
    outputs: list = field(default_factory=list)
    n_frames: int = 0
    flagged: list = field(default_factory=list)   # (file, flag value, reason)
    reference: str | None = None
    aperture: float | None = None
    comparisons: list = field(default_factory=list)
    scatter: float | None = None    # point-to-point scatter of the normalised light curve (relative)
    seconds: float = 0.0
    night: str | None = None
    frame_seconds: float | None = None   # the per-frame phase (what --jobs/--executor speed up)
    started: str | None = None           # ISO 8601 UTC, when the group's reduction began / ended
    finished: str | None = None
    warnings: list = field(default_factory=list)  # {code, message, frames}: header values, times...
    target: dict | None = None      # the measured star: index, reference_xy, how chosen, guessed
    export_errors: list = field(default_factory=list)  # messages of exports left out (exit 3)
    usage_error: bool = False            # failed because of what was given (a target off the frame): exit 2

    @property
    def target_guessed(self) -> bool:
        """``auto`` measured a star it could not identify (no WCS): exit 3 until the target is given."""
        return any(w.get("code") == "target_guessed" for w in self.warnings)

    def to_dict(self) -> dict:
        return {
            "night": self.night, "group": self.plan.group.label, "status": self.status,
            "message": self.message, "frames": self.n_frames,
            "frames_used": self.n_frames - len(self.flagged),
            "flagged": [{"file": f, "flag": int(v), "reason": r} for f, v, r in self.flagged],
            "flagged_by_reason": group_reasons(self.flagged),
            "unmeasured": [{"file": Path(str(u[0])).name, "reason": u[1]}
                           for u in getattr(self.plan, "unmeasured", ())],
            "outputs": [str(p) for p in self.outputs], "reference": self.reference,
            "aperture_px": self.aperture, "comparisons": self.comparisons,
            "scatter_p2p": self.scatter,
            "started": self.started, "finished": self.finished, "seconds": round(self.seconds, 3),
            "frame_seconds": None if self.frame_seconds is None else round(self.frame_seconds, 3),
            "frames_per_second": round(self.n_frames / self.frame_seconds, 2)
            if self.frame_seconds else None,
            "warnings": [dict(w) for w in self.warnings],
            "target": None if self.target is None else dict(self.target),
            "export_errors": list(self.export_errors),
        }


@dataclass
class NightResult:
    """What happened to one night folder: done | unchanged | locked | failed."""

    night: str
    status: str = "done"
    message: str = ""
    outdir: str | None = None
    unreadable: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # files still being written: the next pass's
    groups: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"night": self.night, "status": self.status, "message": self.message,
                "outdir": self.outdir, "groups": self.groups, "unreadable": len(self.unreadable),
                "pending": len(self.pending), "seconds": round(self.seconds, 3)}


@dataclass
class RunReport:
    """The outcome of a run: one result per group and per night, and the exit status."""

    groups: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    seconds: float = 0.0
    nights: list = field(default_factory=list)
    executor: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)  # logged outside any group (scan, folders, locks)

    @property
    def processed(self) -> list:
        """Groups reduced by this run (not skipped as unchanged)."""
        return [g for g in self.groups if g.status != "unchanged"]

    @property
    def unchanged(self) -> list:
        return [g for g in self.groups if g.status == "unchanged"]

    @property
    def locked(self) -> list:
        return [n for n in self.nights if n.status == "locked"]

    @property
    def exit_code(self) -> int:
        bad_nights = [n for n in self.nights if n.status in ("failed", "locked")]
        if self.nights and len(self.locked) == len(self.nights):
            return EXIT_LOCKED
        if not self.groups:
            return EXIT_FAILED
        done = self.processed
        if any(g.status == "failed" and g.usage_error for g in done):
            return EXIT_USAGE  # e.g. a target off the frame: the input is wrong, as for a bad option
        if done and all(g.status == "failed" for g in done) and not self.unchanged:
            return EXIT_FAILED
        if any(g.status == "failed" or g.flagged or g.export_errors for g in done) \
                or self.unreadable or bad_nights or any(g.target_guessed for g in self.groups):
            return EXIT_PARTIAL
        return EXIT_OK

    def to_dict(self) -> dict:
        from .. import __version__

        return {
            "exit_status": self.exit_code, "version": __version__, "seconds": round(self.seconds, 3),
            "peak_rss_mb": _peak_rss_mb(), "executor": self.executor,
            "nights": [n.to_dict() for n in self.nights],
            "frames": sum(g.n_frames for g in self.processed),
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
            "pending": [f for n in self.nights for f in n.pending],
            "skipped_unchanged": [g.plan.group.label for g in self.unchanged],
            "locked": [n.night for n in self.locked],
            "warnings": list(self.warnings),
            "groups": [g.to_dict() for g in self.groups],
        }


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (MiB), for the summary."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None
