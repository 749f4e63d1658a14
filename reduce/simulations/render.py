"""Rendering and writing frames: noiseless models, photon and read noise, headers, FITS files.

Light frames draw the scene's stars through the flat response; calibration frames (bias, dark,
flat) are planned back to back before the night. Files are written atomically.
"""
from __future__ import annotations

import math

import numpy as np

from ..io.atomic import atomic_write
from .conventions import READOUT_S, SITE, _iso_to_jd, jd_to_iso
from .defects import add_cosmic_rays
from .profiles import doughnut_table, moffat_alpha, star_positions

_SAMPLED_FWHM = 2.5  # px: narrower stars are integrated over each pixel (see _integrated_stamp)
_IMAGETYP = {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field", "light": "Light Frame"}


def _photons(rng, lam):
    """Photon and dark counts: exact Poisson below 100 e-, its Gaussian limit above."""
    lam = np.asarray(lam, dtype=np.float32)
    out = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < 100
    if low.any():
        out[low] = rng.poisson(lam[low])
    return out


def _add_star(model, resp, x, y, flux, alpha, beta, colour=None):
    """Add a Moffat star of ``flux`` e- at (x, y) through the flat response, on a stamp whose
    half-size reaches ~1 e-/px (between 4 and 15 FWHM): only the stamp is computed."""
    peak = flux * (beta - 1) / (np.pi * alpha * alpha)
    if peak <= 0:
        return
    fwhm = 2 * alpha * math.sqrt(2 ** (1 / beta) - 1)
    half = min(max(alpha * math.sqrt(max(peak, 1.0) ** (1 / beta) - 1), 4 * fwhm), 15 * fwhm)
    ny, nx = model.shape
    x0, x1 = max(int(x - half), 0), min(int(x + half) + 2, nx)
    y0, y1 = max(int(y - half), 0), min(int(y + half) + 2, ny)
    if x0 >= x1 or y0 >= y1:
        return
    if fwhm < _SAMPLED_FWHM:
        stamp = _integrated_stamp(x0, x1, y0, y1, x, y, peak, alpha, beta)
    else:
        r2 = (np.arange(y0, y1) - y)[:, None] ** 2 + (np.arange(x0, x1) - x)[None, :] ** 2
        stamp = peak * (1.0 + r2 / (alpha * alpha)) ** (-beta)
    model[y0:y1, x0:x1] += (stamp * _through(resp, colour, y0, y1, x0, x1)).astype(np.float32)


def _through(resp, colour, y0, y1, x0, x1):
    """The response on a stamp: the flat's, times the star's channel weights on a colour
    mosaic (``colour`` = (channel map, weights per channel), or None for a mono sensor)."""
    if colour is None:
        return resp[y0:y1, x0:x1]
    cfa, weights = colour
    return resp[y0:y1, x0:x1] * weights[cfa[y0:y1, x0:x1]]


def _integrated_stamp(x0, x1, y0, y1, x, y, peak, alpha, beta, k=7):
    """The Moffat profile averaged over each pixel (k x k sub-samples), as a detector
    integrates it: sampling pixel centres would make an undersampled star's summed flux
    depend on where it falls in the pixel."""
    off = (np.arange(k) + 0.5) / k - 0.5
    yy = (np.arange(y0, y1)[:, None] + off[None, :]).ravel() - y
    xx = (np.arange(x0, x1)[:, None] + off[None, :]).ravel() - x
    r2 = yy[:, None] ** 2 + xx[None, :] ** 2
    fine = peak * (1.0 + r2 / (alpha * alpha)) ** (-beta)
    return fine.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))


def _add_doughnut(model, resp, x, y, flux, table, seeing, colour=None, k=5):
    """Add a defocused star of ``flux`` e- at (x, y) from its radial ``table``
    (:func:`.profiles.doughnut_table`) through the flat response; sampled at pixel centres
    when the seeing blur is resolved (FWHM >= 2.5 px), else averaged over k x k sub-pixels."""
    r, surf, _ = table
    half = r[-1]
    ny, nx = model.shape
    x0, x1 = max(int(x - half), 0), min(int(x + half) + 2, nx)
    y0, y1 = max(int(y - half), 0), min(int(y + half) + 2, ny)
    if x0 >= x1 or y0 >= y1:
        return
    off = np.zeros(1) if seeing >= _SAMPLED_FWHM else (np.arange(k) + 0.5) / k - 0.5
    m = len(off)
    yy = (np.arange(y0, y1)[:, None] + off[None, :]).ravel() - y
    xx = (np.arange(x0, x1)[:, None] + off[None, :]).ravel() - x
    fine = np.interp(np.hypot(yy[:, None], xx[None, :]), r, surf, right=0.0)
    stamp = flux * fine.reshape(y1 - y0, m, x1 - x0, m).mean(axis=(1, 3))
    model[y0:y1, x0:x1] += (stamp * _through(resp, colour, y0, y1, x0, x1)).astype(np.float32)


def _star_colours(s):
    """Each star's (channel map, channel weights) on a colour mosaic; Nones on a mono sensor."""
    if "bayer" not in s:
        return [None] * len(s["stars"]["x"])
    cfa = s["bayer"]["cfa"]
    return [(cfa, w) for w in s["bayer"]["star_weights"].astype(np.float32)]


def _light_model(s, i):
    """Noiseless electrons of light frame ``i`` (sky, dark, stars); records star peaks."""
    st = s["stars"]
    model = s["sky_base"] * np.float32(s["sky_center"][i])
    model += s["dark_rate"] * np.float32(s["exptime"])
    alpha = float(moffat_alpha(s["fwhm"][i], s["beta"]))
    if s["rotation"][i]:
        xs, ys = star_positions(st["x"], st["y"], s["dx"][i:i + 1], s["dy"][i:i + 1],
                                s["rotation"][i:i + 1], s["rotation_center"])
        xs, ys = xs[:, 0], ys[:, 0]
    else:
        xs, ys = st["x"] + s["dx"][i], st["y"] + s["dy"][i]
    fluxes = st["flux"] * st["signal"][:, i] * s["transparency"][i] * s["extinction"][i]
    colours = _star_colours(s)
    if "psf_peak" in s:
        table = doughnut_table(s["psf"]["diameter"], s["psf"]["obstruction"], s["seeing"][i])
        for x, y, f, c in zip(xs, ys, fluxes, colours):
            _add_doughnut(model, s["resp"], x, y, f, table, s["seeing"][i], c)
    else:
        for x, y, f, c in zip(xs, ys, fluxes, colours):
            _add_star(model, s["resp"], x, y, f, alpha, s["beta"], c)
    nx, ny, h = s["nx"], s["ny"], s.get("peak_box", 1)
    for k, (x, y) in enumerate(zip(xs, ys)):
        ix, iy = int(round(x)), int(round(y))
        sl = (slice(max(iy - h, 0), min(iy + h + 1, ny)), slice(max(ix - h, 0), min(ix + h + 1, nx)))
        if model[sl].size:
            peak = float(np.max(model[sl] / s["gain"] + s["bias_map"][sl]))
            st["peak"][k] = max(st["peak"][k], peak)
    return model


def _to_adu(s, electrons, rng):
    """Electrons to ADU with the bias structure and read noise (float32)."""
    noise = rng.standard_normal(s["bias_map"].shape, dtype=np.float32)
    return electrons / np.float32(s["gain"]) + s["bias_map"] + noise * np.float32(s["read_noise"] / s["gain"])


def _write_light(s, i, dest, dtype, rng):
    """Render, write and name light frame ``i``."""
    adu = _to_adu(s, _photons(rng, _light_model(s, i)), rng)
    cr = s["cosmic_rays"]
    if cr:
        cr["light"][i] = add_cosmic_rays(adu, cr["light_rng"], cr["per_light"], s["saturation"])
    start = s["time"][i] - s["exptime"] / 2 / 86400.0
    header = _header(s, "light", start, s["exptime"], airmass=s["airmass"][i])
    if i in s.get("wcs_frames", ()):
        _add_wcs(header, s, i)
    name = f"light/{s['object']}_{s['filter']}_{i + 1:04d}.fits"
    _write_fits(dest / name, adu, header, dtype, s["saturation"])
    return name


def _calibration_plan(s, n_bias, n_darks, n_flats, dark_exptimes):
    """Bias, dark then flat exposures taken back to back, ending 30 min before the first light."""
    items = [("bias", k, 0.0) for k in range(n_bias)]
    items += [("dark", k, float(t)) for t in dark_exptimes for k in range(n_darks)]
    items += [("flat", k, s["flat"]["exptime"]) for k in range(n_flats)]
    total = sum(t + READOUT_S for _, _, t in items) + 1800.0
    start = s["time"][0] - s["exptime"] / 2 / 86400.0 - total / 86400.0
    plan = []
    for kind, k, texp in items:
        start = _iso_to_jd(jd_to_iso(start))
        plan.append({"kind": kind, "index": k, "exptime": texp, "start": start})
        start += (texp + READOUT_S) / 86400.0
    return plan


def _write_calibration(s, item, dest, dtype, rng):
    """Render, write and name one bias, dark or flat frame."""
    kind, texp = item["kind"], item["exptime"]
    lam = s["dark_rate"] * np.float32(texp)
    if kind == "flat":
        resp = s["resp"] if "bayer" not in s else s["resp"] * s["bayer"]["flat_map"]  # white
        lam = lam + resp * np.float32(s["flat"]["level_adu"] * s["gain"])  # light through a mosaic
    electrons = _photons(rng, lam) if kind != "bias" else np.zeros_like(lam)
    adu = _to_adu(s, electrons, rng)
    n_hits = _calibration_hits(s, texp)
    if n_hits:
        add_cosmic_rays(adu, s["cosmic_rays"]["calibration_rng"], n_hits, s["saturation"])
    tag = {"bias": "bias", "dark": f"dark_{texp:g}s", "flat": f"flat_{s['filter']}"}[kind]
    name = f"calibration/{tag}_{item['index'] + 1:03d}.fits"
    _write_fits(dest / name, adu, _header(s, kind, item["start"], texp), dtype, s["saturation"])
    return name


def _calibration_hits(s, texp):
    """Cosmic-ray hits on a calibration frame of ``texp`` s: the lights' rate per second,
    rounded up (a dark as long as a light gets as many hits; a bias none)."""
    cr = s["cosmic_rays"]
    return math.ceil(cr["per_light"] * texp / s["exptime"] - 1e-9) if cr and texp > 0 else 0


def _header(s, kind, start_jd, exptime, airmass=None):
    """Camera-like header: frame type, start time, exposure, optics, detector and site."""
    from astropy.io import fits

    h = fits.Header()
    h["IMAGETYP"] = (_IMAGETYP[kind], "frame type")
    h["DATE-OBS"] = (jd_to_iso(start_jd), "UTC date and time at exposure start")
    h["JD"] = (round(float(start_jd), 8), "Julian date (UTC) at exposure start")
    h["EXPTIME"] = (float(exptime), "[s] exposure time")
    h["TELESCOP"] = (s["telescope"], "telescope")
    h["INSTRUME"] = (s["instrument"], "camera")
    if kind in ("flat", "light"):
        h["FILTER"] = (s["filter"], "filter")
    if kind == "light":
        h["OBJECT"] = (s["object"], "target name")
        h["RA"] = (round(s["ra"], 6), "[deg] target right ascension (J2000)")
        h["DEC"] = (round(s["dec"], 6), "[deg] target declination (J2000)")
        h["EQUINOX"] = (2000.0, "equinox of RA and DEC")
        h["AIRMASS"] = (round(float(airmass), 5), "airmass at mid-exposure")
    h["GAIN"] = (s["gain"], "[e-/ADU] detector gain")
    h["RDNOISE"] = (s["read_noise"], "[e-] read noise")
    h["SATURATE"] = (s["saturation"], "[ADU] saturation level")
    h["XBINNING"] = (1, "binning factor in x")
    h["YBINNING"] = (1, "binning factor in y")
    h["CCD-TEMP"] = (-20.0, "[degC] sensor temperature")
    h["SITELAT"] = (SITE["latitude"], "[deg] site latitude, north positive")
    h["SITELONG"] = (SITE["longitude"], "[deg] site longitude, east positive")
    h["SITEELEV"] = (SITE["elevation"], "[m] site elevation")
    if "bayer" in s:  # as N.I.N.A. and ASCOM drivers write them
        h["BAYERPAT"] = (s["bayer"]["pattern"], "colour filter array, from the top-left pixel")
        h["XBAYROFF"] = (0, "x offset of the Bayer pattern")
        h["YBAYROFF"] = (0, "y offset of the Bayer pattern")
    h["BUNIT"] = ("adu", "pixel unit")
    h["ORIGIN"] = ("reduce simulate", "synthetic frame with known truth")
    return h


WCS_SCALE_DEG = 1.5 / 3600.0  # the simulated frames' plate scale (1.5 arcsec per pixel)


def _add_wcs(header, s, i) -> None:
    """A TAN WCS on light frame ``i``: the target at the header RA/DEC on its pixel of that frame,
    north up and east left on the first frame, turned with the field's rotation."""
    st, t = s["stars"], s["stars"]["target"]
    xs, ys = star_positions([st["x"][t]], [st["y"][t]], s["dx"][i:i + 1], s["dy"][i:i + 1],
                            s["rotation"][i:i + 1], s["rotation_center"])
    th = np.radians(float(s["rotation"][i]))
    c, sn = np.cos(th), np.sin(th)
    cd = np.array([[-WCS_SCALE_DEG, 0.0], [0.0, WCS_SCALE_DEG]]) @ np.array([[c, sn], [-sn, c]])
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"),
                       ("CRPIX1", float(xs[0, 0]) + 1.0), ("CRPIX2", float(ys[0, 0]) + 1.0),
                       ("CRVAL1", round(s["ra"], 6)), ("CRVAL2", round(s["dec"], 6)),
                       ("CD1_1", float(cd[0, 0])), ("CD1_2", float(cd[0, 1])),
                       ("CD2_1", float(cd[1, 0])), ("CD2_2", float(cd[1, 1])),
                       ("RADESYS", "ICRS")):
        header[key] = value


def _write_fits(path, adu, header, dtype, saturation):
    """Clip to the saturation level, cast like the camera would, write atomically."""
    from astropy.io import fits

    np.clip(adu, 0.0, saturation, out=adu)
    data = np.rint(adu).astype(np.uint16) if dtype == "uint16" else adu.astype(np.float32)
    with atomic_write(path, "wb") as f:
        fits.PrimaryHDU(data=data, header=header).writeto(f)
