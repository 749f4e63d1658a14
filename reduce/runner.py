"""`reduce run` orchestration: scan a night, plan each light group, reduce it, write the outputs.

The runner returns a :class:`RunReport` and never prints (the CLI does); per-frame problems are
flags in the table, per-group problems skip that group, and the exit status says which happened:
0 success, 1 failed, 3 finished with some frames or groups skipped.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import Flag, ReduceError, UsageError

__all__ = ["GroupPlan", "GroupResult", "RunReport", "plan_night", "run_night", "reduce_group"]

log = logging.getLogger("reduce.runner")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
SCHEMA_VERSION = 1


@dataclass
class GroupPlan:
    """What will be done for one light group: frames, calibration matched, output stem."""

    group: object
    frames: list
    calibration: object
    stem: str
    outdir: Path

    def describe(self) -> dict:
        cal = self.calibration
        return {
            "group": self.group.label, "frames": len(self.frames), "outputs": str(self.outdir / self.stem),
            "bias": len(cal.bias), "darks": len(cal.darks), "flats": len(cal.flats),
            "reasons": list(getattr(cal, "reasons", [])),
        }


@dataclass
class GroupResult:
    """What happened to one group."""

    plan: GroupPlan
    status: str = "done"            # done | failed
    message: str = ""
    outputs: list = field(default_factory=list)
    n_frames: int = 0
    flagged: list = field(default_factory=list)   # (file, flag value, reason)
    reference: str | None = None
    aperture: float | None = None
    comparisons: list = field(default_factory=list)
    rms: float | None = None
    seconds: float = 0.0


@dataclass
class RunReport:
    """The outcome of a run: one result per group and the exit status."""

    groups: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if not self.groups:
            return EXIT_FAILED
        if all(g.status == "failed" for g in self.groups):
            return EXIT_FAILED
        if any(g.status == "failed" for g in self.groups) or any(g.flagged for g in self.groups) \
                or self.unreadable:
            return EXIT_PARTIAL
        return EXIT_OK

    def to_dict(self) -> dict:
        return {
            "exit_status": self.exit_code, "seconds": round(self.seconds, 3),
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
            "groups": [{
                "group": g.plan.group.label, "status": g.status, "message": g.message,
                "frames": g.n_frames, "flagged": [{"file": f, "flag": int(v), "reason": r} for f, v, r in g.flagged],
                "outputs": [str(p) for p in g.outputs], "reference": g.reference, "aperture_px": g.aperture,
                "comparisons": g.comparisons, "rms": g.rms, "seconds": round(g.seconds, 3),
            } for g in self.groups],
        }


def plan_night(night, spec, *, config, outdir=None, index=None, depth=None) -> tuple[list[GroupPlan], object]:
    """Scan ``night`` (incrementally) and make one plan per light group."""
    from .index.manager import FitsManager
    from .io.tables import safe_stem

    night = Path(night)
    if not night.exists():
        raise UsageError(f"night folder not found: {night}")
    if not night.is_dir():
        raise UsageError(f"not a folder: {night}")
    fm = FitsManager(night, depth=depth, index=index, config=config)
    outdir = Path(outdir) if outdir else night / "reduced"
    plans = []
    for group in fm.light_groups():
        cal = fm.calibration_for(group)
        stem = safe_stem(group.night, group.telescope, group.target, group.filter)
        plans.append(GroupPlan(group=group, frames=list(group.files), calibration=cal, stem=stem, outdir=outdir))
    return plans, fm


def run_night(night, spec, *, config, outdir=None, index=None, depth=None, show_progress=True,
              fail_fast=False) -> RunReport:
    """Reduce every light group of ``night`` with the recipe ``spec``."""
    t0 = time.perf_counter()
    plans, fm = plan_night(night, spec, config=config, outdir=outdir, index=index, depth=depth)
    report = RunReport(unreadable=list(fm.unreadable))
    if not plans:
        raise ReduceError(f"no light frames found in {night} (see `reduce scan {night}`)")
    for plan in plans:
        report.groups.append(reduce_group(plan, spec, config=config, show_progress=show_progress,
                                          fail_fast=fail_fast))
    report.seconds = time.perf_counter() - t0
    return report


def reduce_group(plan: GroupPlan, spec, *, config=None, show_progress=True, fail_fast=False) -> GroupResult:
    """Reduce one light group; a failure skips the group (recorded), never the run."""
    t0 = time.perf_counter()
    result = GroupResult(plan=plan, n_frames=len(plan.frames))
    try:
        from .pipeline import reduce_frames
        reduce_frames(plan, spec, result, config=config, show_progress=show_progress, fail_fast=fail_fast)
    except ReduceError as e:
        result.status, result.message = "failed", str(e)
        log.error("%s: %s", plan.group.label, e)
    except Exception as e:  # unexpected: the group is skipped, the night goes on
        if fail_fast:
            raise
        result.status, result.message = "failed", f"unexpected error: {type(e).__name__}: {e}"
        log.exception("%s failed", plan.group.label)
    result.seconds = time.perf_counter() - t0
    return result
