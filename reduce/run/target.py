"""Where the target is: given as a pixel on a frame, a sky position, an index or ``auto``, found
among the reference's stars (snapped to the nearest within 1.5 FWHM, or added where none is).

A pixel target is read on the night's first light frame (or a named one) and mapped onto the
reference through the recipe's alignment. The placement is recorded in ``ref.computed['target']``
for the provenance. Then the reference's stars are capped to those measured on every frame.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..blocks.bayer import file_to_grid, grid_scale, grid_to_file, wcs_to_grid
from ..model.errors import ReduceError, UsageError  # UsageError: the target given is wrong (exit 2)

__all__ = ["select_target", "resolve_target", "guessed_target_warning", "place_pixel_target", "target_frame", "trim_origin",
           "relative_path"]

log = logging.getLogger("reduce.run")


TARGET_FRAME_TRIES = 5  # first frames tried to place a pixel target given on the first frame


def select_target(ref, target_spec, *, frames=(), night=None, pre=(), phot=(), loader=None,
                  coords=None) -> int:
    """Index of the target among the reference's measured stars, which this sets.

    ``frames``: the light frames (by time) a pixel target may be given on, the first by default:
    the night's frames of this telescope and target (``GroupPlan.night_lights``), else the
    group's. A pixel target is placed on the reference first (:func:`place_pixel_target`), then the
    reference's sources are capped to the stars measured on every frame (the ``max_stars`` of the
    alignment block, :meth:`AlignReferenceSources.measured`), the target always kept. An index
    target means the index in that capped list, the one the reference figure labels. ``coords``:
    the target's (RA, Dec) in degrees when known (``--coords``, the recipe or the config), which an
    automatic target is placed by through a WCS of any of ``frames``. The one index of the
    measured star (log, figure, tables, provenance, ``--target N``) is the returned one.
    """
    align = _alignment_blocks(phot, ref)
    if target_spec.kind == "index":
        _cap_sources(ref, phot, keep=None)
        i = resolve_target(ref, target_spec)
    else:
        mapped = None
        if target_spec.kind == "pixel":
            mapped = place_pixel_target(ref, target_spec, frames=frames, night=night, pre=pre,
                                        align=align, loader=loader)
        found = resolve_target(ref, target_spec, mapped=mapped, coords=coords,
                               wcs_frames=dict(frames=frames, pre=pre, align=align, loader=loader))
        i = _cap_sources(ref, phot, keep=found)
    _log_target(ref, i)
    return i


def _log_target(ref, i: int) -> None:
    """One line naming the measured star by its one index (that of the reference figure, the
    tables and ``--target N``), where it is and how it was chosen."""
    record = ref.computed.setdefault("target", {})
    fx, fy = (float(v) for v in grid_to_file(ref, ref.sources.x[i], ref.sources.y[i]))
    record.update(index=int(i), reference_xy=[fx, fy])
    where = f"star #{i} at ({fx:.1f}, {fy:.1f}) on the reference {Path(str(ref.path)).name}"
    if record.get("guessed"):
        return  # said by the group's warning (see guessed_target_warning)
    what, placed = record.get("what"), record.get("placed_by")
    how = f" (placed by {placed})" if placed else ""
    extra = ""
    if record.get("beyond_cap"):
        extra = (f"; it is measured beside the {record['beyond_cap']} brightest stars, so #{i} names it "
                 f"in this run only: give it again by position (--target {_by_position(ref, i)})")
    if record.get("snapped"):
        log.info("target: %s%s snapped to %s, %.1f px away%s", what, how, where,
                 record.get("snap_distance_px", 0.0), extra)
    elif what:
        log.info("target: %s%s measured as %s (no star detected there)%s", what, how, where, extra)
    else:
        log.info("target: %s", where)


def _by_position(ref, i: int) -> str:
    """``X,Y@REFERENCE`` of star ``i``: a --target that names it in any run."""
    fx, fy = (float(v) for v in grid_to_file(ref, ref.sources.x[i], ref.sources.y[i]))
    return f"{fx:.1f},{fy:.1f}@{Path(str(ref.path)).name}"


def guessed_target_warning(ref, target: int, frames=()) -> dict | None:
    """The warning of a target that ``auto`` could not identify (no WCS to place its coordinates
    on): which star was measured, where, how it was chosen and the fix; None when identified."""
    record = ref.computed.get("target") or {}
    if not record.get("guessed"):
        return None
    fx, fy = record["reference_xy"]
    refname = Path(str(ref.path)).name
    first = Path(str(frames[0])).name if len(frames) else refname
    same = f"--target {_by_position(ref, target)}"
    if not record.get("beyond_cap"):
        same = f"--target {target} (or {same})"
    msg = (f"target NOT identified: star #{target} at ({fx:.1f}, {fy:.1f}) (0-based pixels of the "
           f"reference {refname}) was measured, chosen as {record['chosen_by']}, because "
           f"{record['why']}. Give the target: --target X,Y (0-based pixels on the first light frame "
           f"{first}), or {same} if this star is it; --coords \"RA DEC\" gives its "
           "coordinates (BJD_TDB, airmass) but places it only through a WCS")
    return {"code": "target_guessed", "frames": 0, "message": msg, "star": int(target),
            "reference_xy": [fx, fy]}


def resolve_target(ref, target_spec, *, mapped=None, coords=None, wcs_frames=None) -> int:
    """Index of the target in the reference's sources (a pixel/sky position not detected is added).

    ``mapped``: for a pixel target, its position on the reference (trimmed pixels), from
    :func:`place_pixel_target`; without it the pixels are taken on the reference itself.
    ``coords``: the target's (RA, Dec) when known; ``wcs_frames``: ``{frames, pre, align,
    loader}`` to place a sky or automatic target through the WCS of another light frame when
    the reference has none. The placement (given, mapped and snapped positions) is kept in
    ``ref.computed['target']``.
    """
    sources = ref.sources
    kind = target_spec.kind
    if kind == "index":
        if not 0 <= target_spec.index < len(sources):
            raise UsageError(f"target #{target_spec.index} does not exist: the reference frame has "
                              f"{len(sources)} measured stars (0..{len(sources) - 1}, as labelled in "
                              "the reference figure); give the target by position (--target X,Y) instead")
        ref.computed["target"] = {"given": {"index": int(target_spec.index)}, "index": int(target_spec.index)}
        return int(target_spec.index)
    if kind == "sky":
        ref.computed["target"] = {"given": {"ra": target_spec.ra, "dec": target_spec.dec}}
        what = f"RA {target_spec.ra:.5f} Dec {target_spec.dec:+.5f}"
        placed = _place_by_wcs(ref, target_spec.ra, target_spec.dec, **(wcs_frames or {}))
        if placed is None:
            raise ReduceError(f"target given as {what} but no light frame of the group has a WCS "
                              "placing it inside the frame; give it as pixels (--target X,Y), with its coordinates "
                              "(--coords \"RA DEC\") for BJD_TDB and airmass")
        return _source_near(ref, *placed, what)
    if kind == "pixel":
        if mapped is None:
            mapped = tuple(float(v) for v in file_to_grid(ref, target_spec.x, target_spec.y))
            ref.computed["target"] = {"given": {"x": target_spec.x, "y": target_spec.y, "frame": ref.path},
                                      "mapped_by": "identity (the reference)"}
        where = ref.computed.get("target", {}).get("given", {}).get("frame")
        what = f"pixel ({target_spec.x:g}, {target_spec.y:g})" + (f" of {Path(str(where)).name}" if where else "")
        return _source_near(ref, mapped[0], mapped[1], what)
    ref.computed["target"] = {"given": "auto"}
    return _auto_target(ref, coords, wcs_frames or {})


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
        fx, fy = grid_to_file(ref, *xy)
        log.info("target: %s -> (%.1f, %.1f) on the reference %s (%s)", label, fx, fy,
                 Path(str(ref.path)).name, how["mapped_by"])
        return xy
    refname = Path(str(ref.path)).name
    raise ReduceError(f"target {label} cannot be placed on the reference {refname}: "
                      + "; ".join(problems) + f". Give the position on another frame (--target X,Y@FILE) "
                      f"or on the reference (--target X,Y@{refname})")


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
        root is not None and relative_path(p, root) == wanted.as_posix()) or p == wanted)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UsageError(f"target frame {name!r} matches {len(found)} files ("
                          + ", ".join(relative_path(p, root) for p in found[:4])
                          + "); give its path relative to the night folder")
    if root is not None and (root / wanted).is_file():  # a frame of another group of the night
        return root / wanted
    example = paths[0].name if paths else "FILE"
    raise UsageError(f"target frame {name!r} is not a light frame of this night ({night}); give "
                      f"a file name such as {example!r} or a path relative to the night folder")


class _Unplaced(Exception):
    """A frame on which a target position cannot be mapped onto the reference (the reason)."""


def _map_to_reference(ref, frame, x, y, pre, align, loader) -> tuple:
    """((x, y) on the reference in trimmed pixels, how) of file pixel (x, y) of ``frame``."""
    from ..algorithms.asterism import apply_transform
    from ..core.sequence import run_frame

    if _same_file(frame, ref.path):
        return tuple(float(v) for v in file_to_grid(ref, x, y)), {"mapped_by": "identity (the reference frame itself)"}
    image = run_frame(pre, frame, loader)
    if image.flags or image.sources is None or not len(image.sources):
        raise _Unplaced("; ".join(m for _, _, m in image.issues) or "no stars detected")
    gx, gy = (float(v) for v in file_to_grid(image, x, y))
    h, w = image.data.shape
    if not (-0.5 <= gx < w - 0.5 and -0.5 <= gy < h - 0.5):
        (x0, x1), (y0, y1) = (grid_to_file(image, [-0.5, w - 0.5], [-0.5, h - 0.5]))
        raise UsageError(f"target pixel ({x:g}, {y:g}) is outside {Path(str(frame)).name} "
                          f"(x {x0 + 0.5:g}..{x1 - 0.5:g}, y {y0 + 0.5:g}..{y1 - 0.5:g})")
    for block in align:
        block.setup(None)
        try:
            block.run(image)
        except Exception as e:
            raise _Unplaced(f"not aligned on the reference: {e}") from None
    t = np.linalg.inv(np.asarray(image.transform, float))
    mx, my = apply_transform(t, [[gx, gy]])[0]
    info = image.computed.get("alignment") or {}
    how = {"mapped_by": f"alignment ({align[-1].name})",
           "mapped": [float(v) for v in grid_to_file(ref, mx, my)],
           "alignment": {k: info[k] for k in ("matched", "rms", "method") if k in info}}
    return (float(mx), float(my)), how


def field_sources(ref) -> np.ndarray:
    """(n, 3): x, y and peak height in background sigmas of every source the reference detected
    (inf when unknown): the sky annuli leave out each one's pixels as far as its light stands
    above the noise (:func:`reduce.blocks.photometry.neighbour_radii`), measured or not."""
    s = ref.sources
    xy = np.asarray(s.coords, float).reshape(-1, 2)
    peak, rms = getattr(s, "peak", None), getattr(ref, "bkg_rms", None)
    height = np.full(len(xy), np.inf)
    if peak is not None and rms is not None and np.isfinite(rms) and rms > 0:
        height = np.asarray(peak, float) / float(rms)
    return np.column_stack([xy, height])


def _cap_sources(ref, phot, *, keep) -> int | None:
    """Cap ``ref.sources`` to the stars measured on every frame (the alignment block's
    ``max_stars``, brightest first, the ``keep`` star always kept: last when not among them); returns
    the new index of ``keep``. The sources bright enough for their wings to bias a sky annulus
    stay in ``ref.computed['field_sources']``, measured or not (:func:`field_sources`)."""
    ref.computed["field_sources"] = field_sources(ref)
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
        if added:  # no number of its own in a run that does not keep it
            record["beyond_cap"] = int(cap)
    return new[int(keep)]


def _alignment_blocks(phot, ref) -> list:
    """The recipe's alignment blocks (those providing ``transform``), else a default one."""
    blocks = [b for b in phot if "transform" in getattr(b, "provides", ())]
    if not blocks:
        from ..blocks.alignment import AlignReferenceSources

        blocks = [AlignReferenceSources(ref)]
    return blocks


def _sky_to_pixel(ref, ra, dec):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    x, y = ref.wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    gx, gy = wcs_to_grid(ref, x, y)  # the WCS is on the trimmed file pixels (Trim slices it)
    return float(gx), float(gy)


def _source_near(ref, x, y, what: str) -> int:
    """The detected source nearest (x, y) within 1.5 FWHM (at least 3 px), or (x, y) appended as
    a new source when none is there; the snap is logged and recorded in ``ref.computed['target']``."""
    from ..model.image import Sources

    h, w = ref.data.shape
    fx, fy = (float(v) for v in grid_to_file(ref, x, y))
    record = ref.computed.setdefault("target", {})
    record["mapped"] = [fx, fy]
    if not (0 <= x < w and 0 <= y < h):
        raise UsageError(f"target {what} falls at ({fx:.1f}, {fy:.1f}) on the reference "
                          f"{Path(str(ref.path)).name}, outside it ({w}x{h} px)")
    s = ref.sources
    d = np.hypot(s.x - x, s.y - y)
    radius = max(3.0, 1.5 * float(ref.fwhm or 3.0))
    scale = grid_scale(ref)  # the log and the record speak file pixels
    record["snap_radius_px"] = radius * scale
    if len(d) and d.min() <= radius:
        i = int(np.argmin(d))
        sx, sy = (float(v) for v in grid_to_file(ref, s.x[i], s.y[i]))
        record.update(snapped=[sx, sy], snap_distance_px=float(d[i]) * scale, index=i, what=what)
        return i  # logged with its final index by select_target
    log.warning("no star detected within %.1f px of (%.1f, %.1f) on the reference (target %s): "
                "measuring that position as given; check the position (reference figure) or "
                "give the frame it was read on (--target X,Y@FILE)", radius * scale, fx, fy, what)
    record.update(snapped=None, index=len(s), what=what)
    kw = {}
    for name in ("flux", "peak", "a", "b", "theta"):
        v = getattr(s, name)
        kw[name] = None if v is None else np.r_[v, np.nan]
    kw["saturated"] = np.r_[s.saturated, False]
    kw["edge"] = np.r_[s.edge, False]
    ref.sources = Sources(np.vstack([s.coords, [[x, y]]]), **kw)
    ref.computed.setdefault("added_sources", []).append(len(ref.sources) - 1)
    return len(ref.sources) - 1


def _auto_target(ref, coords, wcs_frames) -> int:
    """The target's coordinates (given, else the header RA/Dec) through a WCS of any light frame;
    without one, the brightest unsaturated star near the centre, recorded as a guess."""
    ra, dec = coords if coords is not None else (ref.ra, ref.dec)
    origin = "its coordinates" if coords is not None else "the header RA/Dec"
    if ra is not None and dec is not None:
        placed = _place_by_wcs(ref, ra, dec, **wcs_frames)
        if placed is not None:
            return _source_near(ref, *placed, f"{origin} (RA {ra:.5f} Dec {dec:+.5f})")
    s = ref.sources
    h, w = ref.data.shape
    d = np.hypot(s.x - w / 2, s.y - h / 2)
    ok = ~s.saturated & ~s.edge & (d < 0.2 * min(h, w))
    i = int(np.flatnonzero(ok)[0]) if ok.any() else int(np.argmin(d))  # sources: brightest first
    why = ("no light frame of the group has a WCS to place its coordinates on" if ra is not None
           else "the frames have no WCS and the target no coordinates")
    chosen = ("the brightest unsaturated star within 20 % of the frame size of the reference's "
              "centre" if ok.any() else "the star nearest the reference's centre")
    ref.computed["target"] = {"given": "auto", "guessed": True, "chosen_by": chosen, "why": why,
                              "index": i}
    return i


def _place_by_wcs(ref, ra, dec, *, frames=(), pre=(), align=(), loader=None) -> tuple | None:
    """(x, y) on the reference (measured grid) of sky position (ra, dec): through the reference's
    WCS, else through that of the first light frame that has one, mapped onto the reference by the
    alignment; None when no frame has a usable WCS. Recorded in ``ref.computed['target']``."""
    record = ref.computed.setdefault("target", {})
    h, w = ref.data.shape
    if ref.wcs is not None:
        try:
            x, y = _sky_to_pixel(ref, ra, dec)
        except Exception as e:  # a broken WCS: try another frame's
            log.debug("target: the reference's WCS cannot place RA/Dec: %s", e)
        else:
            if 0 <= x < w and 0 <= y < h:
                record.update(placed_by=f"the WCS of the reference {Path(str(ref.path)).name}")
                return x, y
    for frame, fx, fy in _wcs_frames(frames, ra, dec, ref.path):
        try:
            xy, how = _map_to_reference(ref, frame, fx, fy, pre, align, loader)
        except (_Unplaced, ReduceError) as e:
            log.info("target: the WCS of %s places RA/Dec at (%.1f, %.1f) but %s", frame.name, fx, fy, e)
            continue
        record.update(placed_by=f"the WCS of {frame.name}, then {how['mapped_by']}",
                      wcs_frame=frame, wcs_xy=[float(fx), float(fy)])
        return xy
    return None


WCS_FRAMES_TRIED = 3  # frames with a WCS tried (each mapped onto the reference) before giving up


def _wcs_frames(frames, ra, dec, skip):
    """(frame, x, y): up to ``WCS_FRAMES_TRIED`` light frames whose header WCS puts (ra, dec)
    inside them, at file pixels (x, y), by time; headers only are read."""
    from ..io.fits import read_header
    from ..io.fitsimage import celestial_wcs

    found = 0
    for f in frames:
        path = Path(str(f))
        if _same_file(path, skip):
            continue
        try:
            header, _, (ny, nx) = read_header(path)
        except Exception:
            continue
        wcs = celestial_wcs(header)
        if wcs is None:
            continue
        try:
            from astropy import units as u
            from astropy.coordinates import SkyCoord

            x, y = (float(v) for v in wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg)))
        except Exception:
            continue
        if not (0 <= x < nx and 0 <= y < ny):
            continue
        yield path, x, y
        found += 1
        if found >= WCS_FRAMES_TRIED:
            return


def trim_origin(image) -> tuple:
    """(x0, x1, y0, y1) of the Trim applied to ``image`` (file pixel = trimmed pixel + x0, y0)."""
    return image.computed.get("trim", (0, None, 0, None))


def _same_file(a, b) -> bool:
    try:
        return Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


def relative_path(path, root) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, TypeError, OSError):
        return str(path)
