"""Scene design: every random choice of a simulated night, made once before any frame is drawn.

Per-frame conditions (seeing, transparency, sky, pointing drift, airmass), the detector's fixed
pixel maps (flat response, bias structure, dark rate with hot pixels) and the stars
(:mod:`.stars`).
"""
from __future__ import annotations

import math

import numpy as np

from .conventions import _CAMERA, SITE, _iso_to_jd, jd_to_iso
from .profiles import illumination, sky_plane
from .stars import _stars


def _design(rng, time, dflux, *, size, n_stars, shift, calibration, exptime) -> dict:
    """Every random choice of the night, made once: conditions per frame, stars, detector."""
    half = exptime / 2 / 86400.0  # start times are whole milliseconds, as DATE-OBS shows them
    mid = np.array([_iso_to_jd(jd_to_iso(t - half)) for t in np.asarray(time, float)]) + half
    s = {"time": mid, "dflux": np.asarray(dflux, float), "size": size,
         "exptime": exptime, "calibration": calibration, **_CAMERA}
    span = max(float(s["time"][-1] - s["time"][0]), 0.02)
    s["beta"] = float(rng.uniform(2.5, 4.0))
    seeing = rng.uniform(3.5, 4.2) + 0.5 * _smooth(rng, s["time"], span)
    s["fwhm"] = np.clip(seeing + rng.normal(0, 0.04, len(mid)), 3.0, 5.0)  # slow trend + jitter
    s["transparency"] = 1.0 - rng.uniform(0.02, 0.05) * (0.5 + 0.5 * _smooth(rng, s["time"], span))
    s["sky_center"] = rng.uniform(150, 300) * (1.0 + 0.2 * _smooth(rng, s["time"], span))
    g, phi = rng.uniform(0.1, 0.25) / size, rng.uniform(0, 2 * np.pi)
    s["sky_gradient"] = [g * math.cos(phi), g * math.sin(phi)]
    s["ra"], s["dec"], s["airmass"] = _pointing(s["time"])
    s["extinction"] = 10 ** (-0.4 * s["extinction_coefficient"] * (s["airmass"] - 1.0))
    s["dx"], s["dy"] = _drift(rng, len(s["time"]), shift)
    s["bias_level"] = float(rng.uniform(300, 1000)) if calibration else 0.0
    s["dark_current"] = float(rng.uniform(0.1, 0.5)) if calibration else 0.0
    s["flat"] = _flat_params(rng, size, calibration)
    s["stars"] = _stars(rng, s, n_stars)
    _detector_maps(rng, s)
    return s


def _smooth(rng, time, span, n_modes=3):
    """A smooth random curve within [-1, 1]: a few sinusoids with periods of 0.3-2 nights."""
    t = np.asarray(time) - time[0]
    amps = rng.uniform(0.3, 1.0, n_modes)
    out = sum(a * np.sin(2 * np.pi * t / (rng.uniform(0.3, 2.0) * span) + rng.uniform(0, 2 * np.pi))
              for a in amps)
    return out / amps.sum()


def _drift(rng, n, shift):
    """Pointing offsets (px) relative to frame 0: a linear drift totalling ``shift``, plus jitter."""
    ang = rng.uniform(0, 2 * np.pi)
    frac = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    jitter = rng.normal(0, 0.3, (2, n))
    jitter[:, 0] = 0.0
    return shift * frac * math.cos(ang) + jitter[0], shift * frac * math.sin(ang) + jitter[1]


def _pointing(time):
    """RA, Dec (deg) of a field that rises toward the meridian during the night, and airmass."""
    half_night = 15.0 * 24 * float(time[-1] - time[0]) / 2
    ra = float((_lst_deg(time[0]) + 15.0 * 2.5 + half_night) % 360.0)
    dec = SITE["latitude"] + 15.0
    return ra, dec, _airmass(time, ra, dec)


def _lst_deg(jd):
    """Local sidereal time (deg) at the site (IAU 1982 GMST, good to ~0.1 s here)."""
    gmst = 280.46061837 + 360.98564736629 * (np.asarray(jd) - 2451545.0)
    return (gmst + SITE["longitude"]) % 360.0


def _airmass(jd, ra, dec):
    """Kasten & Young (1989) airmass of (ra, dec) at the site at each JD."""
    lat, d = np.radians(SITE["latitude"]), np.radians(dec)
    ha = np.radians(_lst_deg(jd) - ra)
    alt = np.degrees(np.arcsin(np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(ha)))
    alt = np.maximum(alt, 5.0)
    return 1.0 / (np.sin(np.radians(alt)) + 0.50572 * (alt + 6.07995) ** -1.6364)


def _flat_params(rng, size, calibration):
    """Vignetting, one dust donut, pixel-response scatter and the flats' level and exposure."""
    if not calibration:
        return {"vignetting": 0.0, "center": [size / 2, size / 2], "radius": size / 2,
                "prnu": 0.0, "donuts": [], "level_adu": 0.0, "exptime": 0.0}
    c = (size - 1) / 2.0 + rng.normal(0, size / 30, 2)
    donut = [float(rng.uniform(0.15, 0.85) * size), float(rng.uniform(0.15, 0.85) * size),
             float(max(4.0, size / 50)), float(rng.uniform(0.02, 0.04))]
    return {"vignetting": float(rng.uniform(0.08, 0.15)), "center": [float(c[0]), float(c[1])],
            "radius": float(size / math.sqrt(2)), "prnu": float(rng.uniform(0.01, 0.02)),
            "donuts": [donut], "level_adu": float(rng.uniform(20000, 30000)), "exptime": 2.0}


def _detector_maps(rng, s):
    """Fixed pixel maps: flat response, bias structure, dark rate with hot pixels, sky shape."""
    n = s["size"]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    if s["calibration"]:
        prnu = 1.0 + s["flat"]["prnu"] * rng.standard_normal((n, n), dtype=np.float32)
        resp = (illumination(xx, yy, s["flat"]) * prnu).astype(np.float32)
        bias = (s["bias_level"] + rng.normal(0, 2.5, n)[None, :] + rng.normal(0, 0.8, n)[:, None]
                + 3.0 * xx / n).astype(np.float32)
        rate = np.full((n, n), s["dark_current"], dtype=np.float32)
        n_hot = max(3, int(3e-4 * n * n))
        hx, hy = rng.integers(0, n, n_hot), rng.integers(0, n, n_hot)
        hr = np.exp(rng.uniform(np.log(2.0), np.log(200.0), n_hot))
        rate[hy, hx] += hr
        s["hot_pixels"] = [[int(a), int(b), round(float(c), 3)] for a, b, c in zip(hx, hy, hr)]
    else:
        resp, bias = np.ones((n, n), np.float32), np.zeros((n, n), np.float32)
        rate, s["hot_pixels"] = np.zeros((n, n), np.float32), []
    s["resp"], s["bias_map"], s["dark_rate"] = resp, bias, rate
    s["flat"]["median_response"] = float(np.median(resp))  # a median-normalised master flat
    # divides by this too: calibrated sky and fluxes come out x median_response
    s["sky_base"] = (resp * sky_plane(xx, yy, n, s["sky_gradient"]) * s["gain"]).astype(np.float32)
