"""The group's outputs: CSV/ECSV/FITS tables, AAVSO/EXOTIC exports, figures and provenance, written
into a staging folder and committed together (or not at all) by :class:`~reduce.io.atomic.OutputSet`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..model.errors import ReduceError
from .table import site_of, stars_radec
from ..blocks.bayer import cfa_keywords, grid_to_file
from .target import relative_path

__all__ = ["start_figure_helper", "submit_figures", "discard_figures", "write_outputs", "export_problems"]

log = logging.getLogger("reduce.run")


def start_figure_helper(spec=None):
    """The figure helper process (see :mod:`reduce.figures.helper`), unless the recipe (when already
    known) asks for no figures; None: figures are drawn in-process."""
    if spec is not None and not spec.outputs.plot:
        return None
    # the group's FITS product is written with astropy.io.fits later anyway: imported before the
    # fork, the helper inherits astropy (units included) and its figure imports cost it 0.2 s less
    import astropy.io.fits  # noqa: F401

    from ..figures import helper as plotter

    return plotter.start()


def submit_figures(ctx) -> list:
    """Figure jobs of the group, handed to the helper now (it draws into the staging folder while
    tables are written; the previous figures are replaced only when the whole set is committed)."""
    from ..figures.helper import submit

    if not ctx.spec.outputs.plot:
        return []
    return submit(_figure_jobs(ctx), ctx.plotter)


def discard_figures(figures) -> None:
    """The group failed after its figures were handed over: wait for the helper (so it writes
    nothing later); the staging folder goes with what it drew, the previous figures stay."""
    from ..figures.helper import discard

    discard(figures)


def _figure_jobs(ctx) -> list:
    """The group's figures as jobs, drawn into the staging folder ``staged``: light curve with
    diagnostics (titled with the group's target, date, telescope and filter), reference with every
    star, the aperture and annulus, and each comparison star over the ensemble of the others."""
    from ..figures.helper import lightcurve_job, reference_job

    plan, spec, diff, ref, target, table = ctx.plan, ctx.spec, ctx.diff, ctx.ref, ctx.target, ctx.table
    stem = ctx.staged.path(plan.stem)
    dt = spec.differential.bin or 0.005
    info = plan.group.to_dict() if hasattr(plan.group, "to_dict") else {"target": plan.group.label}
    record = ref.computed.get("target") or {}
    if record.get("guessed") and record.get("reference_xy"):
        x, y = record["reference_xy"]
        info = {**info, "target": f"{info.get('target') or 'target'}? NOT identified: star {target} "
                                  f"at ({x:.0f}, {y:.0f}), guessed"}
    return [lightcurve_job(_table_fluxes(diff, table), Path(f"{stem}.png"), binned_dt=dt, info=info),
            reference_job(ref, target, list(diff.comparisons), Path(f"{stem}_reference.png"),
                          radius=float(diff.aperture_radius), annulus=_annulus_px(spec, ref),
                          filename=Path(str(ref.path)).name if getattr(ref, "path", None) else None)] \
        + _comparisons_jobs(diff, table, Path(f"{stem}_comparisons.png"), info)


def _comparisons_jobs(diff, table, path, info) -> list:
    """The comparison-star figure's job (each comparison over the ensemble of the others, with its
    weight), when there are two comparisons or more to compare."""
    from ..figures.comparisons import comparison_series
    from ..figures.helper import FigureJob

    if len(diff.comparisons) < 2:
        return []
    bjd = np.asarray(table["bjd_tdb"], float)[np.asarray(diff.data["frame_index"], int)]
    scale = "BJD_TDB" if np.all(np.isfinite(bjd)) else "JD UTC"
    series = comparison_series(diff, time=bjd if scale == "BJD_TDB" else None)
    title = " ".join(str(info[k]) for k in ("target", "date", "telescope", "filter") if info.get(k))
    return [FigureJob("comparisons", path, {"series": series, "title": title or None, "time_scale": scale})]


def _annulus_px(spec, ref):
    """(inner, outer) radii in pixels of the recipe's sky annulus on the reference, or None."""
    block = next((b for b in spec.blocks("photometry") if b.name == "AnnulusBackground"), None)
    if block is None:
        return None
    from ..blocks.photometry import AnnulusBackground

    bg = AnnulusBackground(**block.params)
    scale = 1.0 if bg.scale == "pixels" else getattr(ref, "fwhm", None)
    if not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        return None
    return float(bg.inner * scale), float(bg.outer * scale)


def _table_fluxes(diff, table):
    """The differential Fluxes as plotted: the kept frames with their BJD_TDB, the table's airmass
    (from the headers, or computed: the figure keeps its airmass panel either way) and the table's
    fwhm, dx and dy (file pixels, also on a colour sensor's 2x2 superpixels, so the figure reads
    as the table), and the BJD_TDB of the frames left out (flagged or clipped: no flux), drawn as
    markers."""
    idx = np.asarray(diff.data["frame_index"], int)
    data, meta = dict(diff.data), dict(diff.meta)
    for name in ("fwhm", "dx", "dy"):
        if name in data and name in table.colnames:
            data[name] = np.asarray(table[name], float)[idx]
    airmass = np.asarray(table["airmass"], float) if "airmass" in table.colnames else None
    if airmass is not None and np.any(np.isfinite(airmass[idx])):
        data["airmass"] = airmass[idx]
    bjd = np.asarray(table["bjd_tdb"], float)
    if np.all(np.isfinite(bjd)):
        flagged = np.asarray(table["flag"]) != 0
        data["bjd_tdb"] = bjd[idx]
        meta["flagged_frames"] = bjd[flagged].tolist()
    return diff._replace(data=data, meta=meta)


def write_outputs(ctx) -> list:
    """CSV/FITS tables, figures and provenance, committed together as one set (or not at all).

    Every file is written into the staging folder ``staged`` (an :class:`~reduce.io.atomic.OutputSet`)
    and moved into the output folder only once all are complete. ``ctx.figures`` (from
    :func:`reduce.figures.helper.submit`) may already be drawing in the helper; they are collected after
    the tables and provenance are written (drawn here when no helper drew them).
    """
    written = ctx.staged.commit(_write_staged(ctx))
    _remove_stale_exports(ctx)
    return written


#: files of each export, by recipe name
EXPORT_SUFFIXES = {"aavso": ("_aavso.txt",), "exotic": ("_exotic.csv", "_exotic_inits.json")}


def _remove_stale_exports(ctx) -> None:
    """An export that failed this time leaves no earlier file of it beside the new light curve."""
    for name in getattr(ctx, "failed_exports", ()):
        for suffix in EXPORT_SUFFIXES[name]:
            old = Path(str(ctx.plan.outdir)) / f"{Path(str(ctx.plan.stem)).name}{suffix}"
            if old.exists():
                old.unlink()
                log.warning("%s: removed %s of an earlier run (this run's %s export failed)",
                            ctx.plan.name, old.name, name)


def _write_staged(ctx) -> list:
    """write_outputs' files, in the staging folder; returns their staged paths."""
    from ..io.atomic import atomic_write_text
    from ..io.provenance import write_provenance
    from ..lightcurve.tables import product_extras, write_lightcurve
    from ..figures.helper import collect, submit

    plan, spec, raw, diff, table, ref = ctx.plan, ctx.spec, ctx.raw, ctx.diff, ctx.table, ctx.ref
    figures = ctx.figures
    stem = ctx.staged.path(plan.stem)
    outs = spec.outputs
    written = []
    exports = _exports(ctx)  # before the provenance, which lists a failed export's message
    if outs.csv or outs.ecsv or outs.fits:
        xy = np.column_stack(grid_to_file(ref, *ref.sources.coords[:raw.shape[1]].T))  # file pixels
        extra = product_extras(raw, diff, stars_xy=xy,
                               stars_radec=stars_radec(ref, raw.shape[1]))
        written += write_lightcurve(table, stem, extra_hdus=extra, csv=outs.csv, ecsv=outs.ecsv,
                                    fits=outs.fits,
                                    header=_product_header(ctx))
    for suffix, text in exports + _star_files(ctx):
        written.append(atomic_write_text(Path(f"{stem}{suffix}"), text))
    if outs.plot and figures is None:
        figures = submit(_figure_jobs(ctx))
    plot_at = len(written)
    record = _record(ctx) if outs.provenance or outs.html else None
    if outs.provenance:
        written += write_provenance(record, Path(f"{stem}.json"))
    if outs.plot:
        written[plot_at:plot_at] = collect(figures)
    if outs.html:
        written.append(_write_page(ctx, record, written if outs.plot else []))
    return written


def _errors_record(ref, diff) -> dict:
    """How the flux errors were made: the bias pedestal taken off the sky (and how it was known),
    the gain and read noise, and the median error over the point-to-point scatter."""
    ratio, scale = diff.meta.get("error_ratio"), diff.meta.get("error_scale")
    return {"bias_pedestal": ref.computed.get("bias_pedestal"), "gain": ref.gain, "read_noise": ref.read_noise,
            "error_over_p2p": None if ratio is None else round(float(ratio), 4),
            "scaled_by": None if scale is None else round(float(scale), 4)}


def _record(ctx) -> dict:
    """The group's provenance record (also what its page shows)."""
    from ..io.provenance import provenance_record

    plan, spec, diff, ref, target, result = ctx.plan, ctx.spec, ctx.diff, ctx.ref, ctx.target, ctx.result
    a = diff.aperture
    info = plan.group.to_dict() if hasattr(plan.group, "to_dict") else {"target": plan.group.label}
    return provenance_record(
        recipe_spec=spec, config_source=getattr(ctx.config, "source", None) or "built-in",
        inputs=plan.frames,
        calibration={"bias": plan.calibration.bias, "darks": plan.calibration.darks,
                     "flats": plan.calibration.flats, "why": plan.calibration.reasons},
        reference=ref.path, aperture={"index": int(a), "radius_px": float(diff.aperture_radius),
                                     "chosen_by": diff.meta.get("aperture_by")},
        comparisons=[int(c) for c in diff.comparisons], weights=[float(w) for w in diff.weights],
        flagged=result.flagged, root=plan.night, warnings=result.warnings,
        target=_target_record(ref, target),
        extra={"target_index": int(target), "group": plan.group.label,
               "observation": {k: info.get(k) for k in ("date", "telescope", "filter", "target")},
               "frames": len(ctx.table), "scatter_p2p": result.scatter,
               "unmeasured": [{"file": relative_path(u[0], plan.night), "reason": u[1]}
                              for u in plan.unmeasured],
               "target_xy_reference": [float(v) for v in ref.sources.coords[target]],
               **({"comparisons_placed": ref.computed["comparisons_placed"]}
                  if ref.computed.get("comparisons_placed") else {}),
               "timing": ctx.seq.timing(), **_alignment_methods(ctx.seq), **_colour(ref),
               "errors": _errors_record(ref, diff),
               **({"aavso_check_star": ctx.check_star} if getattr(ctx, "check_star", None) else {})})


def _write_page(ctx, record, written) -> Path:
    """``<stem>.html``: the group's self-contained page (:mod:`reduce.figures.page`) with the
    figures just drawn; ``ctx.page_refresh`` (seconds, when set) makes it reload itself."""
    from ..figures.page import write_group_page
    from ..io.provenance import to_plain

    stem = ctx.plan.stem
    names = {f"{stem}.png": "Light curve (flagged frames: red crosses) over the per-frame quality panels",
             f"{stem}_reference.png": "Reference frame: target (red), comparisons (cyan), other measured "
                                      "stars (yellow)"}
    images = [(names[Path(p).name], p) for p in written if Path(p).name in names]
    return write_group_page(ctx.staged.path(f"{stem}.html"), to_plain(record), images,
                            refresh=getattr(ctx, "page_refresh", None))


def _target_record(ref, target) -> dict:
    """The target's placement for the provenance (see :func:`resolve_target`), with its index and
    position on the reference (0-based file pixels)."""
    record = dict(ref.computed.get("target", {}))
    if isinstance(record.get("given"), dict) and "frame" in record["given"]:  # recorded night-relative
        record["given"] = {**record["given"], "frame": Path(str(record["given"]["frame"]))}
    fx, fy = grid_to_file(ref, ref.sources.x[target], ref.sources.y[target])
    record.update(index=int(target), reference_xy=[float(fx), float(fy)],
                  detected=int(target) not in ref.computed.get("added_sources", ()))
    return record


def _colour(ref) -> dict:
    """{'colour_sensor': pattern, keyword, mode, grid} for frames measured by BayerBin."""
    from .colour import cfa_record

    record = cfa_record(ref)
    return {"colour_sensor": record} if record else {}


def _alignment_methods(seq) -> dict:
    """{'alignment_methods': frames placed by each method} when the chain counted them."""
    from ..blocks.alignment import AlignmentMethods

    counts = [b.counts for b in seq if isinstance(b, AlignmentMethods)]
    return {"alignment_methods": dict(counts[0])} if counts else {}


def _exports(ctx) -> list:
    """(suffix, text) of the AAVSO and EXOTIC exports the recipe asks for (``outputs:``). An export
    that cannot be made is left out alone: its message goes to the log, the group's warnings and
    ``export_errors`` (the run exits 3); the light curve and the other products are written."""
    out, result = [], ctx.result
    ctx.failed_exports = []
    for name, build in (("aavso", _aavso_export), ("exotic", _exotic_export)):
        try:
            out += build(ctx)
        except ReduceError as e:
            ctx.failed_exports.append(name)
            log.error("%s: %s (the other products are written)", ctx.plan.name, e)
            result.export_errors.append(str(e))
            result.warnings.append({"code": f"export_{name}_failed", "message": str(e)})
    return out


def export_problems(spec, group) -> list[str]:
    """What would stop the recipe's exports on ``group`` (known before measuring: the AAVSO
    filter code), for ``reduce validate --night`` and ``reduce run --dry-run``."""
    from ..lightcurve.exports import aavso_band

    a = spec.outputs.aavso
    if a is None:
        return []
    try:
        aavso_band(a.filter, group.filter)
    except ReduceError as e:
        extra = "" if a.filter else " (unless the frames are a colour sensor's, measured on one channel)"
        return [f"{e}{extra}"]
    return []


def _aavso_export(ctx) -> list:
    """[("_aavso.txt", text)] when the recipe asks for the AAVSO export."""
    from .. import __version__
    from ..lightcurve.exports import aavso_band, aavso_starid, aavso_text

    a, group, table, diff = ctx.spec.outputs.aavso, ctx.plan.group, ctx.table, ctx.diff
    if a is None:
        return []
    code = aavso_band(a.filter, group.filter, ctx.ref)
    check = _check_star(ctx)
    notes = (f"reduce ensemble differential photometry; {len(diff.comparisons)} comparison stars; "
             f"aperture {diff.aperture_radius:.2f} px; check star {check.label}")
    return [("_aavso.txt", aavso_text(table, obscode=a.obscode, starid=aavso_starid(a.starid, group.target),
                                      filter=code, chart=a.chart, notes=notes, check=check,
                                      software=f"reduce {__version__}"))]


def _check_star(ctx):
    """The AAVSO export's check star (:class:`~reduce.lightcurve.exports.CheckStar`): the recipe's
    (``differential: {check: ...}``, kept out of the ensemble), else the steadiest star outside it;
    logged with how it was chosen. ReduceError when the recipe's names no usable star or none exists."""
    from ..lightcurve.exports import CheckStar, check_magnitudes, pick_check_star

    diff, raw, target = ctx.diff, ctx.raw, int(ctx.target)
    index, problem = getattr(ctx, "check", (None, None))
    if problem:
        raise ReduceError(f"AAVSO export: {problem}")
    if index is not None:
        how = "recipe differential: check"
    else:
        index, how = pick_check_star(diff, target=target)
    a = int(diff.aperture)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = -2.5 * np.log10(np.nanmedian(raw.fluxes[a, index, :]) / np.nanmedian(raw.fluxes[a, target, :]))
    fx, fy = grid_to_file(ctx.ref, ctx.ref.sources.x[index], ctx.ref.sources.y[index])
    ctx.check_star = {"index": int(index), "reference_xy": [float(fx), float(fy)], "chosen_by": how}
    check = CheckStar(index, check_magnitudes(diff, len(ctx.table), index, float(offset) if np.isfinite(offset)
                                              else 0.0), how)
    message = f"AAVSO check star: star {index} at ({fx:.1f}, {fy:.1f}) 0-based file pixels, {how}"
    if "leave-one-out" in how:  # in the ensemble: said wherever warnings go
        log.warning("%s: %s", ctx.plan.name, message)
        ctx.result.warnings.append({"code": "aavso_check_in_ensemble", "message": message})
    else:
        log.info("%s: %s", ctx.plan.name, message)
    return check


def _exotic_export(ctx) -> list:
    """[("_exotic.csv", text), ("_exotic_inits.json", text)] when the recipe asks for EXOTIC's input."""
    from ..lightcurve.exports import exotic_text

    table, group = ctx.table, ctx.plan.group
    if not ctx.spec.outputs.exotic:
        return []
    if not np.isfinite(np.asarray(table["bjd_tdb"], float)).any():
        raise ReduceError("EXOTIC export: no BJD_TDB (the target's RA/Dec is unknown: no WCS, "
                          "--coords, recipe or config coordinates, or header RA/DEC)")
    stem = Path(str(ctx.plan.stem)).name
    return [("_exotic.csv", exotic_text(table, target=group.target)),
            ("_exotic_inits.json", _exotic_inits(ctx, f"{stem}_exotic.csv"))]


def _exotic_inits(ctx, data_name: str) -> str:
    """EXOTIC's inits.json for the pre-reduced file ``data_name`` (in the output folder, absolute)."""
    from ..lightcurve.exports import aavso_band, aavso_starid, exotic_inits_text

    table, group, spec = ctx.table, ctx.plan.group, ctx.spec
    outdir = Path(str(ctx.plan.outdir)).resolve()
    aavso = spec.outputs.aavso
    try:
        band = aavso_band(aavso.filter if aavso else None, group.filter, ctx.ref)
    except ReduceError:
        band = None
    host = aavso_starid(aavso.starid if aavso else None, group.target)
    planet = host if host[-1:].islower() and host[-2:-1] == " " else f"{host} b"
    header = ctx.ref.header if ctx.ref.header is not None else {}
    exposure = header.get("EXPTIME", header.get("EXPOSURE"))
    time = np.asarray(table["time"], float)
    ok = np.isfinite(time)
    return exotic_inits_text(
        data_file=str(outdir / data_name), save_dir=str(outdir), planet=planet, host=host,
        ra=table.meta.get("target_ra"), dec=table.meta.get("target_dec"),
        date_jd=float(time[ok].min()) if ok.any() else float("nan"), site=site_of(ctx.ref, group),
        filter_code=band, exposure=float(exposure) if isinstance(exposure, (int, float)) else None,
        obscode=aavso.obscode if aavso else None,
        notes=f"reduced with reduce; {len(ctx.diff.comparisons)} comparison stars")


def _no_elevation(ctx) -> None:
    """The site's elevation is unknown: OBSGEO-H is left out, said once in the group's warnings."""
    if any(w.get("code") == "no_elevation" for w in ctx.result.warnings):
        return
    w = {"code": "no_elevation", "frames": 0, "message":
         "the site's elevation is unknown (no SITEELEV/ALTITUDE header, no site: elevation in the "
         "config): OBSGEO-H is left out of the FITS product (BJD_TDB is computed at sea level, "
         "< 4 us off per km); set `site: {elevation: ..}` for this instrument in the config"}
    log.warning("%s: %s", ctx.plan.name, w["message"])
    ctx.result.warnings.append(w)


def _region_check_star(ctx):
    """The check star's index when the run has one (the recipe's ``differential: {check: ..}``, or
    the one the AAVSO export chose), else None."""
    index = getattr(ctx, "check", (None, None))[0]
    if index is None and getattr(ctx, "check_star", None):
        index = ctx.check_star["index"]
    return int(index) if index is not None else None


def _star_files(ctx) -> list:
    """(suffix, text) of the DS9 region file (``.reg``) and the per-star measurement table
    (``_stars.csv``), as the recipe asks (``outputs: {region, stars}``)."""
    from .starfiles import region_text, stars_csv_text

    outs, diff, ref, out = ctx.spec.outputs, ctx.diff, ctx.ref, []
    check = _region_check_star(ctx)
    if outs.region:
        out.append((".reg", region_text(ref, ctx.target, diff.comparisons, diff.weights, diff.aperture_radius,
                                        check=check, title=ctx.plan.stem)))
    if outs.stars:
        out.append(("_stars.csv", stars_csv_text(ctx.raw, diff.aperture, ref, bjd_tdb=ctx.table["bjd_tdb"],
                                                 comparisons=diff.comparisons, check=check)))
    return out


def _product_header(ctx) -> dict:
    """Primary-header values of the group's product (see ``reduce.lightcurve.schema.PRIMARY_KEYWORDS``)."""
    from ..lightcurve.tables import product_header

    spec, ref, raw, diff, table = ctx.spec, ctx.ref, ctx.raw, ctx.diff, ctx.table
    group = ctx.plan.group
    header = ref.header if ref.header is not None else {}
    lat, lon, elev = site_of(ref, group)
    known = {"OBJECT": group.target or None, "TELESCOP": group.telescope or None,
             "INSTRUME": str(header.get("INSTRUME", "")).strip() or None,
             "FILTER": group.filter or None, "OBSGEO-B": lat, "OBSGEO-L": lon,
             "OBSGEO-H": elev if lat is not None else None,
             "RECIPE": Path(str(spec.path)).name, "RECIPVER": int(spec.version),
             "RECIPSHA": spec.sha256[:16], "NFRAMES": len(table), **cfa_keywords(ref)}
    if lat is not None and elev is None:
        _no_elevation(ctx)  # left out, not written as 0
    if table.meta.get("pointing_ra") is not None:
        known.update({"RA_PNT": float(table.meta["pointing_ra"]), "DEC_PNT": float(table.meta["pointing_dec"])})
    if table.meta.get("bjd_coords"):
        known["BJDCOORD"] = "TARGET" if table.meta.get("target_ra") is not None else "POINTING"
    meta = dict(diff.meta)
    meta.pop("target_ra", None), meta.pop("target_dec", None)
    if table.meta.get("target_ra") is not None:
        meta.update(target_ra=table.meta["target_ra"], target_dec=table.meta["target_dec"])
    # the first frame and the exposures of the whole group (raw), target and aperture of diff
    view = raw._replace(meta=dict(meta, aperture=diff.aperture))
    return product_header(view, **known)
