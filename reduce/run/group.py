"""Reduce one light group: masters, reference frame, target, every frame, differential light curve,
outputs. A :class:`GroupContext` carries what the stages share.

Expected failures raise ``ReduceError`` (the group is skipped with that message, the run goes on);
per-frame problems are flags in the table.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model.errors import ClusterUnavailable, ReduceError, UsageError
from ..model.flags import Flag
from ..model.reasons import group_reasons
from .colour import balance_colour, note_colour, with_bayer_block, with_phase_correction
from .outputs import discard_figures, submit_figures, write_outputs
from .hotpixels import night_hot_pixels
from .reference import choose_reference, fill_pointing, psf_like_reference, psf_shape_of_reference, quick_detection
from .plan import GroupPlan
from .report import GroupResult
from .table import check_errors, differential, full_table, note_snapshot, p2p_of_table, resolve_check
from .comps import place_comparisons
from .target import guessed_target_warning, select_target

__all__ = ["reduce_group", "GroupContext"]

log = logging.getLogger("reduce.run")


@dataclass
class GroupContext:
    """What the stages of one group's reduction share: the plan and settings first, then what
    each stage produces (reference, target, chain, raw and differential fluxes, table, outputs)."""

    plan: GroupPlan
    spec: Any
    result: GroupResult
    config: Any = None
    plotter: Any = None             # the run's figure helper (None: figures drawn in-process)
    ref: Any = None                 # the reference Image
    target: int | None = None       # the target's index among the reference's measured stars
    seq: Any = None                 # the Sequence that measured every frame
    raw: Any = None                 # raw Fluxes of every star, aperture and frame
    diff: Any = None                # differential Fluxes of the usable frames
    table: Any = None               # one row per file of the group
    staged: Any = None              # the OutputSet the outputs are written into
    figures: list | None = None     # figure jobs handed to the helper
    check: tuple = (None, None)     # the recipe's check star: (index, None) or (None, why not usable)
    page_refresh: float | None = None  # seconds: the group's page reloads itself (a night being followed)
    logged: Any = None              # the warnings logged so far (_LoggedWarnings), for the outputs


def reduce_group(plan: GroupPlan, spec, *, config=None, show_progress=True, fail_fast=False,
                 executor=None, plotter=None) -> GroupResult:
    """Reduce one light group; a failure skips the group (recorded), never the run.

    ``plotter``: the figure helper shared by the run's groups (see
    :func:`~reduce.run.outputs.start_figure_helper`); without one, figures are drawn in-process.
    """
    t0 = time.perf_counter()
    result = GroupResult(plan=plan, n_frames=len(plan.frames), started=_utc_now())
    from ..console import group_context

    with group_context(plan.name), _LoggedWarnings(result, plan.name) as logged:
        _reduce_logged(plan, spec, result, config, plotter, logged, show_progress=show_progress,
                       fail_fast=fail_fast, executor=executor)
    result.seconds = time.perf_counter() - t0
    result.finished = _utc_now()
    if result.status == "done":
        log.info("%s: done in %.1f s (%.1f frames/s), %d flagged", plan.name, result.seconds,
                 len(plan.frames) / result.seconds if result.seconds > 0 else float("nan"),
                 len(result.flagged))
    return result


def _reduce_logged(plan, spec, result, config, plotter, logged, *, show_progress, fail_fast, executor):
    """reduce_group's body, its warnings caught by ``logged``."""
    unmeasured = len(getattr(plan, "unmeasured", ()) or ())
    log.info("%s: reducing %d frame(s)%s", plan.name, len(plan.frames),
             f" and {unmeasured} file(s) that cannot be measured" if unmeasured else "")
    try:
        ctx = GroupContext(plan=plan, spec=spec, result=result, config=config, plotter=plotter,
                           logged=logged)
        _reduce(ctx, show_progress=show_progress, fail_fast=fail_fast, executor=executor)
    except ClusterUnavailable:
        raise
    except ReduceError as e:
        result.status, result.message = "failed", str(e)
        result.usage_error = isinstance(e, UsageError)
        log.error("%s: %s", plan.name, e)
    except Exception as e:  # unexpected: the group is skipped, the night goes on
        if fail_fast:
            raise
        result.status, result.message = "failed", f"unexpected error: {type(e).__name__}: {e}"
        log.exception("%s failed", plan.name)


class _LoggedWarnings(logging.Handler):
    """Every warning logged in this thread while a group is reduced, kept for its summary, JSON
    and provenance (``merge`` adds those not already among ``result.warnings``): the cron summary
    tells what the log told."""

    # the calibration block's own lines, said once by the group's `no_calibration` warning
    _SAID_BY = {"no_calibration": ("Calibration: no bias frames", "Calibration: no dark frames",
                                   "Calibration: no flat frames")}

    parent_only = True  # a worker process drops it (see executors.local._plain_logging)

    def __init__(self, result, name: str):
        super().__init__(logging.WARNING)
        import threading

        self.result, self.name, self.thread = result, name, threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno != logging.WARNING or record.thread != self.thread \
                or getattr(record, "in_report", None):  # e.g. the flagged frames: reported as such
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call is not the summary's problem
            return
        if message.startswith(self.name + ": "):
            message = message[len(self.name) + 2:]
        if message not in self.messages:
            self.messages.append(message)

    def merge(self) -> None:
        """Add the logged warnings that no warning of the result says already."""
        said = [str(w.get("message", "")) for w in self.result.warnings]
        codes = {w.get("code") for w in self.result.warnings}
        covered = tuple(p for code, prefixes in self._SAID_BY.items() if code in codes for p in prefixes)
        for m in self.messages:
            if covered and m.startswith(covered):
                continue
            if not any(m in s or s in m for s in said if s):
                self.result.warnings.append({"code": "logged", "frames": 0, "message": m})
                said.append(m)

    def __enter__(self):
        logging.getLogger("reduce").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("reduce").removeHandler(self)
        self.merge()
        return False


def _loader(config):
    """The frame loader: FITSImage, with the instrument configuration when one is given."""
    from ..io.fitsimage import FITSImage

    return functools.partial(FITSImage, config=config) if config is not None else FITSImage


def _reduce(ctx: GroupContext, *, show_progress, fail_fast, executor) -> None:
    """Masters, reference, target, every frame, light curve, outputs."""
    from ..recipe import build_blocks

    plan, spec, result = ctx.plan, ctx.spec, ctx.result
    loader = _loader(ctx.config)
    cal = plan.calibration
    _group_warnings(plan, result)
    _check_calibration(plan, spec, result)
    runtime = dict(darks=cal.darks or None, bias=cal.bias or None, flats=cal.flats or None, loader=loader)
    pre = _reference_chain(plan, spec, runtime, result)
    _, ref = choose_reference(plan.frames, spec.reference, pre, loader)
    ref = balance_colour(pre, ref, loader, plan.name)
    _reference_hits(ref, spec)
    result.reference = ref.path
    note_colour(ref, plan.name, result.warnings)
    fill_pointing(ref, plan.group)
    quick_detection(pre, ref)
    psf_like_reference(pre, ref)
    psf_shape_of_reference(pre, ref)
    phot = build_blocks(spec, "photometry", reference=ref, **runtime)
    coords = target_coords(spec.target, ctx.config, plan.group)
    frames = getattr(plan, "night_lights", None) or plan.frames
    target = select_target(ref, spec.target, frames=frames, night=plan.night, pre=pre, phot=phot,
                           loader=loader, coords=coords and coords[:2])
    _note_target(ref, target, coords, frames, plan, result)
    spec = ctx.spec = place_comparisons(spec, ref, target, frames=frames, night=plan.night, pre=pre, phot=phot,
                                        loader=loader)
    phot = build_blocks(spec, "photometry", reference=ref, **runtime)  # on the measured stars only
    phot = with_phase_correction(phot, pre, ref, loader, plan.name)
    ctx.ref, ctx.target = ref, target
    _measure(ctx, pre, phot, loader, show_progress=show_progress, fail_fast=fail_fast, executor=executor)
    ctx.check = resolve_check(ref, spec.differential.check, ctx.raw.fluxes.shape[1], target)
    ctx.diff = differential(ctx.raw, spec, check=ctx.check[0])
    note_snapshot(ctx.diff, plan, result.warnings)
    ctx.diff = check_errors(ctx.diff, ref, plan, result.warnings)
    ctx.table = full_table(ctx.raw, ctx.diff, ref, plan.group, result.warnings)
    from ..io.atomic import OutputSet

    ctx.staged = OutputSet(plan.outdir, plan.stem)
    try:
        ctx.figures = submit_figures(ctx)
        try:
            _finish(ctx)
        except BaseException:
            discard_figures(ctx.figures)
            raise
    finally:
        ctx.staged.discard()  # empty after a commit; after a failure, the previous outputs stay


def _reference_chain(plan, spec, runtime, result) -> list:
    """The calibration blocks, a colour sensor's 2x2 binning (a no-op on mono frames), the night's
    hot pixels repaired (:func:`~reduce.run.hotpixels.night_hot_pixels`, found on the binned
    frames), then the detection and PSF blocks."""
    from ..recipe import REFERENCE_SECTIONS, build_blocks

    cal = build_blocks(spec, "calibration", **runtime)
    cal = with_bayer_block(cal, len(cal))
    repair = night_hot_pixels(plan, cal, runtime["loader"], result.warnings)
    rest = build_blocks(spec, [s for s in REFERENCE_SECTIONS if s != "calibration"], **runtime)
    return [*cal, *([repair] if repair is not None else []), *rest]


def _reference_hits(ref, spec) -> None:
    """With CosmicRays in the recipe, the reference's sources that are hits are dropped."""
    from ..blocks.cosmics import reference_without_hits

    if any(b.name == "CosmicRays" for b in spec.blocks("photometry")):
        n = reference_without_hits(ref)
        if n:
            log.info("%d sources of the reference are cosmic-ray hits: not measured", n)


def _measure(ctx: GroupContext, pre, phot, loader, *, show_progress, fail_fast, executor) -> None:
    """Every frame through the chain (``ctx.seq``), collected as raw fluxes (``ctx.raw``)."""
    from ..blocks.alignment import AlignmentMethods, AlignReferenceSources
    from ..blocks.photometry import GetFluxes
    from .pedestal import bias_pedestal
    from ..console import progress
    from ..core.sequence import Sequence

    plan, ref, target = ctx.plan, ctx.ref, ctx.target
    undetected = target in ref.computed.get("added_sources", ())
    for block in phot:
        if hasattr(block, "target"):
            block.target = target
        if undetected and hasattr(block, "fixed"):
            block.fixed = frozenset({target})
        if hasattr(block, "field"):
            block.field = ref.computed.get("field_sources")
    collector = GetFluxes(target=target, pedestal=bias_pedestal(ref, plan.name)["adu"])
    methods = [AlignmentMethods(label=plan.name)] if any(isinstance(b, AlignReferenceSources) for b in phot) else []
    seq = Sequence([*pre, *phot, collector, *methods], name=plan.name)
    items = _frame_items(plan)
    if plan.unmeasured:
        _log_unmeasured(plan)
        loader = _Unmeasured(loader, {str(u[0]): u[1] for u in plan.unmeasured})
    seq.run(items, loader=loader, show_progress=show_progress, fail_fast=fail_fast, executor=executor,
            progress=progress)
    raw = collector.fluxes
    raw.target = target
    _known_times(raw, items, plan)
    # the frames flagged so far, so that a group failing below still reports them
    ctx.result.flagged = [(Path(str(f)).name, int(v), _reason(seq, str(f), int(v)))
                          for f, v in zip(raw.files, raw.flags) if v]
    if ref.saturation is not None:
        raw.meta.setdefault("saturation", float(ref.saturation))
    raw.meta["flat_fielded"] = bool(plan.calibration.flats)  # a flat residual is fitted only without
    ctx.seq, ctx.raw = seq, raw


def _finish(ctx: GroupContext) -> None:
    """Group summary in ``ctx.result``, then every output file."""
    result, diff, table, seq = ctx.result, ctx.diff, ctx.table, ctx.seq
    rejected = _rejection_reasons(diff)
    result.n_frames = len(table)  # every file of the group, measured or not
    result.flagged = [(str(f), int(v), _reason(seq, str(f), int(v), rejected)) for f, v in
                      zip(table["file"], table["flag"]) if v]
    result.aperture = float(diff.aperture_radius)
    result.comparisons = [int(c) for c in diff.comparisons]
    result.scatter = p2p_of_table(table)
    if ctx.logged is not None:
        ctx.logged.merge()  # into the provenance too
    clipped = [f for f in result.flagged if f[1] & int(Flag.OUTLIER_REJECTED)]
    if clipped:
        log.info("%s: %d frame(s) set aside by the differential step:", ctx.plan.name, len(clipped))
        for kind in group_reasons(clipped):
            log.info("%s:   %d frame(s): %s", ctx.plan.name, kind["frames"], kind["reason"])
    result.outputs = write_outputs(ctx)


def target_coords(target_spec, config, group) -> tuple | None:
    """(ra, dec, from) of the target: given with it (``--coords``, the recipe), else the
    config's ``targets:`` entry matching the group's OBJECT; None when neither says."""
    if target_spec.coords is not None:
        return (*target_spec.coords, "given (--coords / recipe target)")
    found = config.coords_for(getattr(group, "target", None)) if hasattr(config, "coords_for") else None
    if found is not None:
        return found[1], found[2], f"config targets: {found[0]}"
    return None


def _note_target(ref, target, coords, frames, plan, result) -> None:
    """The measured star in the group's summary; when ``auto`` had to guess it, a warning (log,
    summary, provenance) naming it and the fix, and the run exits 3."""
    record = ref.computed.setdefault("target", {})
    if coords is not None:
        record["coords"] = {"ra": float(coords[0]), "dec": float(coords[1]), "from": coords[2]}
    result.target = {k: record[k] for k in ("index", "reference_xy", "what", "placed_by", "chosen_by",
                                            "guessed") if record.get(k) is not None}
    w = guessed_target_warning(ref, target, frames)
    if w is not None:
        log.warning("%s: %s", plan.name, w["message"])
        result.warnings.append(w)


def _group_warnings(plan, result) -> None:
    """The header warnings of the group's frames (see :func:`reduce.index.groups.group_warnings`),
    logged once each and kept for the summary and the provenance."""
    for w in getattr(plan.group, "warnings", None) or ():
        log.warning("%s: %s", plan.name, w["message"])
        result.warnings.append(dict(w))
    for old in getattr(plan, "renamed", None) or ():
        w = {"code": "products_renamed", "old": old["stem"], "new": plan.stem, "message":
             f"this group's products were named {old['stem']}.* by an earlier run; they are now "
             f"{plan.stem}.* (names come from the frames' headers) and the old set is removed once "
             "the new one is written"}
        log.warning("%s: %s", plan.name, w["message"])
        result.warnings.append(w)


def _check_calibration(plan, spec, result=None) -> None:
    """Apply the recipe's missing-calibration policy (warn and go on, or fail the group); the
    warning is kept in ``result.warnings`` (summary, JSON, provenance), not only in the log."""
    cal = plan.calibration
    missing = [name for name, files in (("bias", cal.bias), ("dark", cal.darks), ("flat", cal.flats))
               if not files]
    if not missing:
        return
    msg = f"{plan.name}: no {', '.join(missing)} frames match this group"
    if spec.missing_calibration == "fail":
        raise ReduceError(msg + " (recipe says missing_calibration: fail)")
    what = ", ".join(missing[:-1]) + (" or " if len(missing) > 1 else "") + missing[-1]
    message = f"no {what} frames match this group: no {what} applied (missing_calibration: warn)"
    if result is not None:
        result.warnings.append({"code": "no_calibration", "frames": len(plan.frames), "missing": missing,
                                "message": message})
    log.warning("%s: %s", plan.name, message)


class _Unmeasured:
    """Loader for a group's frames that refuses its unmeasurable files with their reason (an
    ``UNREADABLE`` row, no traceback) and loads the others with ``loader``; picklable."""

    def __init__(self, loader, reasons: dict):
        self.loader, self.reasons = loader, reasons

    def __call__(self, path, *args, **kwargs):
        from ..model.errors import Unreadable

        reason = self.reasons.get(str(path))
        if reason is not None:
            raise Unreadable(reason)
        return self.loader(path, *args, **kwargs)


def _frame_items(plan) -> list:
    """Every file of the group in time order (the measurable frames and the unmeasured files
    whose time is known); unmeasured files of unknown time last, by name."""
    timed = [(plan.times.get(f), i, str(f)) for i, f in enumerate(plan.frames)]
    timed += [(u[2], len(timed) + i, str(u[0])) for i, u in enumerate(plan.unmeasured) if u[2] is not None]
    timed.sort(key=lambda t: (t[0] if t[0] is not None else float("inf"), t[1]))
    untimed = sorted(str(u[0]) for u in plan.unmeasured if u[2] is None)
    return [t[2] for t in timed] + untimed


def _log_unmeasured(plan) -> None:
    """One warning naming every file of the group that cannot be measured, with its reason."""
    names = "; ".join(f"{Path(str(u[0])).name} ({u[1]})" for u in plan.unmeasured)
    log.warning("%s: %d file(s) of this group cannot be measured, each flagged UNREADABLE in the "
                "light curve: %s", plan.name, len(plan.unmeasured), names,
                extra={"in_report": "unmeasured"})


def _known_times(raw, items, plan) -> None:
    """Unmeasured files whose time the index knows (e.g. wrong size) keep it in their row."""
    known = {str(u[0]): u[2] for u in plan.unmeasured if u[2] is not None}
    for i, path in enumerate(items):
        if path in known and not np.isfinite(raw.time[i]):
            raw.time[i] = known[path]


def _rejection_reasons(diff) -> dict:
    """File name -> why the differential step set the frame aside (``meta['rejected']``)."""
    out = {}
    for r in diff.meta.get("rejected", []) + diff.meta.get("aperture_issues", []):
        if r.get("reason") and r["reason"] != "flagged upstream":
            out.setdefault(Path(str(r.get("file", ""))).name, str(r["reason"]))
    return out


def _reason(seq, file: str, flags: int, rejected: dict | None = None) -> str:
    """Why a frame was flagged: the Sequence's recorded messages and the differential step's
    rejection reason (e.g. "sky outlier: 4.2 sigma from its trend (> 3)"), else the flag names."""
    from ..model.flags import decode_flags

    name = Path(file).name
    msgs = [f"{i.block}: {i.message}" for i in seq.issues if Path(str(i.frame)).name == name]
    if flags & int(Flag.OUTLIER_REJECTED):
        msgs.append((rejected or {}).get(name, "outlier rejected by sigma clipping"))
    elif name in (rejected or {}):  # the chosen target aperture could not be measured there
        msgs.append(rejected[name])
    return "; ".join(msgs) or ", ".join(decode_flags(flags))


def _utc_now() -> str:
    """Now, UTC, ISO 8601 to the millisecond (group start and end times in the summary)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
