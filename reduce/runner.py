"""`reduce run` orchestration: scan nights, plan each light group, reduce it, write the outputs.

The runner returns a :class:`RunReport` and never prints (the CLI does); per-frame problems are
flags in the table, per-group problems skip that group, and the exit status says which happened:
0 success (or nothing new to do), 1 failed, 3 finished with some frames, groups or nights skipped,
4 every night was locked by another run (2, usage errors, is raised before a run starts).

Cron safety: each night is looked at and reduced under its lock (:mod:`reduce.io.lock`); a group
whose inputs are unchanged since its last successful reduction is skipped (:mod:`reduce.state`);
outputs are written atomically by the pipeline, and temporary files left by a killed run are
removed before the group is redone. Frames are processed by an executor
(:mod:`reduce.core.executors`): serial, local processes or a Dask cluster, same results.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .core.errors import ClusterUnavailable, ReduceError, UsageError

__all__ = ["GroupPlan", "GroupResult", "NightResult", "RunReport", "RecipeSource", "plan_night",
           "run_night", "run_nights", "reduce_group", "find_nights", "EXIT_LOCKED"]

log = logging.getLogger("reduce.runner")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED = 0, 1, 2, 3, 4
SCHEMA_VERSION = 1


@dataclass
class GroupPlan:
    """What will be done for one light group: frames, calibration matched, output stem."""

    group: object
    frames: list
    calibration: object
    stem: str
    outdir: Path
    night: Path | None = None

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
    status: str = "done"            # done | failed | unchanged
    message: str = ""
    outputs: list = field(default_factory=list)
    n_frames: int = 0
    flagged: list = field(default_factory=list)   # (file, flag value, reason)
    reference: str | None = None
    aperture: float | None = None
    comparisons: list = field(default_factory=list)
    rms: float | None = None
    seconds: float = 0.0
    night: str | None = None
    frame_seconds: float | None = None   # the per-frame phase (what --jobs/--executor speed up)

    def to_dict(self) -> dict:
        return {
            "night": self.night, "group": self.plan.group.label, "status": self.status,
            "message": self.message, "frames": self.n_frames,
            "frames_used": self.n_frames - len(self.flagged),
            "flagged": [{"file": f, "flag": int(v), "reason": r} for f, v, r in self.flagged],
            "outputs": [str(p) for p in self.outputs], "reference": self.reference,
            "aperture_px": self.aperture, "comparisons": self.comparisons, "rms": self.rms,
            "seconds": round(self.seconds, 3),
            "frame_seconds": None if self.frame_seconds is None else round(self.frame_seconds, 3),
            "frames_per_second": round(self.n_frames / self.frame_seconds, 2)
            if self.frame_seconds else None,
        }


@dataclass
class NightResult:
    """What happened to one night folder: done | unchanged | locked | failed."""

    night: str
    status: str = "done"
    message: str = ""
    outdir: str | None = None
    unreadable: list = field(default_factory=list)
    groups: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"night": self.night, "status": self.status, "message": self.message,
                "outdir": self.outdir, "groups": self.groups, "unreadable": len(self.unreadable),
                "seconds": round(self.seconds, 3)}


@dataclass
class RunReport:
    """The outcome of a run: one result per group and per night, and the exit status."""

    groups: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    seconds: float = 0.0
    nights: list = field(default_factory=list)
    executor: dict = field(default_factory=dict)

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
        if done and all(g.status == "failed" for g in done) and not self.unchanged:
            return EXIT_FAILED
        if any(g.status == "failed" for g in done) or any(g.flagged for g in done) \
                or self.unreadable or bad_nights:
            return EXIT_PARTIAL
        return EXIT_OK

    def to_dict(self) -> dict:
        from . import __version__

        return {
            "exit_status": self.exit_code, "version": __version__, "seconds": round(self.seconds, 3),
            "peak_rss_mb": _peak_rss_mb(), "executor": self.executor,
            "nights": [n.to_dict() for n in self.nights],
            "frames": sum(g.n_frames for g in self.processed),
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
            "skipped_unchanged": [g.plan.group.label for g in self.unchanged],
            "locked": [n.night for n in self.locked],
            "groups": [g.to_dict() for g in self.groups],
        }


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (MiB), for the summary."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None


class RecipeSource:
    """A recipe known by a cheap key (text + overrides) and validated only when work is needed.

    Validating a recipe imports every block (about a second); a re-run with nothing new must not
    pay for it. ``spec`` loads and validates on first use (``RecipeError``: exit 2).
    """

    def __init__(self, path=None, *, target: str | None = None, reference: str | None = None, spec=None):
        self.path = Path(path) if path is not None else None
        self.target, self.reference = target, reference
        self._spec = spec
        if spec is not None:
            text = f"{spec.sha256}|{spec.target!r}|{spec.reference!r}"
        else:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                raise UsageError(f"recipe not found: {path}") from None
            except IsADirectoryError:
                raise UsageError(f"recipe is a folder, not a file: {path}") from None
            except OSError as e:
                raise UsageError(f"cannot read recipe {path}: {e.strerror or e}") from None
            text = f"{hashlib.sha256(raw).hexdigest()}|{target}|{reference}"
        self.key = hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def of(cls, spec) -> "RecipeSource":
        return spec if isinstance(spec, RecipeSource) else cls(spec=spec)

    @property
    def spec(self):
        if self._spec is None:
            from .recipe import load_recipe

            spec = load_recipe(self.path)
            if self.target is not None or self.reference is not None:
                from .recipe.fields import target_from_string

                try:
                    target = target_from_string(self.target) if self.target is not None else None
                    spec = spec.with_overrides(target=target, reference=self.reference)
                except ValueError as e:
                    raise UsageError(str(e)) from None
            self._spec = spec
        return self._spec


def plan_night(night, spec=None, *, config, outdir=None, index=None, depth=None) -> tuple[list[GroupPlan], object]:
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
    ours = _products_of(night, outdir)
    for group in fm.light_groups():
        frames = [f for f in group.files if not ours(f)]
        if not frames:  # our own products (NIGHT/reduced/*.fits) are not frames of the night
            continue
        cal = fm.calibration_for(group)
        stem = safe_stem(group.night, group.telescope, group.target, group.filter)
        plans.append(GroupPlan(group=group, frames=frames, calibration=cal, stem=stem, outdir=outdir,
                               night=night))
    return plans, fm


def _products_of(night: Path, outdir: Path):
    """A predicate: is a path one of our products (inside ``outdir`` or the default NIGHT/reduced)?

    The FITS light-curve tables hold image extensions; they must never be taken for frames.
    """
    roots = tuple({os.path.join(os.path.abspath(d), "") for d in (outdir, Path(night) / "reduced")})

    def inside(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(roots)

    return inside


def find_nights(archive, *, depth: int | None = None) -> list[Path]:
    """Sub-folders of ``archive`` (not hidden) holding at least one FITS frame, sorted by name."""
    from .index.manager import walk

    archive = Path(archive)
    if not archive.is_dir():
        raise UsageError(f"archive folder not found: {archive}")
    nights = []
    for entry in sorted(os.scandir(archive), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if next(iter(walk(entry.path, depth)), None) is not None:
            nights.append(Path(entry.path))
    if not nights:
        raise UsageError(f"no night folders with FITS frames in {archive}")
    return nights


def _outdirs(nights: list[Path], outdir) -> list[Path]:
    """Output folder per night: NIGHT/reduced, OUTDIR for one night, OUTDIR/<night name> for several."""
    if outdir is None:
        return [n / "reduced" for n in nights]
    outdir = Path(outdir)
    if len(nights) == 1:
        return [outdir]
    seen: dict[str, int] = {}
    out = []
    for n in nights:
        name = n.resolve().name or "night"
        seen[name] = seen.get(name, 0) + 1
        out.append(outdir / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return out


def run_night(night, spec, *, config, outdir=None, index=None, depth=None, show_progress=True,
              fail_fast=False, executor=None, force=False) -> RunReport:
    """Reduce every light group of ``night`` with the recipe ``spec`` (see :func:`run_nights`)."""
    return run_nights([night], spec, config=config, outdir=outdir, index=index, depth=depth,
                      show_progress=show_progress, fail_fast=fail_fast, executor=executor, force=force)


@dataclass
class _Work:
    """A night with groups to reduce, found in the planning pass."""

    night: Path
    outdir: Path
    result: NightResult
    frames: int


def run_nights(nights, spec, *, config, outdir=None, index=None, depth=None, show_progress=True,
               fail_fast=False, executor=None, force=False) -> RunReport:
    """Reduce every light group of every night in ``nights``; one progress display, one report.

    ``spec`` is a RecipeSpec or a :class:`RecipeSource`. Groups whose inputs did not change since
    their last successful reduction are skipped (``force`` redoes them). A night locked by another
    run is skipped (status ``locked``). ``executor`` runs the frames (default: in-process).
    ``index`` is the index file of a single night (ignored when there are several).
    """
    t0 = time.perf_counter()
    _freeze_heap_at_exit()
    recipe = RecipeSource.of(spec)
    nights = [Path(n) for n in nights]
    if not nights:
        raise UsageError("no night folder given")
    single = len(nights) == 1
    outdirs = _outdirs(nights, outdir)
    report = RunReport()
    work: list[_Work] = []
    for night, out in zip(nights, outdirs):
        todo = _plan_pass(night, out, recipe, report, config=config, index=index if single else None,
                          depth=depth, force=force, single=single)
        if todo:
            work.append(todo)
    if work:
        from .core.executors import SerialExecutor

        # the figure helper first: it imports matplotlib on the idle core while this process
        # validates the recipe and builds masters, and is forked before any thread exists
        plotter = _start_plotter(recipe)
        try:
            executor = executor or SerialExecutor()
            _connect(executor)
            total = sum(w.frames for w in work)
            n_groups = sum(w.result.groups for w in work)
            from .console import progress

            label = f"reduce: {n_groups} group(s)" + (f" of {len(work)} nights" if len(work) > 1 else "")
            with progress(label, total, show=show_progress) as bar:
                tracked = _Tracked(executor, bar)
                for w in work:
                    _reduce_pass(w, recipe, report, config=config, index=index if single else None,
                                 depth=depth, force=force, fail_fast=fail_fast, executor=tracked,
                                 plotter=plotter)
        finally:
            if plotter is not None:
                plotter.close()
        report.executor = executor.describe() if hasattr(executor, "describe") else {}
    report.seconds = time.perf_counter() - t0
    return report


def _start_plotter(recipe):
    """The figure helper process shared by every group of the run (None: figures drawn in-process)."""
    known = recipe._spec
    if known is not None and not known.outputs.plot:
        return None
    # frame headers go through astropy.io.fits next anyway: imported before the fork, astropy
    # (units included, 0.2 s) is shared with the helper instead of imported twice
    import astropy.io.fits  # noqa: F401

    from .plotter import start_plotter

    return start_plotter()


_FREEZE_REGISTERED = False


def _freeze_heap_at_exit() -> None:
    """At interpreter exit, freeze the heap so the final garbage collections skip it.

    The OS frees the memory anyway; walking the ~300k objects of numpy/astropy at shutdown costs
    about 0.15 s after ``reduce run`` has finished. Registered once; only acts at exit, so a
    long-lived process using the API is unaffected while it runs.
    """
    global _FREEZE_REGISTERED
    if not _FREEZE_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _FREEZE_REGISTERED = True


def _connect(executor) -> None:
    """Start connecting a cluster executor, in the background when it can (overlapping masters and
    the reference choice); a cluster that cannot be reached stops the run with one clear error
    (ClusterUnavailable), not N failed groups."""
    connect = getattr(executor, "connect_async", None) or getattr(executor, "connect", None)
    if connect is not None:
        connect()


class _Tracked:
    """An executor wrapper advancing the run's single progress display per collected frame, and
    timing the frame phase (the part the executor parallelises)."""

    def __init__(self, inner, bar):
        self.inner, self.bar = inner, bar
        self.seconds = 0.0
        self.frames = 0

    def map_frames(self, blocks, items, **kwargs):
        t0 = time.perf_counter()
        try:
            for index, image in self.inner.map_frames(blocks, items, **kwargs):
                self.frames += 1
                self.bar.advance()
                yield index, image
        finally:
            self.seconds += time.perf_counter() - t0

    def reset(self) -> None:
        self.seconds, self.frames = 0.0, 0


def _lock(night: Path):
    from .io.lock import NightLock, lock_path_for
    from .state import state_dir_for

    state_dir = state_dir_for(night)
    return NightLock(lock_path_for(night, state_dir), night=night), state_dir


def _plan_pass(night, out, recipe, report, *, config, index, depth, force, single) -> _Work | None:
    """Under the night's lock: scan, plan, skip unchanged groups; returns the work left, if any."""
    from .io.lock import LockedError
    from .state import GroupState, group_fingerprint

    t0 = time.perf_counter()
    nres = NightResult(night=str(night), outdir=str(out))
    report.nights.append(nres)
    try:
        lock, state_dir = _lock(night)
        with lock:
            plans, fm = plan_night(night, config=config, outdir=out, index=index, depth=depth)
    except LockedError as e:
        nres.status, nres.message = "locked", str(e)
        log.warning("%s", e)
        return None
    except ReduceError as e:
        if single:
            raise
        nres.status, nres.message = "failed", str(e)
        log.error("%s", e)
        return None
    ours = _products_of(night, out)
    nres.unreadable = [(f, r) for f, r in fm.unreadable if not ours(f)]
    if not plans:
        msg = f"no light frames found in {night} (see `reduce scan {night}`)"
        if single:
            raise ReduceError(msg)
        nres.status, nres.message = "failed", msg
        log.error("%s", msg)
        return None
    nres.groups = len(plans)
    todo = 0
    for plan in plans:
        fp = group_fingerprint(plan, recipe_key=recipe.key, config=config)
        record = None if force else GroupState(state_dir, out, plan.stem).unchanged(fp)
        if record is not None:
            report.groups.append(_unchanged_result(plan, record, str(night)))
        else:
            todo += len(plan.frames)
    nres.seconds = time.perf_counter() - t0
    if not todo:
        nres.status = "unchanged"
        nres.message = "nothing new since the last run"
        log.info("%s: %d group(s) unchanged since the last run: nothing to do (--force redoes them)",
                 night, len(plans))
        return None
    return _Work(night=night, outdir=out, result=nres, frames=todo)


def _unchanged_result(plan, record: dict, night: str) -> GroupResult:
    s = record.get("summary") or {}
    g = GroupResult(plan=plan, status="unchanged", message="unchanged since " + str(record.get("finished")),
                    n_frames=len(plan.frames), night=night)
    g.outputs = [o["path"] for o in record.get("outputs", [])]
    g.flagged = [(f.get("file"), f.get("flag", 0), f.get("reason", "")) for f in s.get("flagged", [])]
    g.reference, g.aperture = s.get("reference"), s.get("aperture_px")
    g.comparisons, g.rms = s.get("comparisons", []), s.get("rms")
    return g


def _reduce_pass(w: _Work, recipe, report, *, config, index, depth, force, fail_fast, executor,
                 plotter=None) -> None:
    """Under the night's lock again: re-plan (frames may have arrived), reduce what changed."""
    from .io.lock import LockedError
    from .state import GroupState, group_fingerprint

    t0 = time.perf_counter()
    nres, night, out = w.result, w.night, w.outdir
    try:
        lock, state_dir = _lock(night)
        lock.acquire()
    except ReduceError as e:
        nres.status = "locked" if isinstance(e, LockedError) else "failed"
        nres.message = str(e)
        log.warning("%s", e)
        return
    try:
        spec = recipe.spec  # validated now (RecipeError: exit 2), only because there is work
        plans, fm = plan_night(night, config=config, outdir=out, index=index, depth=depth)
        ours = _products_of(night, out)
        nres.unreadable = [(f, r) for f, r in fm.unreadable if not ours(f)]
        report.unreadable.extend(nres.unreadable)
        report.groups = [g for g in report.groups if g.night != str(night)]
        nres.groups = len(plans)
        problem = _check_outdir(out)
        for plan in plans:
            state = GroupState(state_dir, out, plan.stem)
            fp = group_fingerprint(plan, recipe_key=recipe.key, config=config)
            record = None if force else state.unchanged(fp)
            if record is not None:
                report.groups.append(_unchanged_result(plan, record, str(night)))
                continue
            if problem:
                result = GroupResult(plan=plan, status="failed", message=problem,
                                     n_frames=len(plan.frames), night=str(night))
                report.groups.append(result)
                continue
            state.invalidate()
            _remove_leftovers(out, plan.stem)
            executor.reset()
            result = reduce_group(plan, spec, config=config, show_progress=False,
                                  fail_fast=fail_fast, executor=executor, plotter=plotter)
            result.night = str(night)
            result.frame_seconds = executor.seconds
            report.groups.append(result)
            if result.status == "done":
                _save_state(state, fp, result)
        if problem:
            log.error("%s", problem)
        failed = [g for g in report.groups if g.night == str(night) and g.status == "failed"]
        nres.status = "failed" if failed and len(failed) == nres.groups else "done"
        if failed:
            nres.message = f"{len(failed)} of {nres.groups} group(s) failed"
    finally:
        lock.release()
        nres.seconds += time.perf_counter() - t0


def _check_outdir(out: Path) -> str | None:
    """None when ``out`` can be created and written, else why not (checked before any work)."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".reduce-write-test.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        return f"cannot write to the output folder {out}: {e.strerror or e}"
    return None


def _remove_leftovers(out: Path, stem: str) -> None:
    """Temporary files of an interrupted atomic write of this group's outputs."""
    try:
        leftovers = list(out.glob(f".{stem}*.tmp"))
    except OSError:
        return
    for p in leftovers:
        try:
            p.unlink()
            log.info("removed %s left by an interrupted run", p.name)
        except OSError:
            pass


def _save_state(state, fingerprint: str, result: GroupResult) -> None:
    try:
        state.save(fingerprint, result.outputs, result.to_dict())
    except (OSError, ReduceError) as e:  # only costs a redo next time
        log.warning("%s: run state not saved (%s); the next run will redo this group",
                    result.plan.group.label, e)


def reduce_group(plan: GroupPlan, spec, *, config=None, show_progress=True, fail_fast=False,
                 executor=None, plotter=None) -> GroupResult:
    """Reduce one light group; a failure skips the group (recorded), never the run.

    ``plotter``: a :class:`reduce.plotter.Plotter` shared by the run's groups (default: one per
    group when it pays, see :func:`reduce.plotter.start_plotter`).
    """
    t0 = time.perf_counter()
    result = GroupResult(plan=plan, n_frames=len(plan.frames))
    log.info("%s: reducing %d frame(s)", plan.group.label, len(plan.frames))
    try:
        from .pipeline import reduce_frames
        reduce_frames(plan, spec, result, config=config, show_progress=show_progress, fail_fast=fail_fast,
                      executor=executor, plotter=plotter)
    except ClusterUnavailable:
        raise
    except ReduceError as e:
        result.status, result.message = "failed", str(e)
        log.error("%s: %s", plan.group.label, e)
    except Exception as e:  # unexpected: the group is skipped, the night goes on
        if fail_fast:
            raise
        result.status, result.message = "failed", f"unexpected error: {type(e).__name__}: {e}"
        log.exception("%s failed", plan.group.label)
    result.seconds = time.perf_counter() - t0
    if result.status == "done":
        log.info("%s: done in %.1f s (%.1f frames/s), %d flagged", plan.group.label, result.seconds,
                 len(plan.frames) / result.seconds if result.seconds > 0 else float("nan"),
                 len(result.flagged))
    return result
