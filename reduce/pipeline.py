"""Reduce one light group: masters, reference frame, target, every frame, differential light curve.

Used by :mod:`reduce.runner`; everything here works on one :class:`~reduce.report.GroupPlan` and
fills its :class:`~reduce.report.GroupResult`. Expected failures raise ``ReduceError`` (the group is
skipped with that message); per-frame problems are flags in the table.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from .core.errors import Flag, ReduceError

__all__ = ["reduce_frames", "choose_reference", "select_target", "resolve_target", "place_pixel_target",
           "target_frame", "lightcurve_table"]

log = logging.getLogger("reduce.pipeline")

# frames with these bits carry no usable target flux: they stay in the table with NaN flux
EXCLUDED = (Flag.UNREADABLE | Flag.NO_SOURCES | Flag.ALIGNMENT_FAILED | Flag.UNEXPECTED
            | Flag.TARGET_SATURATED | Flag.TARGET_NEAR_EDGE | Flag.TARGET_MASKED)
MIN_REFERENCE_SOURCES = 3
QUICK_STARS = 150  # frames of denser fields are detected down to about this many stars
TARGET_FRAME_TRIES = 5  # first frames tried to place a pixel target given on the first frame


def reduce_frames(plan, spec, result, *, config=None, show_progress=True, fail_fast=False,
                  executor=None, plotter=None) -> None:
    """The whole chain for one group; fills ``result`` (outputs, choices, flagged frames).

    Figures are drawn by ``plotter`` (a :class:`reduce.plotter.Plotter` shared by a run), else
    in-process.
    """
    from .io.fitsimage import FITSImage

    loader = functools.partial(FITSImage, config=config) if config is not None else FITSImage
    _reduce_frames(plan, spec, result, config=config, show_progress=show_progress, fail_fast=fail_fast,
                   executor=executor, loader=loader, plotter=plotter)


def _reduce_frames(plan, spec, result, *, config, show_progress, fail_fast, executor, loader,
                   plotter) -> None:
    """reduce_frames' body: masters, reference, target, every frame, light curve, outputs."""
    from .blocks.alignment import AlignmentMethods, AlignReferenceSources
    from .blocks.photometry import GetFluxes
    from .core.sequence import Sequence
    from .recipe import REFERENCE_SECTIONS, build_blocks

    cal = plan.calibration
    _group_warnings(plan, result)
    _check_calibration(plan, spec)
    runtime = dict(darks=cal.darks or None, bias=cal.bias or None, flats=cal.flats or None, loader=loader)
    pre = build_blocks(spec, REFERENCE_SECTIONS, **runtime)
    ref_index, ref = choose_reference(plan.frames, spec.reference, pre, loader)
    result.reference = ref.path
    _fill_pointing(ref, plan.group)
    _quick_detection(pre, ref)
    phot = build_blocks(spec, "photometry", reference=ref, **runtime)
    target = select_target(ref, spec.target, frames=getattr(plan, "night_lights", None) or plan.frames,
                           night=plan.night, pre=pre, phot=phot, loader=loader)
    phot = build_blocks(spec, "photometry", reference=ref, **runtime)  # on the measured stars only
    undetected = target in ref.computed.get("added_sources", ())
    for block in phot:
        if hasattr(block, "target"):
            block.target = target
        if undetected and hasattr(block, "fixed"):
            block.fixed = frozenset({target})
    collector = GetFluxes(target=target)
    methods = [AlignmentMethods(label=plan.name)] if any(isinstance(b, AlignReferenceSources) for b in phot) else []
    seq = Sequence([*pre, *phot, collector, *methods], name=plan.name)
    items = _frame_items(plan)
    if plan.unmeasured:
        _log_unmeasured(plan)
        loader = _Unmeasured(loader, {str(u[0]): u[1] for u in plan.unmeasured})
    seq.run(items, loader=loader, show_progress=show_progress, fail_fast=fail_fast, executor=executor)
    raw = collector.fluxes
    raw.target = target
    _known_times(raw, items, plan)
    # the frames flagged so far, so that a group failing below still reports them
    result.flagged = [(Path(str(f)).name, int(v), _reason(seq, str(f), int(v)))
                      for f, v in zip(raw.files, raw.flags) if v]
    if ref.saturation is not None:
        raw.meta.setdefault("saturation", float(ref.saturation))
    diff = _errors_without_gain(_differential(raw, spec), ref, plan, result.warnings)
    table = _full_table(raw, diff, ref, plan.group, result.warnings)
    from .io.atomic import OutputSet

    staged = OutputSet(plan.outdir, plan.stem)
    try:
        figures = _submit_figures(plan, spec, diff, ref, target, plotter, staged, table)
        try:
            _finish(plan, spec, config, raw, diff, table, ref, target, seq, result, figures, staged)
        except BaseException:
            _discard_figures(figures)
            raise
    finally:
        staged.discard()  # empty after a commit; after a failure, the previous outputs stay


def _finish(plan, spec, config, raw, diff, table, ref, target, seq, result, figures, staged) -> None:
    """Group summary in ``result``, then every output file."""
    rejected = _rejection_reasons(diff)
    result.n_frames = len(table)  # every file of the group, measured or not
    result.flagged = [(str(f), int(v), _reason(seq, str(f), int(v), rejected)) for f, v in
                      zip(table["file"], table["flag"]) if v]
    result.aperture = float(diff.aperture_radius)
    result.comparisons = [int(c) for c in diff.comparisons]
    result.scatter = _p2p_scatter(table)
    clipped = [f for f, v, _ in result.flagged if v & int(Flag.OUTLIER_REJECTED)]
    if clipped:
        log.info("%s: %d frame(s) set aside by the differential step (outliers)", plan.name, len(clipped))
    result.outputs = _write_outputs(plan, spec, config, raw, diff, table, ref, target, seq, result,
                                    figures=figures, staged=staged)


def _quick_detection(blocks, ref) -> None:
    """On a dense field, detect the frames only down to about their ``QUICK_STARS`` brightest stars.

    Frames need their own detections only to be aligned and to measure the PSF (the stars measured
    come from the reference), and sep's cost grows with every star: 20 ms for the 1,000 stars of a
    650x500 frame, 5 ms for 150. The threshold is a quarter of the reference's ``QUICK_STARS``-th
    highest peak (in background sigmas), a margin for frames with 2x the FWHM or 1.5 mag of
    extinction; a frame where it finds too few stars is detected at the recipe's threshold.
    """
    from .blocks.detection import PointSourceDetection

    s = ref.sources
    rms = ref.bkg_rms
    if s is None or s.peak is None or len(s) <= 2 * QUICK_STARS or not rms or not np.isfinite(rms):
        return
    snr = np.sort(np.asarray(s.peak, float)[np.isfinite(s.peak)])[::-1] / float(rms)
    if len(snr) <= QUICK_STARS:
        return
    quick = 0.25 * float(snr[QUICK_STARS])
    for block in blocks:
        if isinstance(block, PointSourceDetection) and quick > block.threshold:
            block.quick_threshold = quick
            log.info("dense field (%d stars on the reference): frames are detected above %.0f sigma "
                     "first (about their %d brightest stars), enough to align them", len(s), quick,
                     QUICK_STARS)


def _group_warnings(plan, result) -> None:
    """The header warnings of the group's frames (see :func:`reduce.index.groups.group_warnings`),
    logged once each and kept for the summary and the provenance."""
    for w in getattr(plan.group, "warnings", None) or ():
        log.warning("%s: %s", plan.name, w["message"])
        result.warnings.append(dict(w))


def _fill_pointing(ref, group) -> None:
    """A reference frame without usable RA/DEC takes its group's (the other frames' pointing), for
    the automatic target and the BJD_TDB; the log says so."""
    if (ref.ra is None or ref.dec is None) and getattr(group, "ra", None) is not None:
        ref.ra, ref.dec = float(group.ra), float(group.dec)
        log.info("reference %s has no usable RA/DEC: using the group's pointing (%.5f, %+.5f)",
                 Path(str(ref.path)).name, ref.ra, ref.dec)


class _Unmeasured:
    """Loader for a group's frames that refuses its unmeasurable files with their reason (an
    ``UNREADABLE`` row, no traceback) and loads the others with ``loader``; picklable."""

    def __init__(self, loader, reasons: dict):
        self.loader, self.reasons = loader, reasons

    def __call__(self, path, *args, **kwargs):
        from .core.errors import Unreadable

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
                "light curve: %s", plan.name, len(plan.unmeasured), names)


def _known_times(raw, items, plan) -> None:
    """Unmeasured files whose time the index knows (e.g. wrong size) keep it in their row."""
    known = {str(u[0]): u[2] for u in plan.unmeasured if u[2] is not None}
    for i, path in enumerate(items):
        if path in known and not np.isfinite(raw.time[i]):
            raw.time[i] = known[path]


def _check_calibration(plan, spec) -> None:
    """Apply the recipe's missing-calibration policy (warn and go on, or fail the group)."""
    cal = plan.calibration
    missing = [name for name, files in (("bias", cal.bias), ("dark", cal.darks), ("flat", cal.flats))
               if not files]
    if not missing:
        return
    msg = f"{plan.name}: no {', '.join(missing)} frames match this group"
    if spec.missing_calibration == "fail":
        raise ReduceError(msg + " (recipe says missing_calibration: fail)")
    log.warning("%s; going on without (missing_calibration: warn)", msg)


def _prepare(blocks, path, loader):
    """Load and run the reference chain on one frame; None when it fails or finds too little."""
    from .core.sequence import run_frame

    try:
        image = run_frame(blocks, path, loader)
    except Exception as e:  # run_frame isolates block errors; a loader crash lands here
        log.warning("reference candidate %s failed: %s", path, e)
        return None
    if image.flags or image.sources is None or len(image.sources) < MIN_REFERENCE_SOURCES \
            or image.fwhm is None or not np.isfinite(image.fwhm):
        reasons = "; ".join(m for _, _, m in image.issues) or "too few sources or no fwhm"
        log.info("reference candidate %s rejected: %s", Path(str(path)).name, reasons)
        return None
    return image


def choose_reference(frames, ref_spec, blocks, loader):
    """(index, Image) of the reference frame, processed by the calibration/detection/psf blocks.

    ``first``/``middle``/index use that frame, or the nearest usable one after it; ``best`` takes
    the smallest fwhm among ``sample`` frames spread over the group.
    """
    n = len(frames)
    for block in blocks:
        block.setup(None)
    if ref_spec.method == "best":
        candidates = np.unique(np.linspace(0, n - 1, min(n, max(1, ref_spec.sample))).round().astype(int))
        scored = []
        for i in candidates:
            image = _prepare(blocks, frames[i], loader)
            if image is not None:
                scored.append((float(image.fwhm) / np.sqrt(min(len(image.sources), 50)), int(i), image))
        if scored:
            _, i, image = min(scored, key=lambda s: s[:2])
            return i, image
        order = range(n)
    else:
        start = {"first": 0, "middle": n // 2}.get(ref_spec.method, ref_spec.index)
        if start is None or not 0 <= start < n:
            raise ReduceError(f"reference frame {start} does not exist (the group has {n} frames)")
        order = list(range(start, n)) + list(range(start - 1, -1, -1))
    for i in order[:50]:
        image = _prepare(blocks, frames[i], loader)
        if image is not None:
            if i != order[0]:
                log.warning("reference frame %d unusable; using frame %d instead", order[0], i)
            return i, image
    raise ReduceError("no usable reference frame: no stars detected in the frames tried "
                      "(clouds? wrong detection threshold?)")


def select_target(ref, target_spec, *, frames=(), night=None, pre=(), phot=(), loader=None) -> int:
    """Index of the target among the reference's measured stars, which this sets.

    ``frames``: the light frames (by time) a pixel target may be given on, the first by default:
    the night's frames of this telescope and target (``GroupPlan.night_lights``), else the
    group's. A pixel target is placed on the reference first (:func:`place_pixel_target`), then the
    reference's sources are capped to the stars measured on every frame (the ``max_stars`` of the
    alignment block, :meth:`AlignReferenceSources.measured`), the target always kept. An index
    target means the index in that capped list, the one the reference figure labels.
    """
    if target_spec.kind == "index":
        _cap_sources(ref, phot, keep=None)
        return resolve_target(ref, target_spec)
    mapped = None
    if target_spec.kind == "pixel":
        mapped = place_pixel_target(ref, target_spec, frames=frames, night=night, pre=pre,
                                    align=_alignment_blocks(phot, ref), loader=loader)
    return _cap_sources(ref, phot, keep=resolve_target(ref, target_spec, mapped=mapped))


def resolve_target(ref, target_spec, *, mapped=None) -> int:
    """Index of the target in the reference's sources (a pixel/sky position not detected is added).

    ``mapped``: for a pixel target, its position on the reference (trimmed pixels), from
    :func:`place_pixel_target`; without it the pixels are taken on the reference itself.
    The placement (given, mapped and snapped positions) is kept in ``ref.computed['target']``.
    """
    sources = ref.sources
    kind = target_spec.kind
    if kind == "index":
        if not 0 <= target_spec.index < len(sources):
            raise ReduceError(f"target #{target_spec.index} does not exist: the reference frame has "
                              f"{len(sources)} measured stars (0..{len(sources) - 1}, as labelled in "
                              "the reference figure); give the target by position (--target X,Y) instead")
        ref.computed["target"] = {"given": {"index": int(target_spec.index)}, "index": int(target_spec.index)}
        return int(target_spec.index)
    if kind == "sky":
        if ref.wcs is None:
            raise ReduceError("target given as RA/Dec but the reference frame has no WCS; "
                              "give it as pixel coordinates (--target X,Y) or an index")
        x, y = _sky_to_pixel(ref, target_spec.ra, target_spec.dec)
        ref.computed["target"] = {"given": {"ra": target_spec.ra, "dec": target_spec.dec}}
        return _source_near(ref, x, y, f"RA {target_spec.ra:.5f} Dec {target_spec.dec:+.5f}")
    if kind == "pixel":
        if mapped is None:
            x0, _, y0, _ = _trim(ref)
            mapped = (target_spec.x - x0, target_spec.y - y0)
            ref.computed["target"] = {"given": {"x": target_spec.x, "y": target_spec.y, "frame": ref.path},
                                      "mapped_by": "identity (the reference)"}
        where = ref.computed.get("target", {}).get("given", {}).get("frame")
        what = f"pixel ({target_spec.x:g}, {target_spec.y:g})" + (f" of {Path(str(where)).name}" if where else "")
        return _source_near(ref, mapped[0], mapped[1], what)
    ref.computed["target"] = {"given": "auto"}
    return _auto_target(ref)


def _trim(image) -> tuple:
    """(x0, x1, y0, y1) of the Trim applied to ``image`` (file pixel = trimmed pixel + x0, y0)."""
    return image.computed.get("trim", (0, None, 0, None))


def _alignment_blocks(phot, ref) -> list:
    """The recipe's alignment blocks (those providing ``transform``), else a default one."""
    blocks = [b for b in phot if "transform" in getattr(b, "provides", ())]
    if not blocks:
        from .blocks.alignment import AlignReferenceSources

        blocks = [AlignReferenceSources(ref)]
    return blocks


def target_frame(name: str | None, frames, night=None) -> Path:
    """The light frame a pixel target is given on: ``name`` (a file name, or a path relative to the
    night folder) or, by default, the first of ``frames`` (the night's light frames, by time)."""
    paths = [Path(str(f)) for f in frames]
    if not name:
        if not paths:
            raise ReduceError("no light frame to place the target on")
        return paths[0]
    wanted = Path(name)
    root = Path(night).resolve() if night is not None else None
    found = [p for p in paths if p.name == wanted.name and (len(wanted.parts) == 1 or (
        root is not None and _relative_to(p, root) == wanted.as_posix()) or p == wanted)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ReduceError(f"target frame {name!r} matches {len(found)} files ("
                          + ", ".join(_relative_to(p, root) for p in found[:4])
                          + "); give its path relative to the night folder")
    if root is not None and (root / wanted).is_file():  # a frame of another group of the night
        return root / wanted
    example = paths[0].name if paths else "FILE"
    raise ReduceError(f"target frame {name!r} is not a light frame of this night ({night}); give "
                      f"a file name such as {example!r} or a path relative to the night folder")


def _same_file(a, b) -> bool:
    try:
        return Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


def place_pixel_target(ref, target_spec, *, frames=(), night=None, pre=(), align=(), loader=None) -> tuple:
    """(x, y) on the reference (trimmed pixels) of a pixel target given on a light frame.

    The frame (:func:`target_frame`: named, else the first one) goes through the reference chain
    (calibration, detection, psf), then the ``align`` blocks, whose transform (reference ->
    frame) is inverted; on the reference itself the position is used as it is. When the first
    frame cannot be used or aligned, the next ones are tried (up to ``TARGET_FRAME_TRIES``), the
    pointing assumed unchanged since the first, with a warning; a named frame is never replaced.
    The placement is recorded in ``ref.computed['target']``; ReduceError when nothing places it.
    """
    path = target_frame(target_spec.frame, frames, night)
    candidates = [path]
    if not target_spec.frame:
        candidates = [Path(str(f)) for f in frames][:TARGET_FRAME_TRIES] or [path]
    label = f"pixel ({target_spec.x:g}, {target_spec.y:g}) of {path.name}"
    problems = []
    for frame in candidates:
        try:
            xy, how = _map_to_reference(ref, frame, target_spec.x, target_spec.y, pre, align, loader)
        except _Unplaced as e:
            problems.append(f"{frame.name}: {e}")
            continue
        record = {"given": {"x": float(target_spec.x), "y": float(target_spec.y), "frame": path}, **how}
        if frame != path:
            record["read_on"] = frame
            log.warning("target: %s could not be placed on the reference (%s); taking that position on "
                        "%s instead, assuming the pointing did not move between them (give the frame "
                        "the position was read on with --target X,Y@FILE)", path.name, "; ".join(problems),
                        frame.name)
        ref.computed["target"] = record
        rx0, _, ry0, _ = _trim(ref)
        log.info("target: %s -> (%.1f, %.1f) on the reference %s (%s)", label, xy[0] + rx0, xy[1] + ry0,
                 Path(str(ref.path)).name, how["mapped_by"])
        return xy
    refname = Path(str(ref.path)).name
    raise ReduceError(f"target {label} cannot be placed on the reference {refname}: "
                      + "; ".join(problems) + f". Give the position on another frame (--target X,Y@FILE) "
                      f"or on the reference (--target X,Y@{refname})")


class _Unplaced(Exception):
    """A frame on which a target position cannot be mapped onto the reference (the reason)."""


def _map_to_reference(ref, frame, x, y, pre, align, loader) -> tuple:
    """((x, y) on the reference in trimmed pixels, how) of file pixel (x, y) of ``frame``."""
    from .algorithms.asterism import apply_transform
    from .core.sequence import run_frame

    rx0, _, ry0, _ = _trim(ref)
    if _same_file(frame, ref.path):
        return (x - rx0, y - ry0), {"mapped_by": "identity (the reference frame itself)"}
    image = run_frame(pre, frame, loader)
    if image.flags or image.sources is None or not len(image.sources):
        raise _Unplaced("; ".join(m for _, _, m in image.issues) or "no stars detected")
    x0, _, y0, _ = _trim(image)
    h, w = image.data.shape
    if not (x0 - 0.5 <= x < x0 + w - 0.5 and y0 - 0.5 <= y < y0 + h - 0.5):
        raise ReduceError(f"target pixel ({x:g}, {y:g}) is outside {Path(str(frame)).name} "
                          f"(x {x0}..{x0 + w - 1}, y {y0}..{y0 + h - 1})")
    for block in align:
        block.setup(None)
        try:
            block.run(image)
        except Exception as e:
            raise _Unplaced(f"not aligned on the reference: {e}") from None
    t = np.linalg.inv(np.asarray(image.transform, float))
    mx, my = apply_transform(t, [[x - x0, y - y0]])[0]
    info = image.computed.get("alignment") or {}
    how = {"mapped_by": f"alignment ({align[-1].name})", "mapped": [float(mx) + rx0, float(my) + ry0],
           "alignment": {k: info[k] for k in ("matched", "rms", "method") if k in info}}
    return (float(mx), float(my)), how


def _cap_sources(ref, phot, *, keep) -> int | None:
    """Cap ``ref.sources`` to the stars measured on every frame (the alignment block's
    ``max_stars``, brightest first, the ``keep`` star always kept: last when not among them); returns
    the new index of ``keep``."""
    blocks = [b for b in phot if hasattr(b, "measured")]
    if not blocks:
        return keep
    idx = blocks[0].measured(ref.sources, keep=() if keep is None else (keep,))
    n = len(ref.sources)
    if len(idx) == n:
        return keep
    ref.sources = ref.sources[idx]
    new = {int(old): i for i, old in enumerate(idx)}
    if "added_sources" in ref.computed:
        ref.computed["added_sources"] = [new[i] for i in ref.computed["added_sources"] if i in new]
    cap = blocks[0].max_stars
    added = keep is not None and new[int(keep)] >= cap
    log.info("%d stars detected on the reference: measuring the %d brightest unsaturated ones "
             "(max_stars of %s)%s", n, min(cap, len(idx)), blocks[0].name,
             f", and the target as #{new[int(keep)]}" if added else "")
    if keep is None:
        return None
    record = ref.computed.get("target")
    if isinstance(record, dict):
        record.update(index=new[int(keep)], detected_index=int(keep))
    return new[int(keep)]


def _sky_to_pixel(ref, ra, dec):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    x, y = ref.wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    x0, _, y0, _ = ref.computed.get("trim", (0, None, 0, None))
    return float(x) - x0, float(y) - y0


def _source_near(ref, x, y, what: str) -> int:
    """The detected source nearest (x, y) within 1.5 FWHM (at least 3 px), or (x, y) appended as
    a new source when none is there; the snap is logged and recorded in ``ref.computed['target']``."""
    from .image import Sources

    h, w = ref.data.shape
    x0, _, y0, _ = _trim(ref)
    record = ref.computed.setdefault("target", {})
    record["mapped"] = [float(x) + x0, float(y) + y0]
    if not (0 <= x < w and 0 <= y < h):
        raise ReduceError(f"target {what} falls at ({x + x0:.1f}, {y + y0:.1f}) on the reference "
                          f"{Path(str(ref.path)).name}, outside it ({w}x{h} px)")
    s = ref.sources
    d = np.hypot(s.x - x, s.y - y)
    radius = max(3.0, 1.5 * float(ref.fwhm or 3.0))
    record["snap_radius_px"] = radius
    if len(d) and d.min() <= radius:
        i = int(np.argmin(d))
        record.update(snapped=[float(s.x[i]) + x0, float(s.y[i]) + y0], snap_distance_px=float(d[i]), index=i)
        log.info("target: %s snapped to star #%d at (%.1f, %.1f) on the reference, %.1f px away", what, i,
                 s.x[i] + x0, s.y[i] + y0, d[i])
        return i
    log.warning("no star detected within %.1f px of (%.1f, %.1f) on the reference (target %s): "
                "measuring that position as given; check the position (reference figure) or "
                "give the frame it was read on (--target X,Y@FILE)", radius, x + x0, y + y0, what)
    record.update(snapped=None, index=len(s))
    kw = {}
    for name in ("flux", "peak", "a", "b", "theta"):
        v = getattr(s, name)
        kw[name] = None if v is None else np.r_[v, np.nan]
    kw["saturated"] = np.r_[s.saturated, False]
    kw["edge"] = np.r_[s.edge, False]
    ref.sources = Sources(np.vstack([s.coords, [[x, y]]]), **kw)
    ref.computed.setdefault("added_sources", []).append(len(ref.sources) - 1)
    return len(ref.sources) - 1


def _auto_target(ref) -> int:
    """Header RA/Dec through the WCS when present, else the brightest unsaturated star near the centre."""
    if ref.wcs is not None and ref.ra is not None and ref.dec is not None:
        try:
            x, y = _sky_to_pixel(ref, ref.ra, ref.dec)
            h, w = ref.data.shape
            if 0 <= x < w and 0 <= y < h:
                return _source_near(ref, x, y, "the header RA/Dec")
        except Exception as e:  # a broken WCS falls back to the geometric choice
            log.debug("auto target from WCS failed: %s", e)
    s = ref.sources
    h, w = ref.data.shape
    d = np.hypot(s.x - w / 2, s.y - h / 2)
    ok = ~s.saturated & ~s.edge & (d < 0.2 * min(h, w))
    i = int(np.flatnonzero(ok)[0]) if ok.any() else int(np.argmin(d))  # sources: brightest first
    ref.computed.setdefault("target", {})["index"] = i
    return i


def lightcurve_table(raw, spec, ref):
    """(differential Fluxes, astropy Table of every frame) for the recipe's differential settings."""
    diff = _differential(raw, spec)
    return diff, _full_table(raw, diff, ref)


def _differential(raw, spec):
    """Differential Fluxes of the usable frames, with the recipe's clipping and comparison choice."""
    n = len(raw)
    raw.data["frame_index"] = np.arange(n)
    tflux = raw.fluxes[:, raw.target, :]
    usable = ((raw.flags & int(EXCLUDED)) == 0) & np.isfinite(tflux).any(axis=0) & (np.nanmax(
        np.where(np.isfinite(tflux), tflux, -np.inf), axis=0) > 0)
    if usable.sum() < 2:
        raise ReduceError(f"only {int(usable.sum())} usable frame(s) for the target: nothing to "
                          "make a light curve from (see the flagged frames)")
    flagged = (raw.flags & int(EXCLUDED)) != 0
    why = np.where(flagged, "flagged upstream", "no positive target flux in any aperture")
    good = raw.mask(usable, reason=why, flag=Flag.NONE)
    dspec = spec.differential
    if dspec.sigma_clip:
        good = good.sigma_clipping_data(**dspec.sigma_clip)
    try:
        kwargs = dspec.fluxes_kwargs()  # max_comps, reject, exclude, scatter (and dt) of the recipe
        if dspec.method == "diff":
            diff = good.diff(kwargs.pop("comps"), **kwargs)
        else:
            diff = good.autodiff(**kwargs)
    except ValueError as e:
        raise ReduceError(f"differential photometry failed: {e}")
    return diff


def _errors_without_gain(diff, ref, plan, warnings):
    """Without a gain (no GAIN/EGAIN header, none in the config) the CCD equation's errors assume
    1 e-/ADU, which can be many times off (a 12-bit camera's sky of 1.5 ADU rms): scale the
    differential errors to the light curve's point-to-point scatter, and say so."""
    gain = getattr(ref, "gain", None)
    if gain is not None and np.isfinite(gain) and gain > 0:
        return diff
    from .diffphot import p2p_scatter

    flux, err = np.asarray(diff.flux, float), np.asarray(diff.error, float)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    if ok.sum() < 10:
        return diff
    scale = float(p2p_scatter(flux[ok]) / np.median(err[ok]))
    if not np.isfinite(scale) or scale <= 0:
        return diff
    out = diff._replace(errors=diff.errors * scale)
    out.meta["error_scale"] = scale
    w = {"code": "errors_scaled", "frames": int(ok.sum()), "message":
         f"no gain (no GAIN/EGAIN header, no `gain:` in the config): the flux errors of the CCD "
         f"equation (1 e-/ADU assumed) were {1 / scale:.2f}x the light curve's point-to-point "
         f"scatter and are scaled to it; set `gain:` for this instrument in the config to get errors "
         f"from the CCD equation"}
    log.warning("%s: %s", plan.name, w["message"])
    warnings.append(w)
    return out


def _full_table(raw, diff, ref, group=None, warnings=None):
    """One row per frame of the group: differential flux where measured, NaN and a flag elsewhere.

    ``group`` (the index's) gives the site and pointing when the reference frame lacks them;
    what had to be computed is appended to ``warnings``."""
    from .io.tables import lightcurve_table

    n = len(raw)
    idx = np.asarray(diff.data["frame_index"], int)
    flux = np.full(n, np.nan)
    err = np.full(n, np.nan)
    flux[idx] = diff.flux
    err[idx] = diff.error
    flags = raw.flags.astype(np.int64).copy()
    flags[idx] |= diff.flags  # the target's chosen aperture not measured there (edge, mask)
    kept = np.zeros(n, bool)
    kept[idx] = True
    # frames set aside here (not flagged upstream: no usable target flux, or clipped) carry
    # OUTLIER_REJECTED; meta['rejected'] says why (see _rejection_reasons)
    clipped = ~kept & ((raw.flags & int(EXCLUDED)) == 0)
    flags[clipped] |= int(Flag.OUTLIER_REJECTED)
    cols = {"time": raw.time}
    ra, dec = _target_coords(ref, raw, group)
    site = _site(ref, group)
    _missing_geometry(ra, site, warnings)
    cols["bjd_tdb"] = _bjd(raw.time, ra, dec, site)
    cols["flux"], cols["flux_err"] = flux, err
    cols["airmass"] = _airmass_column(raw, ra, dec, site, warnings)
    for name in ("fwhm", "sky", "dx", "dy", "x", "y"):
        v = raw.get(name)
        cols[name] = np.full(n, np.nan) if v is None else np.asarray(v, float)
    cols["flag"] = flags
    cols["file"] = [Path(str(f)).name for f in raw.files]
    meta = {"target": int(raw.target), "aperture": int(diff.aperture),
            "aperture_radius": float(diff.aperture_radius),
            "comparisons": [int(c) for c in diff.comparisons],
            "weights": [float(w) for w in diff.weights]}
    if ra is not None:
        meta.update({"target_ra": float(ra), "target_dec": float(dec)})
    return lightcurve_table(cols, meta)


def _missing_geometry(ra, site, warnings) -> None:
    """Say plainly when BJD_TDB or the computed airmass cannot be had (never a silent NaN column)."""
    found = []
    if ra is None:
        found.append({"code": "no_target_coordinates", "frames": 0, "message":
                      "bjd_tdb is NaN: the target's RA/Dec are unknown (no WCS, no usable RA/DEC in "
                      "the headers); give the target as RA/Dec with a WCS, or fix the headers"})
    elif site[0] is None or site[1] is None:
        found.append({"code": "no_site", "frames": 0, "message":
                      "no site latitude/longitude (headers or config): bjd_tdb is geocentric (< 21 ms "
                      "off) and a missing airmass cannot be computed; set `site:` for this "
                      "instrument in the config"})
    for w in found:
        log.warning("%s", w["message"])
        if warnings is not None:
            warnings.append(w)


def _airmass_column(raw, ra, dec, site, warnings=None):
    """The frames' header airmass; frames without one (or with an absurd one) get it computed
    from the target and site (erfa, see :mod:`reduce.ephemeris`), and ``warnings`` says so."""
    n = len(raw)
    airmass = raw.get("airmass")
    airmass = np.full(n, np.nan) if airmass is None else np.asarray(airmass, float).copy()
    missing = ~np.isfinite(airmass)
    if not missing.any() or ra is None or site[0] is None or site[1] is None:
        return airmass
    from .ephemeris import airmass as _airmass

    airmass[missing] = _airmass(np.asarray(raw.time, float)[missing], ra, dec, site[0], site[1], site[2])
    if warnings is not None and missing.sum() < n:
        names = [Path(str(f)).name for f in np.asarray(raw.files)[missing]]
        warnings.append({"code": "airmass_computed", "frames": int(missing.sum()), "message":
                         f"{len(names)} frame(s) without a usable AIRMASS ({', '.join(names[:3])}"
                         f"{', ...' if len(names) > 3 else ''}): computed from the target "
                         f"(RA {ra:.4f}, Dec {dec:+.4f}) and the site"})
        log.info("%s", warnings[-1]["message"])
    return airmass


def _target_coords(ref, raw, group=None):
    """Target RA/Dec (deg): through the reference WCS when present, else the header pointing
    (the reference's, else that of the group's frames: one frame may lack RA/DEC)."""
    radec = _stars_radec(ref, raw.target + 1)
    if radec is not None:
        return float(radec[raw.target, 0]), float(radec[raw.target, 1])
    if ref.ra is not None and ref.dec is not None:
        return float(ref.ra), float(ref.dec)
    if getattr(group, "ra", None) is not None and getattr(group, "dec", None) is not None:
        return float(group.ra), float(group.dec)
    return None, None


def _site(ref, group=None):
    """(latitude, longitude east-positive, elevation): the group's (its frames', with a west-positive
    header longitude corrected), else the reference's instrument config or header."""
    if getattr(group, "site", None) is not None:
        return tuple(group.site)
    from .index.headers import site

    return site(ref.header if ref.header is not None else {}, ref.instrument)


def _bjd(time, ra, dec, site):
    if ra is None:
        return np.full(len(time), np.nan)
    from .ephemeris import bjd_tdb

    time = np.asarray(time, float)
    out = np.full(len(time), np.nan)
    ok = np.isfinite(time)  # files that could not be read have no time
    if not ok.any():
        return out
    try:
        out[ok] = bjd_tdb(time[ok], ra, dec, site[0], site[1], site[2])
    except Exception as e:
        log.warning("BJD_TDB not computed: %s", e)
    return out


def _p2p_scatter(table) -> float | None:
    """Point-to-point scatter of the normalised flux of the kept frames (relative): the noise of
    one frame, insensitive to the signal (a transit or a slow trend) that an RMS would include."""
    from .diffphot import p2p_scatter

    flux = np.asarray(table["flux"], float)
    flux = flux[np.isfinite(flux)]
    if flux.size < 3 or not np.nanmedian(flux) > 0:
        return None
    value = float(p2p_scatter(flux / np.nanmedian(flux)))
    return value if np.isfinite(value) else None


def _rejection_reasons(diff) -> dict:
    """File name -> why the differential step set the frame aside (``meta['rejected']``)."""
    out = {}
    for r in diff.meta.get("rejected", []) + diff.meta.get("aperture_issues", []):
        if r.get("reason") and r["reason"] != "flagged upstream":
            out.setdefault(Path(str(r.get("file", ""))).name, str(r["reason"]))
    return out


def _reason(seq, file: str, flags: int, rejected: dict | None = None) -> str:
    """Why a frame was flagged: the Sequence's recorded messages and the differential step's
    rejection reason (e.g. "sky outlier: 4.2 sigma > 3"), else the flag names."""
    from .core.errors import decode_flags

    name = Path(file).name
    msgs = [f"{i.block}: {i.message}" for i in seq.issues if Path(str(i.frame)).name == name]
    if flags & int(Flag.OUTLIER_REJECTED):
        msgs.append((rejected or {}).get(name, "outlier rejected by sigma clipping"))
    elif name in (rejected or {}):  # the chosen target aperture could not be measured there
        msgs.append(rejected[name])
    return "; ".join(msgs) or ", ".join(decode_flags(flags))


def _figure_jobs(plan, spec, diff, ref, target, staged, table=None) -> list:
    """The group's two figures as jobs, drawn into the staging folder ``staged``: light curve with
    diagnostics (titled with the group's target, date, telescope and filter), reference with every
    star, the aperture and annulus."""
    from .plotter import lightcurve_job, reference_job

    stem = staged.path(plan.stem)
    dt = spec.differential.bin or 0.005
    info = plan.group.to_dict() if hasattr(plan.group, "to_dict") else {"target": plan.group.label}
    return [lightcurve_job(_table_fluxes(diff, table), Path(f"{stem}.png"), binned_dt=dt, info=info),
            reference_job(ref, target, list(diff.comparisons), Path(f"{stem}_reference.png"),
                          radius=float(diff.aperture_radius), annulus=_annulus_px(spec, ref),
                          filename=Path(str(ref.path)).name if getattr(ref, "path", None) else None)]


def _annulus_px(spec, ref):
    """(inner, outer) radii in pixels of the recipe's sky annulus on the reference, or None."""
    block = next((b for b in spec.blocks("photometry") if b.name == "AnnulusBackground"), None)
    if block is None:
        return None
    from .blocks.photometry import AnnulusBackground

    bg = AnnulusBackground(**block.params)
    scale = 1.0 if bg.scale == "pixels" else getattr(ref, "fwhm", None)
    if not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        return None
    return float(bg.inner * scale), float(bg.outer * scale)


def _submit_figures(plan, spec, diff, ref, target, plotter, staged, table=None) -> list:
    """Figure jobs of the group, handed to the helper now (it draws into the staging folder while
    tables are written; the previous figures are replaced only when the whole set is committed)."""
    from . import plotter as figures

    if not spec.outputs.plot:
        return []
    return figures.submit(_figure_jobs(plan, spec, diff, ref, target, staged, table), plotter)


def _discard_figures(figures) -> None:
    """The group failed after its figures were handed over: wait for the helper (so it writes
    nothing later); the staging folder goes with what it drew, the previous figures stay."""
    from .plotter import discard

    discard(figures)


def _write_outputs(plan, spec, config, raw, diff, table, ref, target, seq, result, *, figures=None,
                   staged=None) -> list:
    """CSV/FITS tables, figures and provenance, committed together as one set (or not at all).

    Every file is written into the staging folder ``staged`` (an :class:`~reduce.io.atomic.OutputSet`)
    and moved into the output folder only once all are complete. ``figures`` (from
    :func:`reduce.plotter.submit`) may already be drawing in the helper; they are collected after
    the tables and provenance are written (drawn here when no helper drew them).
    """
    from .io.atomic import OutputSet

    own = staged is None
    staged = OutputSet(plan.outdir, plan.stem) if own else staged
    try:
        written = _write_staged(plan, spec, config, raw, diff, table, ref, target, seq, result,
                                figures, staged)
        return staged.commit(written)
    finally:
        if own:
            staged.discard()


def _write_staged(plan, spec, config, raw, diff, table, ref, target, seq, result, figures,
                  staged) -> list:
    """_write_outputs' files, in the staging folder; returns their staged paths."""
    from .io.atomic import atomic_write_text
    from .io.provenance import provenance_record, write_provenance
    from .io.tables import product_extras, write_lightcurve
    from .plotter import collect, submit

    stem = staged.path(plan.stem)
    outs = spec.outputs
    written = []
    a = diff.aperture
    exports = _exports(plan, spec, table, diff)  # built first: a bad export setting writes nothing
    if outs.csv or outs.ecsv or outs.fits:
        extra = product_extras(raw, diff, stars_xy=ref.sources.coords[:raw.shape[1]],
                               stars_radec=_stars_radec(ref, raw.shape[1]))
        written += write_lightcurve(table, stem, extra_hdus=extra, csv=outs.csv, ecsv=outs.ecsv,
                                    fits=outs.fits,
                                    header=_product_header(plan, spec, ref, raw, diff, table))
    for suffix, text in exports:
        written.append(atomic_write_text(Path(f"{stem}{suffix}"), text))
    if outs.plot and figures is None:
        figures = submit(_figure_jobs(plan, spec, diff, ref, target, staged, table))
    plot_at = len(written)
    if outs.provenance:
        record = provenance_record(
            recipe_spec=spec, config_source=getattr(config, "source", None) or "built-in",
            inputs=plan.frames,
            calibration={"bias": plan.calibration.bias, "darks": plan.calibration.darks,
                         "flats": plan.calibration.flats, "why": plan.calibration.reasons},
            reference=ref.path, aperture={"index": int(a), "radius_px": float(diff.aperture_radius)},
            comparisons=[int(c) for c in diff.comparisons], weights=[float(w) for w in diff.weights],
            flagged=result.flagged, root=plan.night, warnings=result.warnings,
            target=_target_record(ref, target),
            extra={"target_index": int(target), "group": plan.group.label,
                   "unmeasured": [{"file": _relative_to(u[0], plan.night), "reason": u[1]}
                                  for u in plan.unmeasured],
                   "target_xy_reference": [float(v) for v in ref.sources.coords[target]],
                   "timing": seq.timing(), **_alignment_methods(seq)})
        written += write_provenance(record, Path(f"{stem}.json"))
    if outs.plot:
        written[plot_at:plot_at] = collect(figures)
    return written


def _target_record(ref, target) -> dict:
    """The target's placement for the provenance (see :func:`resolve_target`), with its index and
    position on the reference (0-based file pixels)."""
    record = dict(ref.computed.get("target", {}))
    if isinstance(record.get("given"), dict) and "frame" in record["given"]:  # recorded night-relative
        record["given"] = {**record["given"], "frame": Path(str(record["given"]["frame"]))}
    x0, _, y0, _ = _trim(ref)
    record.update(index=int(target), reference_xy=[float(ref.sources.x[target]) + x0,
                                                   float(ref.sources.y[target]) + y0],
                  detected=int(target) not in ref.computed.get("added_sources", ()))
    return record


def _alignment_methods(seq) -> dict:
    """{'alignment_methods': frames placed by each method} when the chain counted them."""
    from .blocks.alignment import AlignmentMethods

    counts = [b.counts for b in seq if isinstance(b, AlignmentMethods)]
    return {"alignment_methods": dict(counts[0])} if counts else {}


def _exports(plan, spec, table, diff) -> list:
    """(suffix, text) of the AAVSO and EXOTIC exports the recipe asks for (``outputs:``)."""
    from . import __version__
    from .io.exports import aavso_filter, aavso_text, exotic_text

    outs, group, out = spec.outputs, plan.group, []
    if outs.aavso is not None:
        a = outs.aavso
        code = a.filter or aavso_filter(group.filter)
        if code is None:
            raise ReduceError(f"AAVSO export: the filter {group.filter!r} has no AAVSO code; name it "
                              "in the recipe, e.g. outputs: {aavso: {obscode: ..., filter: CV}}")
        notes = (f"reduce ensemble differential photometry; {len(diff.comparisons)} comparison stars; "
                 f"aperture {diff.aperture_radius:.2f} px")
        out.append(("_aavso.txt", aavso_text(table, obscode=a.obscode, starid=a.starid or group.target,
                                             filter=code, chart=a.chart, notes=notes,
                                             software=f"reduce {__version__}")))
    if outs.exotic:
        if not np.isfinite(np.asarray(table["bjd_tdb"], float)).any():
            raise ReduceError("EXOTIC export: no BJD_TDB (the target's RA/Dec is unknown: no WCS, recipe "
                              "target or header RA/DEC)")
        out.append(("_exotic.csv", exotic_text(table, target=group.target)))
    return out


def _relative_to(path, root) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, TypeError, OSError):
        return str(path)


def _stars_radec(ref, n: int):
    """(n, 2) RA/Dec (deg) of the reference's sources through its WCS, or None without one."""
    if ref.wcs is None:
        return None
    try:
        x0, _, y0, _ = ref.computed.get("trim", (0, None, 0, None))
        xy = np.asarray(ref.sources.coords[:n], float)
        c = ref.wcs.pixel_to_world(xy[:, 0] + x0, xy[:, 1] + y0)
        return np.column_stack([c.ra.deg, c.dec.deg])
    except Exception as e:  # a broken WCS leaves RA/Dec out, never the product
        log.debug("star RA/Dec not computed: %s", e)
        return None


def _product_header(plan, spec, ref, raw, diff, table) -> dict:
    """Primary-header values of the group's product (see ``reduce.io.tables.PRIMARY_KEYWORDS``)."""
    from .io.tables import product_header

    group = plan.group
    header = ref.header if ref.header is not None else {}
    lat, lon, elev = _site(ref, group)
    known = {"OBJECT": group.target or None, "TELESCOP": group.telescope or None,
             "INSTRUME": str(header.get("INSTRUME", "")).strip() or None,
             "FILTER": group.filter or None, "OBSGEO-B": lat, "OBSGEO-L": lon,
             "OBSGEO-H": elev if lat is not None else None,
             "RECIPE": Path(str(spec.path)).name, "RECIPVER": int(spec.version),
             "RECIPSHA": spec.sha256[:16], "NFRAMES": len(table)}
    if lat is not None and elev is None:
        known["OBSGEO-H"] = 0.0
    meta = dict(diff.meta)
    if table.meta.get("target_ra") is not None:
        meta.update(target_ra=table.meta["target_ra"], target_dec=table.meta["target_dec"])
    # the first frame and the exposures of the whole group (raw), target and aperture of diff
    view = raw._replace(meta=dict(meta, aperture=diff.aperture))
    return product_header(view, **known)


def _table_fluxes(diff, table):
    """The differential Fluxes as plotted: the kept frames with their BJD_TDB, and the BJD_TDB of
    the frames left out (flagged or clipped: no flux), drawn as markers."""
    if table is None:
        return diff
    bjd = np.asarray(table["bjd_tdb"], float)
    if not np.all(np.isfinite(bjd)):
        return diff
    idx = np.asarray(diff.data["frame_index"], int)
    flagged = np.asarray(table["flag"]) != 0
    return diff._replace(data={**diff.data, "bjd_tdb": bjd[idx]},
                         meta={**diff.meta, "flagged_frames": bjd[flagged].tolist()})
