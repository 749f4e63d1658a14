"""`reduce run` orchestration: scan nights, plan each light group, reduce it, write the outputs.

The runner returns a :class:`RunReport` and never prints (the CLI does); per-frame problems are
flags in the table, per-group problems skip that group, and the exit status says which happened:
0 success (or nothing new to do), 1 failed, 3 finished with some frames, groups or nights skipped,
4 every night was locked by another run (2, usage errors, is raised before a run starts).

Cron safety: each night is looked at and reduced under its lock (:mod:`reduce.io.lock`); a group
whose inputs are unchanged since its last successful reduction is skipped (:mod:`reduce.run.state`);
outputs are written atomically by the pipeline, and temporary files left by a killed run are
removed before the group is redone. Frames are processed by an executor
(:mod:`reduce.core.executors`): serial, local processes or a Dask cluster, same results.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.errors import ReduceError, UsageError
from .scheduler import GroupScheduler
from .plan import RecipeSource, output_folders, products_of, plan_night, unaccounted
from .report import GroupResult, NightResult, RunReport

__all__ = ["run_night", "run_nights"]

log = logging.getLogger("reduce.run.nights")

# the report is filled by each night's pass, from several threads when groups run at once
_REPORT_LOCK = threading.Lock()


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
    lock: object = None        # the night's lock, held from planning until its groups are reduced
    state_dir: Path | None = None


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
    outdirs = output_folders(nights, outdir)
    report = RunReport()
    work: list[_Work] = []
    watch = _RunWarnings(report)
    logging.getLogger("reduce").addHandler(watch)
    try:
        for night, out in zip(nights, outdirs):
            todo = _plan_pass(night, out, recipe, report, config=config, index=index if single else None,
                              depth=depth, force=force, single=single)
            if todo:
                work.append(todo)
        if work:
            _reduce_all(work, nights, recipe, report, executor=executor, config=config,
                        index=index if single else None, depth=depth, force=force, fail_fast=fail_fast,
                        show_progress=show_progress)
    finally:
        logging.getLogger("reduce").removeHandler(watch)
        for w in work:  # normally released by each night's pass; after an error, here
            w.lock.release()
    report.seconds = time.perf_counter() - t0
    return report


class _RunWarnings(logging.Handler):
    """The warnings logged outside any group's reduction (scanning, output folders, locks) into
    ``report.warnings``: the summary and --summary-json say what the log said; a group's own
    warnings are in its result."""

    parent_only = True  # a worker process drops it (see executors.local._plain_logging)

    def __init__(self, report):
        super().__init__(logging.WARNING)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        from ..console import current_group

        if record.levelno != logging.WARNING or current_group() or getattr(record, "in_report", None):
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call is not the summary's problem
            return
        with _REPORT_LOCK:
            if message not in self.report.warnings:
                self.report.warnings.append(message)


def _reduce_all(work, nights, recipe, report, *, executor, config, index, depth, force, fail_fast,
                show_progress) -> None:
    """The reduction pass over the nights with work (their locks held since planning)."""
    if work:
        from ..core.executors import SerialExecutor
        from .group import reduce_group
        from .outputs import start_figure_helper

        executor = executor or SerialExecutor()
        n_groups = sum(w.result.groups for w in work)
        at_once = getattr(executor, "groups_at_once", 1) if n_groups > 1 else 1
        # the figure helper first: it imports matplotlib on the idle core while this process
        # validates the recipe and builds masters, and is forked before any thread exists (groups
        # reduced at once draw their own figures, in their threads)
        plotter = start_figure_helper(recipe._spec) if at_once == 1 else None
        try:
            _connect(executor)
            total = sum(w.frames for w in work)
            from ..console import progress

            label = f"reduce: {n_groups} group(s)" + (f" of {len(work)} nights" if len(work) > 1 else "")
            with progress(label, total, show=show_progress) as bar:
                groups = GroupScheduler(reduce_group, executor, bar, plotter, at_once=at_once)
                try:
                    groups.each_night(lambda w: _reduce_pass(
                        w, recipe, report, config=config, index=index, depth=depth,
                        force=force, fail_fast=fail_fast, groups=groups), work)
                finally:
                    groups.close()
                rank = {str(n): i for i, n in enumerate(nights)}  # nights may finish out of order
                report.groups.sort(key=lambda g: rank.get(str(g.night), len(rank)))
        finally:
            if plotter is not None:
                plotter.close()
        report.executor = executor.describe() if hasattr(executor, "describe") else {}


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


def _lock(night: Path):
    from ..io.lock import NightLock, lock_path_for, state_dir_for

    state_dir = state_dir_for(night)
    return NightLock(lock_path_for(night, state_dir), night=night), state_dir


def _plan_pass(night, out, recipe, report, *, config, index, depth, force, single) -> _Work | None:
    """Under the night's lock: scan, plan, skip unchanged groups; returns the work left, if any,
    with the lock still held (so a second run started meanwhile is the one that exits 4)."""
    from ..io.lock import LockedError

    try:
        lock, state_dir = _lock(night)
        lock.acquire()
    except ReduceError as e:
        nres = NightResult(night=str(night), outdir=str(out), message=str(e))
        report.nights.append(nres)
        if isinstance(e, LockedError):
            nres.status = "locked"
            log.warning("%s", e, extra={"in_report": "locked"})
            return None
        if single:
            raise
        nres.status = "failed"
        log.error("%s", e)
        return None
    try:
        work = _plan_locked(night, out, recipe, report, config=config, index=index, depth=depth,
                            force=force, single=single, state_dir=state_dir)
    except BaseException:
        lock.release()
        raise
    if work is None:
        lock.release()
    else:
        work.lock, work.state_dir = lock, state_dir
    return work


def _plan_locked(night, out, recipe, report, *, config, index, depth, force, single,
                 state_dir) -> _Work | None:
    """_plan_pass' body, the lock held."""
    from .state import GroupState, group_fingerprint

    t0 = time.perf_counter()
    nres = NightResult(night=str(night), outdir=str(out))
    report.nights.append(nres)
    try:
        plans, fm = plan_night(night, config=config, outdir=out, index=index, depth=depth)
    except ReduceError as e:
        if single:
            raise
        nres.status, nres.message = "failed", str(e)
        log.error("%s", e)
        return None
    ours = products_of(night, out)
    nres.unreadable = unaccounted(fm, plans, ours)
    nres.pending = list(fm.stats.extra.get("pending", []))
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
    # the count the run reported: every file of the group, the unmeasured ones included
    frames = s.get("frames", len(plan.frames) + len(getattr(plan, "unmeasured", ()) or ()))
    g = GroupResult(plan=plan, status="unchanged", message="unchanged since " + str(record.get("finished")),
                    n_frames=int(frames), night=night)
    g.outputs = [o["path"] for o in record.get("outputs", [])]
    g.flagged = [(f.get("file"), f.get("flag", 0), f.get("reason", "")) for f in s.get("flagged", [])]
    g.reference, g.aperture = s.get("reference"), s.get("aperture_px")
    g.comparisons, g.scatter = s.get("comparisons", []), s.get("scatter_p2p")
    g.warnings = list(s.get("warnings", []))
    g.target = s.get("target")
    return g


def _reduce_pass(w: _Work, recipe, report, *, config, index, depth, force, fail_fast,
                 groups: GroupScheduler) -> None:
    """Under the night's lock, still held since planning: re-plan (frames may have arrived), reduce
    what changed (through ``groups``: now, or in its threads when it takes several groups at once);
    each group's run state is saved as soon as it is done (a killed run redoes only the others)."""
    from .state import GroupState, group_fingerprint, renamed_sets

    t0 = time.perf_counter()
    nres, night, out = w.result, w.night, w.outdir
    lock, state_dir = w.lock, w.state_dir
    try:
        spec = recipe.spec  # validated now (RecipeError: exit 2), only because there is work
        plans, fm = plan_night(night, config=config, outdir=out, index=index, depth=depth)
        ours = products_of(night, out)
        nres.unreadable = unaccounted(fm, plans, ours)
        nres.pending = list(fm.stats.extra.get("pending", []))
        with _REPORT_LOCK:
            report.unreadable.extend(nres.unreadable)
            report.groups = [g for g in report.groups if g.night != str(night)]
        nres.groups = len(plans)
        problem = _check_outdir(out)
        entries = []  # per group, in plan order: its GroupResult, or (job, state, fingerprint)
        for plan in plans:
            state = GroupState(state_dir, out, plan.stem)
            fp = group_fingerprint(plan, recipe_key=recipe.key, config=config)
            record = None if force else state.unchanged(fp)
            if record is not None:
                entries.append(_unchanged_result(plan, record, str(night)))
            elif problem:
                entries.append(GroupResult(plan=plan, status="failed", message=problem,
                                           n_frames=len(plan.frames), night=str(night)))
            else:
                state.invalidate()
                _remove_leftovers(out, plan.stem)
                plan.renamed = renamed_sets(state_dir, out, plan.stem, plan.frames)
                job = groups.submit(plan, spec, config=config, fail_fast=fail_fast)
                entries.append((_on_done(job, state, fp, str(night)), str(night)))
        results = [_collect(entry) for entry in entries]
        with _REPORT_LOCK:
            report.groups.extend(results)
        if problem:
            log.error("%s", problem)
        failed = [g for g in results if g.status == "failed"]
        nres.status = "failed" if failed and len(failed) == nres.groups else "done"
        if failed:
            nres.message = f"{len(failed)} of {nres.groups} group(s) failed"
    finally:
        lock.release()
        nres.seconds += time.perf_counter() - t0


def _on_done(job, state, fp: str, night: str):
    """Save the group's run state the moment its reduction ends (in its thread when groups run at
    once), not at the end of the night; returns the job."""
    def finished(future) -> None:
        try:
            result = future.result()
        except BaseException:  # noqa: BLE001 - raised again by _collect
            return
        result.night = night
        if result.status == "done":
            _retire_renamed(result.plan)
            _save_state(state, fp, result)

    add = getattr(job, "add_done_callback", None)
    if add is not None:
        add(finished)
    else:  # reduced already (one group at a time)
        finished(job)
    return job


def _retire_renamed(plan) -> None:
    """The group's earlier sets under another name removed, now that its new set is written."""
    from .state import retire

    for old in getattr(plan, "renamed", None) or ():
        removed = retire(old)
        log.info("%s: removed the earlier set %s.* (%d file(s)), now %s.*", plan.name, old["stem"],
                 len(removed), plan.stem)


def _collect(entry) -> GroupResult:
    """A group's result: as planned, or once its reduction ends."""
    if isinstance(entry, GroupResult):
        return entry
    job, night = entry
    result = job.result()
    result.night = night
    return result


def _check_outdir(out: Path) -> str | None:
    """None when ``out`` can be created and written, else why not (checked before any work)."""
    import tempfile

    from ..index.db import writable_dir

    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.is_dir() and not writable_dir(existing):  # by the mode bits: root too
        where = "" if existing == out else f" (its folder {existing} is read-only)"
        return f"cannot write to the output folder {out}{where}: permission denied by the folder's " \
               "mode; give a writable folder with -o"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".reduce-write-test.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        return f"cannot write to the output folder {out}: {e.strerror or e}"
    return None


check_outdir = _check_outdir  # for the CLI: a read-only -o is a usage error before any work


def _remove_leftovers(out: Path, stem: str) -> None:
    """The staging folder (and temporary files) of an interrupted write of this group's outputs;
    never another group's (a stem can be the start of another: ``X`` and ``X_100x100``)."""
    import re
    import shutil

    from ..io.atomic import staging_name

    mine = re.compile(rf"\.{re.escape(stem)}(_reference)?\.(csv|fits|json|yaml|png)\.[^.]+\.tmp")
    try:
        leftovers = [p for p in out.glob(f".{glob_escape(stem)}*.tmp")
                     if p.name == staging_name(stem) or mine.fullmatch(p.name)]
    except OSError:
        return
    for p in leftovers:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            log.info("removed %s left by an interrupted run", p.name)
        except OSError:
            pass


def glob_escape(text: str) -> str:
    """``text`` with glob wildcards taken literally."""
    import glob

    return glob.escape(text)


def _save_state(state, fingerprint: str, result: GroupResult) -> None:
    try:
        state.save(fingerprint, result.outputs, result.to_dict())
    except (OSError, ReduceError) as e:  # only costs a redo next time
        log.warning("%s: run state not saved (%s); the next run will redo this group",
                    result.plan.name, e)
