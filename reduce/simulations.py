"""Synthetic nights with known truth: raw light, bias, dark and flat frames plus ``truth.json``.

The scene is physical enough to exercise a whole reduction: a target near the centre (the
brightest unsaturated star), comparison stars of which a few vary, a common transparency and
airmass extinction, pointing drift, a Moffat PSF whose seeing changes, a sky gradient, photon,
dark and read noise, and a camera signature (bias structure, dark current with hot pixels,
vignetting, dust and pixel response) that calibration frames let a pipeline remove.

Conventions (also written in ``truth.json['units']``): pixel coordinates are 0-based with pixel
centres on integers (numpy / photutils / sep); ``time`` is JD UTC at mid-exposure while the
headers' ``DATE-OBS`` and ``JD`` mark the exposure *start*; star fluxes are total electrons per
exposure at airmass 1 in clear sky before the flat response; ``sky`` is ADU per pixel at the
target after flat-fielding (i.e. without the flat response). Scintillation, cosmic rays and
colour-dependent extinction are not simulated.
"""
from __future__ import annotations

import json
import math
import os
import time as _time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

__all__ = ["simulate_night", "simulate_observation", "noise_floor", "load_truth", "target_signal",
           "enclosed_fraction", "moffat_alpha", "SITE", "SIGNALS", "DTYPES"]

SIGNALS = ("sine", "transit", "flat")
DTYPES = ("uint16", "float32")
SITE = {"latitude": -24.6272, "longitude": -70.4045, "elevation": 2635.0}  # east-positive degrees
NIGHT_START = "2024-03-16T01:00:00.000"  # UTC start of the first light of simulate_night
READOUT_S = 10.0       # dead time between exposures (s)
MIN_SIZE = 64
TRUTH_VERSION = 1
_J2000 = datetime(2000, 1, 1, 12, 0, 0)
_CAMERA = {"gain": 1.5, "read_noise": 9.0, "saturation": 65535.0, "extinction_coefficient": 0.15,
           "filter": "V", "telescope": "SIM-60", "instrument": "SimCam", "object": "SIM-1"}


# ----------------------------------------------------------------------------- public helpers
def moffat_alpha(fwhm, beta):
    """Moffat core width alpha (px) of a profile with this ``fwhm`` (px) and power ``beta``."""
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def enclosed_fraction(radius, fwhm, beta):
    """Fraction of a Moffat star's total flux inside a circle of ``radius`` px (analytic)."""
    a = moffat_alpha(fwhm, beta)
    return 1.0 - (1.0 + (np.asarray(radius) / a) ** 2) ** (1.0 - beta)


def target_signal(kind: str, time, *, amplitude: float = 0.01) -> np.ndarray:
    """Relative flux of the target: 'sine' (1.5 cycles per night), 'transit' (centred, with a
    limb-darkened-like curved bottom, ``amplitude`` deep) or 'flat' (ones)."""
    t = np.asarray(time, dtype=float)
    span = max(float(t.max() - t.min()), 1e-3)
    if kind == "flat":
        return np.ones_like(t)
    if kind == "sine":
        return 1.0 + amplitude * np.sin(2 * np.pi * (t - t.min()) / (span / 1.5))
    if kind == "transit":
        tc, half = 0.5 * (t.min() + t.max()), 0.225 * span
        tau = 0.15 * 2 * half
        edge = np.clip((half - np.abs(t - tc)) / tau, 0.0, 1.0)
        bottom = 1.0 - 0.15 * np.clip((t - tc) / half, -1, 1) ** 2
        return 1.0 - amplitude * edge * bottom / 0.85 * np.where(edge >= 1, 0.85 / 0.85, 1.0) * 0.85
    raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {kind!r})")


def load_truth(path) -> dict:
    """The truth of a simulated night: ``path`` is its folder or its ``truth.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / "truth.json"
    with open(p) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- entry points
def simulate_night(destination, *, seed: int = 0, n_images: int = 100, size: int = 600,
                   n_stars: int | None = None, signal: str = "sine", shift: float = 5.0,
                   calibration: bool = True, dtype: str = "uint16", n_bias: int = 5,
                   n_darks: int = 5, n_flats: int = 5, exptime: float = 60.0,
                   overwrite: bool = False, show_progress: bool = False) -> dict:
    """Write a synthetic night into ``destination`` and return its truth (also in truth.json).

    Lights start at ``NIGHT_START`` (UTC) every ``exptime + 10`` s. ``shift`` is the total
    pointing drift in px over the night (plus ~0.3 px jitter); ``n_stars`` defaults to 40 for
    600x600, scaled with the area. ``overwrite`` allows a non-empty destination (files listed by
    a previous truth.json there are removed first). See the module docstring for conventions.
    """
    _check_int("n_images", n_images, 1)
    _check_positive("exptime", exptime)
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {signal!r})")
    steps = np.arange(n_images) * (exptime + READOUT_S) + exptime / 2.0
    time = _iso_to_jd(NIGHT_START) + steps / 86400.0
    dflux = target_signal(signal, time)
    return _simulate(time, dflux, destination, seed=seed, size=size, n_stars=n_stars, signal=signal,
                     shift=shift, calibration=calibration, dtype=dtype, n_bias=n_bias,
                     n_darks=n_darks, n_flats=n_flats, exptime=exptime, overwrite=overwrite,
                     show_progress=show_progress)


def simulate_observation(time, dflux, destination, **options) -> dict:
    """Like :func:`simulate_night` for a given light curve: ``time`` (JD UTC, mid-exposure, one
    per light frame) and ``dflux`` (relative flux of the target at each time).

    Example: ``simulate_observation(2460385.5 + np.arange(50) / 1000, np.ones(50), "night")``.
    Options are those of :func:`simulate_night` except ``n_images`` and ``signal``.
    """
    for bad in ("n_images", "signal"):
        if bad in options:
            raise TypeError(f"simulate_observation() takes no {bad!r}: it follows time and dflux")
    t = np.asarray(time, dtype=float).ravel()
    f = np.asarray(dflux, dtype=float).ravel()
    if t.size < 1 or t.shape != f.shape:
        raise ValueError(f"time and dflux must be non-empty 1-D arrays of one length "
                         f"(got {t.size} and {f.size})")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(f))):
        raise ValueError("time and dflux must be finite")
    if t.min() < 2.4e6 or t.max() > 2.6e6:
        raise ValueError("time must be Julian dates (e.g. 2460385.5 + ...), got values "
                         f"from {t.min():g} to {t.max():g}")
    if np.any(f <= 0) or f.max() / f.min() > 10:
        raise ValueError("dflux must be positive relative fluxes within a factor 10 of each other")
    exptime = float(options.get("exptime", 60.0))
    _check_positive("exptime", exptime)
    if t.size > 1 and np.min(np.diff(t)) * 86400.0 < exptime:
        raise ValueError(f"time steps ({np.min(np.diff(t)) * 86400:.1f} s) must be increasing and "
                         f"at least exptime ({exptime:g} s) apart; pass a shorter exptime=")
    return _simulate(t, f, destination, signal="custom", **options)


# ----------------------------------------------------------------------------- design
def _simulate(time, dflux, destination, *, seed=0, size=600, n_stars=None, signal="custom",
              shift=5.0, calibration=True, dtype="uint16", n_bias=5, n_darks=5, n_flats=5,
              exptime=60.0, overwrite=False, show_progress=False) -> dict:
    """Design the scene, write every frame and truth.json; return the truth."""
    from .console import progress

    _validate(size=size, n_stars=n_stars, shift=shift, dtype=dtype, n_bias=n_bias,
              n_darks=n_darks, n_flats=n_flats, exptime=exptime, seed=seed)
    dest = _prepare_destination(destination, overwrite)
    n_stars = _default_n_stars(size) if n_stars is None else int(n_stars)
    seeds = np.random.SeedSequence(int(seed)).spawn(3)
    t0 = _time.perf_counter()
    scene = _design(np.random.default_rng(seeds[0]), time, dflux, size=size, n_stars=n_stars,
                    shift=float(shift), calibration=bool(calibration), exptime=float(exptime))
    counts = {"bias": n_bias, "dark": n_darks, "flat": n_flats} if calibration else {}
    total = len(time) + sum(counts.values())
    files = {"light": [], "bias": [], "dark": [], "flat": []}
    with progress("Simulating night", total, show=show_progress) as bar:
        cal_rng = np.random.default_rng(seeds[1])
        for kind, n in counts.items():
            for k in range(n):
                files[kind].append(_write_calibration(scene, kind, k, dest, dtype, cal_rng))
                bar.advance()
        light_rng = np.random.default_rng(seeds[2])
        for i in range(len(time)):
            files["light"].append(_write_light(scene, i, dest, dtype, light_rng))
            bar.advance()
    truth = _truth(scene, files, seed=int(seed), signal=signal, dtype=dtype)
    truth["parameters"]["elapsed_s"] = None  # kept out: truth must be byte-identical per seed
    _atomic_write_text(dest / "truth.json", json.dumps(truth, indent=1))
    truth["elapsed_s"] = _time.perf_counter() - t0  # returned only, not written
    return truth


def _design(rng, time, dflux, *, size, n_stars, shift, calibration, exptime) -> dict:
    """Every random choice of the night, made once: per-frame conditions, stars, detector."""
    n = len(time)
    s = {"time": np.asarray(time, float), "dflux": np.asarray(dflux, float), "size": size,
         "exptime": exptime, "calibration": calibration, **_CAMERA}
    s["beta"] = float(rng.uniform(2.5, 4.0))
    span = max(float(time[-1] - time[0]), 0.02)
    s["fwhm"] = np.clip(rng.uniform(3.5, 4.2) + 0.5 * _smooth(rng, time, span), 3.0, 5.0)
    s["transparency"] = 1.0 - rng.uniform(0.02, 0.05) * (0.5 + 0.5 * _smooth(rng, time, span))
    s["sky_center"] = rng.uniform(150, 300) * (1.0 + 0.2 * _smooth(rng, time, span))
    g, phi = rng.uniform(0.1, 0.25) / size, rng.uniform(0, 2 * np.pi)
    s["sky_gradient"] = (g * math.cos(phi), g * math.sin(phi))
    s["ra"], s["dec"], s["airmass"] = _pointing(time)
    s["extinction"] = 10 ** (-0.4 * s["extinction_coefficient"] * (s["airmass"] - 1.0))
    s["dx"], s["dy"] = _drift(rng, n, shift)
    s["bias_level"] = float(rng.uniform(300, 1000)) if calibration else 0.0
    s["dark_current"] = float(rng.uniform(0.1, 0.5)) if calibration else 0.0
    s["flat"] = _flat_params(rng, size, calibration)
    _place_stars(rng, s)
    _detector_maps(rng, s)
    return s


def _smooth(rng, time, span, n_modes=3):
    """A smooth random curve in [-1, 1] made of a few sinusoids with periods ~0.3-2 nights."""
    t = np.asarray(time) - time[0]
    out = np.zeros_like(t)
    amps = rng.uniform(0.3, 1.0, n_modes)
    for a in amps:
        out += a * np.sin(2 * np.pi * t / (rng.uniform(0.3, 2.0) * span) + rng.uniform(0, 2 * np.pi))
    return out / amps.sum()


def _drift(rng, n, shift):
    """Pointing offsets (px) relative to frame 0: a linear drift of ``shift`` plus jitter."""
    ang = rng.uniform(0, 2 * np.pi)
    frac = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    jitter = rng.normal(0, 0.3, (2, n))
    jitter[:, 0] = 0.0
    return shift * frac * math.cos(ang) + jitter[0], shift * frac * math.sin(ang) + jitter[1]


def _pointing(time):
    """RA, Dec (deg) of a field rising toward the meridian over the night, and its airmass."""
    lat = SITE["latitude"]
    lst0 = _lst_deg(time[0])
    ra = (lst0 + 15.0 * 2.5 + 15.0 * 24 * max(0.0, float(time[-1] - time[0])) / 2) % 360.0
    dec = lat + 15.0
    return ra, dec, _airmass(time, ra, dec)


def _lst_deg(jd):
    """Local sidereal time (deg) at the site from the IAU 1982 GMST approximation."""
    gmst = 280.46061837 + 360.98564736629 * (np.asarray(jd) - 2451545.0)
    return (gmst + SITE["longitude"]) % 360.0


def _airmass(jd, ra, dec):
    """Kasten & Young (1989) airmass of (ra, dec) at the site for each JD."""
    lat, d = np.radians(SITE["latitude"]), np.radians(dec)
    ha = np.radians(_lst_deg(jd) - ra)
    alt = np.degrees(np.arcsin(np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(ha)))
    alt = np.maximum(alt, 5.0)
    return 1.0 / (np.sin(np.radians(alt)) + 0.50572 * (alt + 6.07995) ** -1.6364)


def _flat_params(rng, size, calibration):
    """Vignetting, one dust donut and pixel-response scatter of the optics + detector."""
    if not calibration:
        return {"vignetting": 0.0, "center": [size / 2, size / 2], "radius": size / 2,
                "prnu": 0.0, "donuts": [], "level_adu": 0.0, "exptime": 0.0}
    c = (size - 1) / 2.0 + rng.normal(0, size / 30, 2)
    donut = [float(rng.uniform(0.15, 0.85) * size), float(rng.uniform(0.15, 0.85) * size),
             float(max(4.0, size / 50)), float(rng.uniform(0.02, 0.04))]
    return {"vignetting": float(rng.uniform(0.08, 0.15)), "center": [float(c[0]), float(c[1])],
            "radius": float(size / math.sqrt(2)), "prnu": float(rng.uniform(0.01, 0.02)),
            "donuts": [donut], "level_adu": float(rng.uniform(20000, 30000)), "exptime": 2.0}


def _illumination(x, y, flat):
    """Smooth part of the flat response (vignetting x dust donuts) at pixel coordinates."""
    cx, cy = flat["center"]
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / flat["radius"] ** 2
    out = 1.0 - flat["vignetting"] * r2
    for dx0, dy0, rad, depth in flat["donuts"]:
        rr = np.hypot(x - dx0, y - dy0)
        out = out * (1.0 - depth * np.exp(-0.5 * ((rr - rad) / (0.3 * rad)) ** 2))
    return out


def _sky_plane(x, y, s):
    """Relative sky level at (x, y): 1 at the frame centre, linear gradient."""
    c = (s["size"] - 1) / 2.0
    return 1.0 + s["sky_gradient"][0] * (x - c) + s["sky_gradient"][1] * (y - c)


# ----------------------------------------------------------------------------- stars
def _default_n_stars(size):
    """40 stars for 600x600, scaled with the area, at least 10."""
    return max(10, int(round(40 * (size / 600.0) ** 2)))


def _place_stars(rng, s):
    """Positions, fluxes and variability: target near centre, saturated stars away from it."""
    size, fmax = s["size"], float(s["fwhm"].max())
    margin = math.ceil(3 * fmax) + 3
    lo = np.array([margin - min(s["dx"].min(), 0), margin - min(s["dy"].min(), 0)])
    hi = np.array([size - 1 - margin - max(s["dx"].max(), 0), size - 1 - margin - max(s["dy"].max(), 0)])
    n = s_n = int(s.pop("n_stars", 0)) or 0  # noqa: F841 (set below)
    n = s["n_request"] = s.get("n_request") or 0
    del n, s_n
    center = np.array([(size - 1) / 2.0 - s["dx"].mean(), (size - 1) / 2.0 - s["dy"].mean()])
    target = np.clip(center + rng.uniform(-size / 40, size / 40, 2), lo, hi)
    s["_place"] = (lo, hi, target, fmax)


def _place(rng, n, lo, hi, taken, dmin, avoid=None, avoid_d=0.0):
    """``n`` random positions in [lo, hi] at least ``dmin`` from each other and from ``taken``."""
    out = []
    for _ in range(n):
        d = dmin
        while True:
            for _try in range(300):
                p = rng.uniform(lo, hi)
                pts = np.array(taken + out) if (taken or out) else np.empty((0, 2))
                if (len(pts) == 0 or np.min(np.hypot(*(pts - p).T)) >= d) and \
                        (avoid is None or np.hypot(*(p - avoid)) >= avoid_d):
                    break
            else:
                d *= 0.8
                avoid_d *= 0.8
                continue
            out.append(p)
            break
    return out
