"""The group's light-curve table: differential photometry of the usable frames, then one row per
file of the group (BJD_TDB, airmass, diagnostics), NaN and a flag where the target was not measured.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..model.errors import ReduceError
from ..model.flags import Flag

__all__ = ["EXCLUDED", "differential", "note_snapshot", "errors_without_gain", "full_table", "stars_radec", "site_of",
           "p2p_of_table"]

log = logging.getLogger("reduce.run")


# frames with these bits carry no usable target flux: they stay in the table with NaN flux
EXCLUDED = (Flag.UNREADABLE | Flag.NO_SOURCES | Flag.ALIGNMENT_FAILED | Flag.UNEXPECTED
            | Flag.TARGET_SATURATED | Flag.TARGET_NEAR_EDGE | Flag.TARGET_MASKED | Flag.NO_PSF)


def resolve_check(ref, check, n_stars: int, target: int):
    """(index, None) of the recipe's check star (``differential: {check: N | {x, y}}``; a position is
    the nearest measured star within 5 px, 0-based file pixels of the reference), (None, message)
    when it names no usable star, (None, None) when none is given (the export picks one)."""
    from ..blocks.bayer import grid_to_file

    if check is None:
        return None, None
    if isinstance(check, int):
        if check >= n_stars or check == target:
            what = "the target" if check == target else f"not a measured star (0..{n_stars - 1})"
            return None, f"the check star {check} (recipe differential: check) is {what}"
        return check, None
    xy = np.column_stack(grid_to_file(ref, *ref.sources.coords[:n_stars].T))
    dist = np.hypot(xy[:, 0] - check[0], xy[:, 1] - check[1])
    dist[target] = np.inf
    best = int(np.argmin(dist)) if n_stars else None
    if best is None or not dist[best] <= 5.0:
        return None, (f"no measured star within 5 px of the check star position ({check[0]:.1f}, "
                      f"{check[1]:.1f}) (recipe differential: check; 0-based pixels of the first frame)")
    return best, None


def differential(raw, spec, check: int | None = None):
    """Differential Fluxes of the usable frames, with the recipe's clipping and comparison choice;
    the ``check`` star (an index) is measured like the others but kept out of the ensemble."""
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
    if dspec.max_light_loss is not None:
        good = _enough(good.set_aside_clouds(dspec.max_light_loss), "their comparisons lost more than "
                       f"{100 * dspec.max_light_loss:g} % of their light (recipe differential: max_light_loss)")
    try:
        kwargs = dspec.fluxes_kwargs()  # max_comps, reject, exclude, scatter (and dt) of the recipe
        if check is not None and dspec.method == "autodiff":
            kwargs["exclude"] = sorted(set(kwargs.get("exclude", [])) | {int(check)})
        if check is not None and dspec.method == "diff" and int(check) in kwargs["comps"]:
            raise ReduceError(f"the check star {check} is also a comparison (differential: comps)")
        if dspec.method == "diff":
            diff = good.diff(kwargs.pop("comps"), **kwargs)
        else:
            diff = good.autodiff(**kwargs)
    except ValueError as e:
        raise ReduceError(f"differential photometry failed: {e}")
    if dspec.outlier_guard is not None:
        diff = diff.outlier_guard(**dspec.outlier_guard)
    return diff


def _enough(fluxes, why: str):
    """``fluxes`` when at least 2 frames are left, else a ReduceError saying why they went."""
    if len(fluxes) < 2:
        raise ReduceError(f"only {len(fluxes)} frame(s) left: the others were set aside because {why}")
    return fluxes


def note_snapshot(diff, plan, warnings) -> None:
    """On 1 or 2 frames the aperture is the target's best signal-to-noise (CCD equation): no
    scatter can be measured. Said, since the choice is then only as good as the gain."""
    if diff.meta.get("aperture_by") != "snr":
        return
    n = int(np.isfinite(np.asarray(diff.flux, float)).sum())
    w = {"code": "aperture_by_snr", "frames": n, "message":
         f"the target is measured on {n} frame(s): the aperture (r={diff.aperture_radius:.1f} px) is the one "
         "of best signal-to-noise by the CCD equation, not of least light-curve scatter (which needs 3 "
         "frames); its errors are the CCD equation's (set `gain:` and `read_noise:` in the config)"}
    log.warning("%s: %s", plan.name, w["message"])
    warnings.append(w)


def errors_without_gain(diff, ref, plan, warnings):
    """Without a gain (no GAIN/EGAIN header, none in the config) the CCD equation's errors assume
    1 e-/ADU, which can be many times off (a 12-bit camera's sky of 1.5 ADU rms): scale the
    differential errors to the light curve's point-to-point scatter, and say so."""
    gain = getattr(ref, "gain", None)
    if gain is not None and np.isfinite(gain) and gain > 0:
        return diff
    from ..lightcurve.stats import p2p_scatter

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


def full_table(raw, diff, ref, group=None, warnings=None):
    """One row per frame of the group: differential flux where measured, NaN and a flag elsewhere.

    ``group`` (the index's) gives the site and pointing when the reference frame lacks them;
    what had to be computed is appended to ``warnings``."""
    from ..lightcurve.tables import lightcurve_table

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
    site = site_of(ref, group)
    _missing_geometry(ra, site, warnings)
    cols["bjd_tdb"] = _bjd(raw.time, ra, dec, site)
    cols["flux"], cols["flux_err"] = flux, err
    cols["airmass"] = _airmass_column(raw, ra, dec, site, warnings)
    for name in ("fwhm", "sky", "dx", "dy", "x", "y"):
        v = raw.get(name)
        cols[name] = np.full(n, np.nan) if v is None else np.asarray(v, float)
    _file_pixels(cols, ref)
    cols["flag"] = flags
    cols["file"] = [Path(str(f)).name for f in raw.files]
    meta = {"target": int(raw.target), "aperture": int(diff.aperture),
            "aperture_radius": float(diff.aperture_radius),
            "comparisons": [int(c) for c in diff.comparisons],
            "weights": [float(w) for w in diff.weights]}
    if ra is not None:
        meta.update({"target_ra": float(ra), "target_dec": float(dec)})
    return lightcurve_table(cols, meta)


def _file_pixels(cols: dict, ref) -> None:
    """The table's positions in the file's 0-based pixels and its widths and shifts in file pixels,
    whatever grid the frames were measured on (trimmed, or 2x2 superpixels of a colour sensor)."""
    from ..blocks.bayer import grid_scale, grid_to_file

    cols["x"], cols["y"] = grid_to_file(ref, cols["x"], cols["y"])
    scale = grid_scale(ref)
    for name in ("fwhm", "dx", "dy"):
        cols[name] = cols[name] * scale


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
    from ..ephemeris import airmass as _airmass

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
    radec = stars_radec(ref, raw.target + 1)
    if radec is not None:
        return float(radec[raw.target, 0]), float(radec[raw.target, 1])
    if ref.ra is not None and ref.dec is not None:
        return float(ref.ra), float(ref.dec)
    if getattr(group, "ra", None) is not None and getattr(group, "dec", None) is not None:
        return float(group.ra), float(group.dec)
    return None, None


def site_of(ref, group=None):
    """(latitude, longitude east-positive, elevation): the group's (its frames', with a west-positive
    header longitude corrected), else the reference's instrument config or header."""
    if getattr(group, "site", None) is not None:
        return tuple(group.site)
    from ..index.headers import site

    return site(ref.header if ref.header is not None else {}, ref.instrument)


def _bjd(time, ra, dec, site):
    if ra is None:
        return np.full(len(time), np.nan)
    from ..ephemeris import bjd_tdb

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


def stars_radec(ref, n: int):
    """(n, 2) RA/Dec (deg) of the reference's sources through its WCS, or None without one."""
    if ref.wcs is None:
        return None
    try:
        from ..blocks.bayer import grid_to_wcs

        xy = np.asarray(ref.sources.coords[:n], float)
        c = ref.wcs.pixel_to_world(*grid_to_wcs(ref, xy[:, 0], xy[:, 1]))  # Trim sliced the WCS
        return np.column_stack([c.ra.deg, c.dec.deg])
    except Exception as e:  # a broken WCS leaves RA/Dec out, never the product
        log.debug("star RA/Dec not computed: %s", e)
        return None


def p2p_of_table(table) -> float | None:
    """Point-to-point scatter of the normalised flux of the kept frames (relative): the noise of
    one frame, insensitive to the signal (a transit or a slow trend) that an RMS would include."""
    from ..lightcurve.stats import p2p_scatter

    flux = np.asarray(table["flux"], float)
    flux = flux[np.isfinite(flux)]
    if flux.size < 3 or not np.nanmedian(flux) > 0:
        return None
    value = float(p2p_scatter(flux / np.nanmedian(flux)))
    return value if np.isfinite(value) else None
