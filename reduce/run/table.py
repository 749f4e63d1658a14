"""The group's light-curve table: differential photometry of the usable frames, then one row per
file of the group (BJD_TDB, airmass, diagnostics), NaN and a flag where the target was not measured.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..model.errors import ReduceError
from ..model.flags import Flag

__all__ = ["EXCLUDED", "differential", "note_snapshot", "check_errors", "full_table", "stars_radec", "site_of",
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


#: flux errors off the point-to-point scatter by more than this factor, either way, are said
ERROR_TOLERANCE = 2.0
#: ... on this many frames at least: on fewer the scatter (of the aperture chosen for the least
#: scatter) is too uncertain (12 simulated frames with the right gain gave 0.6x-3.4x)
ERROR_FRAMES = 30


def check_errors(diff, ref, plan, warnings):
    """Compare the differential flux errors with the light curve's point-to-point scatter, always
    (``diff.meta['error_ratio']``: median error / scatter). Without a gain (no GAIN/EGAIN header,
    none in the config) the CCD equation assumed 1 e-/ADU, which can be many times off: the errors
    are scaled to the scatter, and said. With a gain, errors off by more than ERROR_TOLERANCE
    either way (on ERROR_FRAMES frames or more) are kept, being the CCD equation's, but said,
    with what to set."""
    from ..lightcurve.stats import p2p_scatter

    flux, err = np.asarray(diff.flux, float), np.asarray(diff.error, float)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    if ok.sum() < 10:
        return diff
    ratio = float(np.median(err[ok]) / p2p_scatter(flux[ok]))
    if not np.isfinite(ratio) or ratio <= 0:
        return diff
    diff.meta["error_ratio"] = ratio
    gain = getattr(ref, "gain", None)
    if gain is None or not np.isfinite(gain) or gain <= 0:
        return _scaled(diff, ratio, int(ok.sum()), plan, warnings)
    log.info("%s: the flux errors are %.2fx the light curve's point-to-point scatter (%d frames)",
             plan.name, ratio, int(ok.sum()))
    if 1 / ERROR_TOLERANCE <= ratio <= ERROR_TOLERANCE or ok.sum() < ERROR_FRAMES:
        return diff
    w = {"code": "errors_off", "frames": int(ok.sum()), "ratio": round(ratio, 3),
         "message": f"the flux errors of the CCD equation are {ratio:.2f}x the light curve's "
                    f"point-to-point scatter: {_what_to_set(ratio, ref)}"}
    log.warning("%s: %s", plan.name, w["message"])
    warnings.append(w)
    return diff


def _what_to_set(ratio: float, ref) -> str:
    """Why errors can be that far off the scatter, and the config keys that fix it."""
    g, rn = float(ref.gain), getattr(ref, "read_noise", None)
    noise = f"gain {g:g} e-/ADU, read noise " + ("unknown (0 assumed)" if rn is None else f"{rn:g} e-")
    ped = ref.computed.get("bias_pedestal") or {}
    if ratio > 1:
        hint = (f"too large ({noise}): check `gain:` for this instrument in the config (too small a "
                "gain inflates them)")
        if ped.get("estimated"):
            hint += (f"; the bias pedestal was {ped.get('how', 'estimated')} at {ped.get('adu', 0):.1f} ADU: "
                     "set `bias_level:` (the raw ADU of a bias frame) in the config, or add bias frames")
        elif "config" in str(ped.get("how", "")):
            hint += f"; check `bias_level:` ({ped.get('adu', 0):g} ADU in the config: what is above it counts as sky)"
        return hint
    return (f"too small ({noise}): the scatter holds noise the CCD equation does not count "
            "(scintillation, flat-field errors, a variable comparison), or `gain:` is too large or "
            "`read_noise:` too small: set them for this instrument in the config")


def _scaled(diff, ratio: float, n: int, plan, warnings):
    """No gain: the errors scaled to the point-to-point scatter, and said."""
    scale = 1 / ratio
    out = diff._replace(errors=diff.errors * scale)
    out.meta["error_scale"] = scale
    w = {"code": "errors_scaled", "frames": n, "ratio": round(ratio, 3), "message":
         f"no gain (no GAIN/EGAIN header, no `gain:` in the config): the flux errors of the CCD "
         f"equation (1 e-/ADU assumed) were {ratio:.2f}x the light curve's point-to-point "
         f"scatter and are scaled to it; set `gain:` (and `read_noise:`, `bias_level:` without bias "
         f"frames) for this instrument in the config to get errors from the CCD equation"}
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
    ra, dec, source = _target_coords(ref, raw)
    pointing = _pointing(ref, group)
    site = site_of(ref, group)
    if ra is None and pointing is not None:  # nothing better: BJD_TDB and airmass from the pointing
        ra, dec = pointing
        _from_pointing(pointing, warnings)
    _missing_geometry(ra, site, warnings)
    cols["bjd_tdb"] = _bjd(raw.time, ra, dec, site)
    cols["flux"], cols["flux_err"] = flux, err
    cols["airmass"] = _airmass_column(raw, ra, dec, site, warnings,
                                      what="the target" if source else "the pointing")
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
    if source is not None:  # the target's own coordinates (never the pointing)
        meta.update({"target_ra": float(ra), "target_dec": float(dec), "target_coords_from": source})
    if pointing is not None:
        meta.update({"pointing_ra": float(pointing[0]), "pointing_dec": float(pointing[1])})
    meta["bjd_coords"] = source or ("pointing (header RA/DEC)" if pointing is not None else None)
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
                      "the headers); give them (--coords \"RA DEC\", the recipe's target coords: or "
                      "the config's targets:)"})
    elif site[0] is None or site[1] is None:
        found.append({"code": "no_site", "frames": 0, "message":
                      "no site latitude/longitude (headers or config): bjd_tdb is geocentric (< 21 ms "
                      "off) and a missing airmass cannot be computed; set `site:` for this "
                      "instrument in the config"})
    for w in found:
        log.warning("%s", w["message"])
        if warnings is not None:
            warnings.append(w)


def _airmass_column(raw, ra, dec, site, warnings=None, what="the target"):
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
                         f"{', ...' if len(names) > 3 else ''}): computed from {what} "
                         f"(RA {ra:.4f}, Dec {dec:+.4f}) and the site"})
        log.info("%s", warnings[-1]["message"])
    return airmass


def _target_coords(ref, raw):
    """(RA, Dec, from) of the target (deg): given (``--coords``, recipe, config ``targets:``), else
    through a WCS at the measured star (the reference's, else that of the light frame that placed
    it); (None, None, None) when unknown. Never the header pointing (see :func:`_pointing`)."""
    record = ref.computed.get("target") or {}
    given = record.get("coords")
    if given:
        return float(given["ra"]), float(given["dec"]), str(given["from"])
    radec = stars_radec(ref, raw.target + 1)
    if radec is not None and np.all(np.isfinite(radec[raw.target])):
        return float(radec[raw.target, 0]), float(radec[raw.target, 1]), "WCS of the reference at the target"
    radec = _wcs_frame_radec(record)
    if radec is not None:
        return (*radec, f"WCS of {Path(str(record['wcs_frame'])).name} at the target")
    return None, None, None


def _wcs_frame_radec(record):
    """(RA, Dec) of the measured star through the WCS of the light frame that placed it (its
    position there: the placed position plus the snap, in file pixels), or None."""
    frame, at = record.get("wcs_frame"), record.get("wcs_xy")
    if frame is None or at is None:
        return None
    dx, dy = 0.0, 0.0
    if record.get("snapped") and record.get("mapped"):
        dx, dy = np.subtract(record["snapped"], record["mapped"])
    try:
        from ..io.fits import read_header
        from ..io.fitsimage import celestial_wcs

        wcs = celestial_wcs(read_header(frame)[0])
        c = wcs.pixel_to_world(at[0] + dx, at[1] + dy)
        return float(c.ra.deg), float(c.dec.deg)
    except Exception as e:  # the RA/Dec are then unknown, never wrong
        log.debug("target RA/Dec from %s not computed: %s", frame, e)
        return None


def _pointing(ref, group=None):
    """(RA, Dec) of the telescope's pointing (header RA/DEC: the reference's, else the mean of the
    group's frames), or None."""
    if ref.ra is not None and ref.dec is not None:
        return float(ref.ra), float(ref.dec)
    if getattr(group, "ra", None) is not None and getattr(group, "dec", None) is not None:
        return float(group.ra), float(group.dec)
    return None


def _from_pointing(pointing, warnings) -> None:
    """Say that BJD_TDB (and a computed airmass) use the pointing, not the target."""
    w = {"code": "bjd_from_pointing", "frames": 0, "message":
         f"the target's coordinates are unknown (no WCS, no --coords): bjd_tdb and any computed "
         f"airmass use the telescope's pointing (header RA/DEC {pointing[0]:.4f} {pointing[1]:+.4f}), "
         "off by up to ~0.15 s per arcminute between the pointing and the target; give the "
         "target's coordinates (--coords \"RA DEC\", the recipe's target coords: or the config's "
         "targets:). RA_OBJ/DEC_OBJ are left out; the pointing is RA_PNT/DEC_PNT"}
    log.warning("%s", w["message"])
    if warnings is not None:
        warnings.append(w)


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
