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

__all__ = ["reduce_frames", "choose_reference", "resolve_target", "lightcurve_table"]

log = logging.getLogger("reduce.pipeline")

# frames with these bits carry no usable target flux: they stay in the table with NaN flux
EXCLUDED = (Flag.UNREADABLE | Flag.NO_SOURCES | Flag.ALIGNMENT_FAILED | Flag.UNEXPECTED
            | Flag.TARGET_SATURATED | Flag.TARGET_NEAR_EDGE | Flag.TARGET_MASKED)
MIN_REFERENCE_SOURCES = 3


def reduce_frames(plan, spec, result, *, config=None, show_progress=True, fail_fast=False,
                  executor=None, plotter=None) -> None:
    """The whole chain for one group; fills ``result`` (outputs, choices, flagged frames).

    Figures are drawn by ``plotter`` (a :class:`reduce.plotter.Plotter` shared by a run), else by a
    helper started here when that pays, else in-process.
    """
    from .io.fitsimage import FITSImage

    loader = functools.partial(FITSImage, config=config) if config is not None else FITSImage
    own = None if plotter is not None else _start_plotter(spec)
    try:
        _reduce_frames(plan, spec, result, config=config, show_progress=show_progress,
                       fail_fast=fail_fast, executor=executor, loader=loader, plotter=plotter or own)
    finally:
        if own is not None:
            own.close()


def _reduce_frames(plan, spec, result, *, config, show_progress, fail_fast, executor, loader,
                   plotter) -> None:
    """reduce_frames' body: masters, reference, target, every frame, light curve, outputs."""
    from .blocks.photometry import GetFluxes
    from .core.sequence import Sequence
    from .recipe import REFERENCE_SECTIONS, build_blocks

    cal = plan.calibration
    _check_calibration(plan, spec)
    runtime = dict(darks=cal.darks or None, bias=cal.bias or None, flats=cal.flats or None, loader=loader)
    pre = build_blocks(spec, REFERENCE_SECTIONS, **runtime)
    ref_index, ref = choose_reference(plan.frames, spec.reference, pre, loader)
    result.reference = ref.path
    target = resolve_target(ref, spec.target)
    phot = build_blocks(spec, "photometry", reference=ref, **runtime)
    undetected = target in ref.computed.get("added_sources", ())
    for block in phot:
        if hasattr(block, "target"):
            block.target = target
        if undetected and hasattr(block, "fixed"):
            block.fixed = frozenset({target})
    collector = GetFluxes(target=target)
    seq = Sequence([*pre, *phot, collector], name=plan.name)
    seq.run(plan.frames, loader=loader, show_progress=show_progress, fail_fast=fail_fast, executor=executor)
    raw = collector.fluxes
    raw.target = target
    if ref.saturation is not None:
        raw.meta.setdefault("saturation", float(ref.saturation))
    diff = _differential(raw, spec)
    figures = _submit_figures(plan, spec, diff, ref, target, plotter)
    try:
        table = _full_table(raw, diff, ref)
        _finish(plan, spec, config, raw, diff, table, ref, target, seq, result, figures, plotter)
    except BaseException:
        _discard_figures(figures, plotter)
        raise


def _finish(plan, spec, config, raw, diff, table, ref, target, seq, result, figures, plotter) -> None:
    """Group summary in ``result``, then every output file."""
    rejected = _rejection_reasons(diff)
    result.flagged = [(str(f), int(v), _reason(seq, str(f), int(v), rejected)) for f, v in
                      zip(table["file"], table["flag"]) if v]
    result.aperture = float(diff.aperture_radius)
    result.comparisons = [int(c) for c in diff.comparisons]
    good = np.isfinite(np.asarray(table["flux"], float))
    result.rms = float(np.nanstd(np.asarray(table["flux"], float)[good])) if good.any() else None
    result.outputs = _write_outputs(plan, spec, config, raw, diff, table, ref, target, seq, result,
                                    figures=figures, plotter=plotter)


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


def resolve_target(ref, target_spec) -> int:
    """Index of the target in the reference's sources (a pixel/sky position not detected is added)."""
    sources = ref.sources
    h, w = ref.data.shape
    kind = target_spec.kind
    if kind == "index":
        if not 0 <= target_spec.index < len(sources):
            raise ReduceError(f"target #{target_spec.index} does not exist: the reference frame has "
                              f"{len(sources)} detected sources (0..{len(sources) - 1})")
        return int(target_spec.index)
    if kind == "sky":
        if ref.wcs is None:
            raise ReduceError("target given as RA/Dec but the reference frame has no WCS; "
                              "give it as pixel coordinates (--target X,Y) or an index")
        x, y = _sky_to_pixel(ref, target_spec.ra, target_spec.dec)
        return _source_near(ref, x, y, f"RA {target_spec.ra:.5f} Dec {target_spec.dec:+.5f}")
    if kind == "pixel":
        x0, x1, y0, y1 = ref.computed.get("trim", (0, None, 0, None))
        return _source_near(ref, target_spec.x - x0, target_spec.y - y0,
                            f"pixel ({target_spec.x:g}, {target_spec.y:g})")
    return _auto_target(ref)


def _sky_to_pixel(ref, ra, dec):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    x, y = ref.wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    x0, _, y0, _ = ref.computed.get("trim", (0, None, 0, None))
    return float(x) - x0, float(y) - y0


def _source_near(ref, x, y, what: str) -> int:
    """The detected source nearest (x, y), or (x, y) appended as a new source when none is close."""
    from .image import Sources

    h, w = ref.data.shape
    if not (0 <= x < w and 0 <= y < h):
        raise ReduceError(f"target {what} is outside the reference frame ({w}x{h} px)")
    s = ref.sources
    d = np.hypot(s.x - x, s.y - y)
    radius = max(3.0, 1.5 * float(ref.fwhm or 3.0))
    if len(d) and d.min() <= radius:
        return int(np.argmin(d))
    log.warning("no star detected within %.1f px of %s; measuring that position as given", radius, what)
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
    if ok.any():
        return int(np.flatnonzero(ok)[0])  # sources are sorted brightest first
    return int(np.argmin(d))


def lightcurve_table(raw, spec, ref):
    """(differential Fluxes, astropy Table of every frame) for the recipe's differential settings."""
    diff = _differential(raw, spec)
    return diff, _full_table(raw, diff, ref)


def _differential(raw, spec):
    """Differential Fluxes of the usable frames, with the recipe's clipping and comparison choice."""
    n = len(raw)
    raw.data["frame_index"] = np.arange(n)
    tflux = raw.flux[:, raw.target, :]
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


def _full_table(raw, diff, ref):
    """One row per frame of the group: differential flux where measured, NaN and a flag elsewhere."""
    from astropy.table import Table

    n = len(raw)
    idx = np.asarray(diff.data["frame_index"], int)
    flux = np.full(n, np.nan)
    err = np.full(n, np.nan)
    flux[idx] = diff.diff_flux
    err[idx] = diff.diff_error
    flags = raw.flags.astype(np.int64).copy()
    flags[idx] |= diff.flags  # the target's chosen aperture not measured there (edge, mask)
    kept = np.zeros(n, bool)
    kept[idx] = True
    # frames set aside here (not flagged upstream: no usable target flux, or clipped) carry
    # OUTLIER_REJECTED; meta['rejected'] says why (see _rejection_reasons)
    clipped = ~kept & ((raw.flags & int(EXCLUDED)) == 0)
    flags[clipped] |= int(Flag.OUTLIER_REJECTED)
    cols = {"time": raw.time}
    ra, dec = _target_coords(ref, raw)
    site = _site(ref)
    cols["bjd_tdb"] = _bjd(raw.time, ra, dec, site)
    cols["flux"], cols["flux_err"] = flux, err
    airmass = raw.get("airmass")
    airmass = np.full(n, np.nan) if airmass is None else np.asarray(airmass, float)
    if not np.isfinite(airmass).any() and ra is not None and site[0] is not None:
        from .ephemeris import airmass as _airmass
        airmass = _airmass(raw.time, ra, dec, site[0], site[1])
    cols["airmass"] = airmass
    for name in ("fwhm", "sky", "dx", "dy", "x", "y"):
        v = raw.get(name)
        cols[name] = np.full(n, np.nan) if v is None else np.asarray(v, float)
    cols["flag"] = flags
    cols["file"] = np.array([Path(str(f)).name for f in raw.files], dtype=str)
    table = Table(cols)
    table.meta.update({"schema": 1, "target": int(raw.target), "aperture": int(diff.aperture),
                       "aperture_radius": float(diff.aperture_radius),
                       "comparisons": [int(c) for c in diff.comparisons],
                       "weights": [float(w) for w in diff.weights]})
    if ra is not None:
        table.meta.update({"target_ra": float(ra), "target_dec": float(dec)})
    return table


def _target_coords(ref, raw):
    """Target RA/Dec (deg): through the reference WCS when present, else the header pointing."""
    if ref.wcs is not None:
        try:
            x0, _, y0, _ = ref.computed.get("trim", (0, None, 0, None))
            xy = ref.sources.coords[raw.target]
            c = ref.wcs.pixel_to_world(xy[0] + x0, xy[1] + y0)
            return float(c.ra.deg), float(c.dec.deg)
        except Exception:
            pass
    if ref.ra is not None and ref.dec is not None:
        return float(ref.ra), float(ref.dec)
    return None, None


def _site(ref):
    """(latitude, longitude east-positive, elevation) from the instrument config or the header."""
    from .index.headers import site

    return site(ref.header if ref.header is not None else {}, ref.instrument)


def _bjd(time, ra, dec, site):
    if ra is None:
        return np.full(len(time), np.nan)
    from .ephemeris import bjd_tdb

    try:
        return bjd_tdb(time, ra, dec, site[0], site[1], site[2])
    except Exception as e:
        log.warning("BJD_TDB not computed: %s", e)
        return np.full(len(time), np.nan)


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


def _start_plotter(spec):
    """The figure helper process (see :mod:`reduce.plotter`) when the recipe asks for figures."""
    if not spec.outputs.plot:
        return None
    # every frame's header goes through astropy.io.fits next: imported before the fork, the
    # helper inherits astropy (units included) and its figure imports cost it 0.2 s less
    import astropy.io.fits  # noqa: F401

    from .plotter import start_plotter

    return start_plotter()


def _figure_jobs(plan, spec, diff, ref, target) -> list:
    """The group's two figures as jobs: light curve with diagnostics, reference with the stars."""
    from .plotter import lightcurve_job, reference_job

    stem = plan.outdir / plan.stem
    dt = spec.differential.bin or 0.005
    return [lightcurve_job(_table_fluxes(diff, None), Path(f"{stem}.png"), binned_dt=dt,
                           title=plan.group.label),
            reference_job(ref, target, list(diff.comparisons), Path(f"{stem}_reference.png"))]


def _submit_figures(plan, spec, diff, ref, target, plotter) -> list:
    """Figure jobs of the group, handed to the helper now (it draws while tables are written)."""
    if not spec.outputs.plot:
        return []
    jobs = _figure_jobs(plan, spec, diff, ref, target)
    if plotter is not None:
        plan.outdir.mkdir(parents=True, exist_ok=True)
        plotter.submit(jobs)
    return jobs


def _discard_figures(figures, plotter) -> None:
    """The group failed after its figures were handed over: remove what the helper drew."""
    if plotter is not None and figures:
        plotter.discard()


def _write_outputs(plan, spec, config, raw, diff, table, ref, target, seq, result, *, figures=None,
                   plotter=None) -> list:
    """CSV/FITS tables, figures and provenance, each written atomically.

    ``figures`` (jobs from :func:`_figure_jobs`) may already be drawing in ``plotter``; they are
    collected after the tables and provenance are written (drawn here when the helper failed).
    """
    from astropy.table import Table

    from .plotter import draw_all

    from .io.provenance import provenance_record, write_provenance
    from .io.tables import write_lightcurve

    out = plan.outdir
    out.mkdir(parents=True, exist_ok=True)
    stem = out / plan.stem
    outs = spec.outputs
    written = []
    a = diff.aperture
    weights = Table({"star": np.arange(raw.shape[1]), "weight": diff.meta["weights_all"][a]})
    extra = {"FLUXES": raw.flux.astype(np.float32), "ERRORS": raw.error.astype(np.float32),
             "APERTURES": np.atleast_1d(raw.apertures).astype(np.float32), "WEIGHTS": weights}
    if outs.csv or outs.fits:
        written += write_lightcurve(table, stem, extra_hdus=extra, csv=outs.csv, fits=outs.fits)
    if outs.plot and figures is None:
        figures = _figure_jobs(plan, spec, diff, ref, target)
    plot_at = len(written)
    if outs.provenance:
        record = provenance_record(
            recipe_spec=spec, config_source=getattr(config, "source", None) or "built-in",
            inputs=plan.frames,
            calibration={"bias": plan.calibration.bias, "darks": plan.calibration.darks,
                         "flats": plan.calibration.flats, "why": plan.calibration.reasons},
            reference=ref.path, aperture={"index": int(a), "radius_px": float(diff.aperture_radius)},
            comparisons=[int(c) for c in diff.comparisons], weights=[float(w) for w in diff.weights],
            flagged=result.flagged, root=plan.night,
            extra={"target_index": int(target), "group": plan.group.label,
                   "target_xy_reference": [float(v) for v in ref.sources.coords[target]],
                   "timing": seq.timing()})
        written += write_provenance(record, Path(f"{stem}.json"))
    if outs.plot:
        written[plot_at:plot_at] = draw_all(figures, plotter)
    return written


def _table_fluxes(diff, table):
    """The differential Fluxes as plotted: the kept frames (flagged ones carry no flux)."""
    return diff
