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

__all__ = ["select_target", "resolve_target", "place_pixel_target", "target_frame", "trim_origin",
           "relative_path"]

log = logging.getLogger("reduce.run")


TARGET_FRAME_TRIES = 5  # first frames tried to place a pixel target given on the first frame


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
            raise UsageError(f"target #{target_spec.index} does not exist: the reference frame has "
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
            mapped = tuple(float(v) for v in file_to_grid(ref, target_spec.x, target_spec.y))
            ref.computed["target"] = {"given": {"x": target_spec.x, "y": target_spec.y, "frame": ref.path},
                                      "mapped_by": "identity (the reference)"}
        where = ref.computed.get("target", {}).get("given", {}).get("frame")
        what = f"pixel ({target_spec.x:g}, {target_spec.y:g})" + (f" of {Path(str(where)).name}" if where else "")
        return _source_near(ref, mapped[0], mapped[1], what)
    ref.computed["target"] = {"given": "auto"}
    return _auto_target(ref)


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
        record.update(snapped=[sx, sy], snap_distance_px=float(d[i]) * scale, index=i)
        log.info("target: %s snapped to star #%d at (%.1f, %.1f) on the reference, %.1f px away", what, i,
                 sx, sy, d[i] * scale)
        return i
    log.warning("no star detected within %.1f px of (%.1f, %.1f) on the reference (target %s): "
                "measuring that position as given; check the position (reference figure) or "
                "give the frame it was read on (--target X,Y@FILE)", radius * scale, fx, fy, what)
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
