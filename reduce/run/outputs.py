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

__all__ = ["start_figure_helper", "submit_figures", "discard_figures", "write_outputs"]

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
    """The group's two figures as jobs, drawn into the staging folder ``staged``: light curve with
    diagnostics (titled with the group's target, date, telescope and filter), reference with every
    star, the aperture and annulus."""
    from ..figures.helper import lightcurve_job, reference_job

    plan, spec, diff, ref, target, table = ctx.plan, ctx.spec, ctx.diff, ctx.ref, ctx.target, ctx.table
    stem = ctx.staged.path(plan.stem)
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
    from ..blocks.photometry import AnnulusBackground

    bg = AnnulusBackground(**block.params)
    scale = 1.0 if bg.scale == "pixels" else getattr(ref, "fwhm", None)
    if not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        return None
    return float(bg.inner * scale), float(bg.outer * scale)


def _table_fluxes(diff, table):
    """The differential Fluxes as plotted: the kept frames with their BJD_TDB and the table's
    airmass (from the headers, or computed: the figure keeps its airmass panel either way), and
    the BJD_TDB of the frames left out (flagged or clipped: no flux), drawn as markers."""
    idx = np.asarray(diff.data["frame_index"], int)
    data, meta = dict(diff.data), dict(diff.meta)
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
    return ctx.staged.commit(_write_staged(ctx))


def _write_staged(ctx) -> list:
    """write_outputs' files, in the staging folder; returns their staged paths."""
    from ..io.atomic import atomic_write_text
    from ..io.provenance import provenance_record, write_provenance
    from ..lightcurve.tables import product_extras, write_lightcurve
    from ..figures.helper import collect, submit

    plan, spec, raw, diff, table, ref, target = ctx.plan, ctx.spec, ctx.raw, ctx.diff, ctx.table, ctx.ref, ctx.target
    result, figures = ctx.result, ctx.figures
    stem = ctx.staged.path(plan.stem)
    outs = spec.outputs
    written = []
    a = diff.aperture
    exports = _exports(ctx)  # built first: a bad export setting writes nothing
    if outs.csv or outs.ecsv or outs.fits:
        xy = np.column_stack(grid_to_file(ref, *ref.sources.coords[:raw.shape[1]].T))  # file pixels
        extra = product_extras(raw, diff, stars_xy=xy,
                               stars_radec=stars_radec(ref, raw.shape[1]))
        written += write_lightcurve(table, stem, extra_hdus=extra, csv=outs.csv, ecsv=outs.ecsv,
                                    fits=outs.fits,
                                    header=_product_header(ctx))
    for suffix, text in exports:
        written.append(atomic_write_text(Path(f"{stem}{suffix}"), text))
    if outs.plot and figures is None:
        figures = submit(_figure_jobs(ctx))
    plot_at = len(written)
    if outs.provenance:
        record = provenance_record(
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
                   "unmeasured": [{"file": relative_path(u[0], plan.night), "reason": u[1]}
                                  for u in plan.unmeasured],
                   "target_xy_reference": [float(v) for v in ref.sources.coords[target]],
                   "timing": ctx.seq.timing(), **_alignment_methods(ctx.seq), **_colour(ref)})
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
    """(suffix, text) of the AAVSO and EXOTIC exports the recipe asks for (``outputs:``)."""
    from .. import __version__
    from ..lightcurve.exports import aavso_filter, aavso_text, cfa_band, exotic_text

    table, diff = ctx.table, ctx.diff
    outs, group, out = ctx.spec.outputs, ctx.plan.group, []
    if outs.aavso is not None:
        a = outs.aavso
        code = a.filter or cfa_band(ctx.ref) or aavso_filter(group.filter)
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
        known["OBSGEO-H"] = 0.0
    meta = dict(diff.meta)
    if table.meta.get("target_ra") is not None:
        meta.update(target_ra=table.meta["target_ra"], target_dec=table.meta["target_dec"])
    # the first frame and the exposures of the whole group (raw), target and aperture of diff
    view = raw._replace(meta=dict(meta, aperture=diff.aperture))
    return product_header(view, **known)
