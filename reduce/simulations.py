"""Synthetic nights with known truth: raw light, bias, dark and flat frames plus ``truth.json``.

The scene is physical enough to exercise a whole reduction: a target near the centre (the
brightest unsaturated star), comparison stars of which a few vary, a common transparency and
airmass extinction, pointing drift, a Moffat PSF whose seeing changes, a sky gradient, photon,
dark and read noise, and a camera signature (bias structure, dark current with hot pixels,
vignetting, a dust donut, pixel response) that the calibration frames let a pipeline remove.

Conventions (repeated in ``truth.json['units']``): pixel coordinates are 0-based with pixel
centres on integers (numpy / photutils / sep); ``time`` is JD UTC at mid-exposure while the
headers' ``DATE-OBS`` and ``JD`` mark the exposure *start*; star fluxes are total electrons per
exposure at airmass 1 in clear sky, before the flat response; ``sky`` is ADU per pixel at the
target without the flat response. Not simulated: scintillation, cosmic rays, colour-dependent
extinction. Photon noise is drawn exactly (Poisson) below 100 e- and with its Gaussian limit
(same mean and variance) above, which is 3x faster and indistinguishable at those levels.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .io.atomic import atomic_write, atomic_write_text

__all__ = ["simulate_night", "simulate_observation", "noise_floor", "load_truth", "target_signal",
           "enclosed_fraction", "moffat_alpha", "illumination", "sky_plane", "jd_to_iso", "SITE",
           "SIGNALS", "DTYPES"]

SIGNALS = ("sine", "transit", "flat")
DTYPES = ("uint16", "float32")
SITE = {"latitude": -24.6272, "longitude": -70.4045, "elevation": 2635.0}  # east-positive degrees
NIGHT_START = "2024-03-16T01:00:00.000"  # UTC start of the first light of simulate_night
READOUT_S = 10.0        # dead time between exposures (s)
MIN_SIZE = 64
_J2000 = datetime(2000, 1, 1, 12, 0, 0)
_CAMERA = {"gain": 1.5, "read_noise": 9.0, "saturation": 65535.0, "extinction_coefficient": 0.15,
           "filter": "V", "telescope": "SIM-60", "instrument": "SimCam", "object": "SIM-1"}


# ----------------------------------------------------------------------------- small public helpers
def moffat_alpha(fwhm, beta):
    """Moffat core width alpha (px) of a profile with this ``fwhm`` (px) and power ``beta``."""
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def enclosed_fraction(radius, fwhm, beta):
    """Fraction of a Moffat star's total flux inside a circle of ``radius`` px (analytic)."""
    a = moffat_alpha(fwhm, beta)
    return 1.0 - (1.0 + (np.asarray(radius) / a) ** 2) ** (1.0 - beta)


def target_signal(kind: str, time, *, amplitude: float = 0.01) -> np.ndarray:
    """Relative flux of the target: ``'sine'`` (1.5 cycles over the night), ``'transit'``
    (centred, 45 % of the night long, curved limb-darkened-like bottom ``amplitude`` deep) or
    ``'flat'`` (ones)."""
    t = np.asarray(time, dtype=float)
    span = max(float(t.max() - t.min()), 1e-3)
    if kind == "flat":
        return np.ones_like(t)
    if kind == "sine":
        return 1.0 + amplitude * np.sin(2 * np.pi * (t - t.min()) / (span / 1.5))
    if kind == "transit":
        tc, half = 0.5 * (t.min() + t.max()), 0.225 * span
        edge = np.clip((half - np.abs(t - tc)) / (0.3 * half), 0.0, 1.0)
        return 1.0 - amplitude * edge * (1.0 - 0.15 * np.clip((t - tc) / half, -1, 1) ** 2)
    raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {kind!r})")


def load_truth(path) -> dict:
    """The truth of a simulated night; ``path`` is its folder or its ``truth.json``."""
    p = Path(path)
    with open(p / "truth.json" if p.is_dir() else p) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- entry points
def simulate_night(destination, *, seed: int = 0, n_images: int = 100, size: int = 600,
                   n_stars: int | None = None, signal: str = "sine", shift: float = 5.0,
                   calibration: bool = True, dtype: str = "uint16", n_bias: int = 5,
                   n_darks: int = 5, n_flats: int = 15, exptime: float = 60.0,
                   dark_exptimes=None, overwrite: bool = False,
                   show_progress: bool = False) -> dict:
    """Write a synthetic night into ``destination``; return its truth (also in truth.json).

    Lights start at ``NIGHT_START`` (UTC), one every ``exptime + 10`` s; ``signal`` is the
    target's injected relative flux (:func:`target_signal`). ``shift``: total pointing drift in
    px over the night, plus ~0.3 px jitter. ``n_stars`` defaults to 40 for 600x600, scaled with
    the area. Darks are taken at each of ``dark_exptimes`` (default: the lights' exposure),
    ``n_darks`` each. ``calibration=False`` writes no calibration frames and lights with no
    camera signature (no bias, dark or flat response). A non-empty ``destination`` is an error
    unless ``overwrite`` (then files listed by the previous truth.json there are removed).
    """
    _check_int("n_images", n_images, 1)
    _check_positive("exptime", exptime)
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {signal!r})")
    steps = np.arange(n_images) * (exptime + READOUT_S) + exptime / 2.0
    time = _iso_to_jd(NIGHT_START) + steps / 86400.0
    return _simulate(time, target_signal(signal, time), destination, seed=seed, size=size,
                     n_stars=n_stars, signal=signal, shift=shift, calibration=calibration,
                     dtype=dtype, n_bias=n_bias, n_darks=n_darks, n_flats=n_flats,
                     exptime=exptime, dark_exptimes=dark_exptimes, overwrite=overwrite,
                     show_progress=show_progress)


def simulate_observation(time, dflux, destination, **options) -> dict:
    """Like :func:`simulate_night` for a given light curve of the target.

    ``time``: JD UTC at mid-exposure, one per light frame (increasing, at least ``exptime``
    apart); ``dflux``: the target's relative flux at each time. Other options are those of
    :func:`simulate_night` except ``n_images`` and ``signal``. Example::

        t = 2460385.55 + np.arange(80) * 90 / 86400
        simulate_observation(t, 1 - 0.01 * (abs(t - t.mean()) < 0.02), "night", seed=3)
    """
    for bad in ("n_images", "signal"):
        if bad in options:
            raise TypeError(f"simulate_observation() takes no {bad!r}: time and dflux set it")
    t = np.asarray(time, dtype=float).ravel()
    f = np.asarray(dflux, dtype=float).ravel()
    if t.size < 1 or t.shape != f.shape:
        raise ValueError(f"time and dflux must be non-empty and of one length (got {t.size} "
                         f"and {f.size})")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(f))):
        raise ValueError("time and dflux must be finite")
    if t.min() < 2.4e6 or t.max() > 2.6e6:
        raise ValueError(f"time must be Julian dates (e.g. 2460385.5 + ...); got {t.min():g} "
                         f"to {t.max():g}")
    if np.any(f <= 0) or f.max() / f.min() > 10:
        raise ValueError("dflux must be positive relative fluxes within a factor 10 of each other")
    exptime = options.get("exptime", 60.0)
    _check_positive("exptime", exptime)
    if t.size > 1 and np.min(np.diff(t)) * 86400.0 < exptime:
        raise ValueError(f"time steps must increase by at least exptime ({exptime:g} s); the "
                         f"smallest is {np.min(np.diff(t)) * 86400:.1f} s (pass a shorter exptime=)")
    return _simulate(t, f, destination, signal="custom", **options)


def _simulate(time, dflux, destination, *, seed=0, size=600, n_stars=None, signal="custom",
              shift=5.0, calibration=True, dtype="uint16", n_bias=5, n_darks=5, n_flats=15,
              exptime=60.0, dark_exptimes=None, overwrite=False, show_progress=False) -> dict:
    """Design the scene, write calibration frames, lights and truth.json; return the truth."""
    from .console import progress

    n_stars = _default_n_stars(size) if n_stars is None else n_stars
    dark_exptimes = (exptime,) if dark_exptimes is None else tuple(dark_exptimes)
    _validate(seed=seed, size=size, n_stars=n_stars, shift=shift, dtype=dtype, n_bias=n_bias,
              n_darks=n_darks, n_flats=n_flats, dark_exptimes=dark_exptimes)
    dest = _prepare_destination(Path(destination), overwrite)
    seeds = np.random.SeedSequence(int(seed)).spawn(3)
    s = _design(np.random.default_rng(seeds[0]), time, dflux, size=int(size),
                n_stars=int(n_stars), shift=float(shift), calibration=bool(calibration),
                exptime=float(exptime))
    plan = _calibration_plan(s, n_bias, n_darks, n_flats, dark_exptimes) if calibration else []
    files = {"light": [], "bias": [], "dark": [], "flat": []}
    with progress("Simulating night", len(plan) + len(time), show=show_progress) as bar:
        cal_rng, light_rng = np.random.default_rng(seeds[1]), np.random.default_rng(seeds[2])
        for item in plan:
            files[item["kind"]].append(_write_calibration(s, item, dest, dtype, cal_rng))
            bar.advance()
        for i in range(len(time)):
            files["light"].append(_write_light(s, i, dest, dtype, light_rng))
            bar.advance()
    truth = _truth(s, files, seed=int(seed), signal=signal, dtype=dtype)
    atomic_write_text(dest / "truth.json", json.dumps(truth, indent=1))
    return truth


# ----------------------------------------------------------------------------- scene design
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


def illumination(x, y, flat):
    """Smooth part of the flat response at pixel coordinates: 1 - v (r/R)^2 times dust donuts."""
    cx, cy = flat["center"]
    out = 1.0 - flat["vignetting"] * ((x - cx) ** 2 + (y - cy) ** 2) / flat["radius"] ** 2
    for x0, y0, rad, depth in flat["donuts"]:
        rr = np.hypot(x - x0, y - y0)
        out = out * (1.0 - depth * np.exp(-0.5 * ((rr - rad) / (0.3 * rad)) ** 2))
    return out


def sky_plane(x, y, size, gradient):
    """Relative sky level at (x, y): 1 at the frame centre with a linear gradient."""
    c = (size - 1) / 2.0
    return 1.0 + gradient[0] * (x - c) + gradient[1] * (y - c)


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


# ----------------------------------------------------------------------------- stars
def _default_n_stars(size):
    """40 stars for 600x600, scaled with the area, at least 10."""
    return max(10, int(round(40 * (size / 600.0) ** 2)))


def _stars(rng, s, n_stars) -> dict:
    """Positions (frame 0), fluxes (e-) and variability; sorted by decreasing flux."""
    size, fmax = s["size"], float(s["fwhm"].max())
    margin = math.ceil(3 * fmax) + 3
    lo = np.array([margin - min(s["dx"].min(), 0.0), margin - min(s["dy"].min(), 0.0)])
    hi = np.array([size - 1 - margin - max(s["dx"].max(), 0.0),
                   size - 1 - margin - max(s["dy"].max(), 0.0)])
    centre = (size - 1) / 2.0 - np.array([s["dx"].mean(), s["dy"].mean()])
    target = np.clip(centre + rng.uniform(-size / 40, size / 40, 2), lo, hi)
    n_sat = 0 if n_stars < 8 else 1 if n_stars < 25 else 2
    n_comp = n_stars - 1 - n_sat
    sat = _place(rng, n_sat, lo, hi, [target], 5 * fmax, [(target, 0.3 * size)])
    keep_off = [(target, 8 * fmax)] + [(q, 12 * fmax) for q in sat]  # clean target and wings
    comp = _place(rng, n_comp, lo, hi, [target] + sat, 5 * fmax, keep_off)
    f_t = _target_flux(s)
    n_bright = min(3, n_comp)
    u = np.concatenate([rng.uniform(0.45, 0.85, n_bright),
                        np.exp(rng.uniform(np.log(0.03), np.log(0.45), n_comp - n_bright))])
    flux = np.concatenate([[f_t], f_t * u, f_t * rng.uniform(4, 10, n_sat)])
    xy = np.array([target] + comp + sat).reshape(-1, 2)
    amp, period, phase = _variables(rng, n_comp, n_bright, 1 + n_sat + n_comp)
    order = np.argsort(-flux, kind="stable")
    span = max(float(s["time"][-1] - s["time"][0]), 0.02)
    signal = np.ones((len(flux), len(s["time"])))
    t = s["time"] - s["time"][0]
    for k in np.flatnonzero(amp):
        signal[k] = 1.0 + amp[k] * np.sin(2 * np.pi * t / (period[k] * span) + phase[k])
    signal[0] = s["dflux"]
    return {"x": xy[order, 0], "y": xy[order, 1], "flux": flux[order], "amplitude": amp[order],
            "period": period[order] * span, "phase": phase[order], "signal": signal[order],
            "target": int(np.flatnonzero(order == 0)[0]), "peak": np.zeros(len(flux))}


def _variables(rng, n_comp, n_bright, n_total):
    """Amplitude (1-3 %), period (nights) and phase of the variable comparison stars.

    Star 0 is the target; 1..n_comp comparisons (1..n_bright the bright ones). One variable is
    among the bright comparisons so that a naive ensemble is visibly hurt by it.
    """
    amp, period, phase = np.zeros(n_total), np.zeros(n_total), np.zeros(n_total)
    n_var = 0 if n_comp < 3 else max(1, int(round(0.12 * n_comp)))
    if n_var:
        first = 1 + int(rng.integers(0, n_bright))
        others = [k for k in range(1, 1 + n_comp) if k != first]
        chosen = [first] + list(rng.choice(others, n_var - 1, replace=False))
        for k in chosen:
            amp[k], period[k] = rng.uniform(0.01, 0.03), rng.uniform(0.3, 1.5)
            phase[k] = rng.uniform(0, 2 * np.pi)
    return amp, period, phase


def _target_flux(s):
    """Total e- of the target so that its noiseless peak stays near 55 % of saturation."""
    norm = (s["beta"] - 1) / (np.pi * moffat_alpha(float(s["fwhm"].min()), s["beta"]) ** 2)
    gain = s["gain"]
    background = (s["bias_level"] + 15.0 + 1.3 * float(s["sky_center"].max())
                  + s["dark_current"] * s["exptime"] / gain)
    top = float(np.max(s["dflux"] * s["transparency"] * s["extinction"]))
    resp_max = 1.0 + 4 * s["flat"]["prnu"]
    return (0.55 * s["saturation"] - background) * gain / (norm * top * resp_max)


def _place(rng, n, lo, hi, taken, dmin, keep_off):
    """``n`` positions in [lo, hi], ``dmin`` apart from each other and from ``taken``, and at
    least ``d`` from each ``(point, d)`` of ``keep_off``; all distances shrink by 20 % steps when
    the field is too crowded to honour them."""
    out: list = []
    points = np.array([q for q, _ in keep_off]).reshape(-1, 2)
    dists = np.array([d for _, d in keep_off])
    for _ in range(n):
        scale = 1.0
        while True:
            pts = np.array(list(taken) + out)
            cand = rng.uniform(lo, hi, (200, 2))
            ok = np.min(np.hypot(*(cand[:, None, :] - pts[None]).transpose(2, 0, 1)), axis=1) >= dmin * scale
            if len(points):
                sep = np.hypot(*(cand[:, None, :] - points[None]).transpose(2, 0, 1))
                ok &= np.all(sep >= dists * scale, axis=1)
            if ok.any():
                out.append(cand[np.argmax(ok)])
                break
            scale *= 0.8
    return out


# ----------------------------------------------------------------------------- rendering, writing
_IMAGETYP = {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field", "light": "Light Frame"}
UNITS = {
    "pixels": "0-based coordinates, pixel centres on integers (numpy/photutils/sep convention)",
    "time": "JD UTC at mid-exposure; headers DATE-OBS and JD give the exposure start",
    "stars.flux": "total electrons per exposure at airmass 1, clear sky, before the flat response",
    "stars.x/y": "position on the first light frame; on frame i add frames.dx[i], frames.dy[i]",
    "stars.peak_adu": "highest noiseless pixel value (ADU, bias included) over the night",
    "stars.period": "days",
    "frames.sky": "sky ADU per pixel at the target, without the flat response (a frame divided "
                  "by a median-normalised master flat shows sky x parameters.flat.median_response)",
    "frames.transparency": "common weather transmission (1 = clear)",
    "frames.extinction": "10**(-0.4 k (airmass - 1)), common to all stars",
    "frames.fwhm": "Moffat FWHM in pixels (beta in parameters.psf_beta)",
    "parameters.gain": "e-/ADU", "parameters.read_noise": "e-", "parameters.bias_level": "ADU",
    "parameters.dark_current": "e-/s/px (hot pixels: [x, y, e-/s])",
    "parameters.saturation": "ADU; frames are clipped there",
}


def _photons(rng, lam):
    """Photon and dark counts: exact Poisson below 100 e-, its Gaussian limit above."""
    lam = np.asarray(lam, dtype=np.float32)
    out = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < 100
    if low.any():
        out[low] = rng.poisson(lam[low])
    return out


def _add_star(model, resp, x, y, flux, alpha, beta):
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
    r2 = (np.arange(y0, y1) - y)[:, None] ** 2 + (np.arange(x0, x1) - x)[None, :] ** 2
    stamp = peak * (1.0 + r2 / (alpha * alpha)) ** (-beta)
    model[y0:y1, x0:x1] += (stamp * resp[y0:y1, x0:x1]).astype(np.float32)


def _light_model(s, i):
    """Noiseless electrons of light frame ``i`` (sky, dark, stars); records star peaks."""
    st = s["stars"]
    model = s["sky_base"] * np.float32(s["sky_center"][i])
    model += s["dark_rate"] * np.float32(s["exptime"])
    alpha = float(moffat_alpha(s["fwhm"][i], s["beta"]))
    xs, ys = st["x"] + s["dx"][i], st["y"] + s["dy"][i]
    fluxes = st["flux"] * st["signal"][:, i] * s["transparency"][i] * s["extinction"][i]
    for x, y, f in zip(xs, ys, fluxes):
        _add_star(model, s["resp"], x, y, f, alpha, s["beta"])
    n = s["size"]
    for k, (x, y) in enumerate(zip(xs, ys)):
        ix, iy = int(round(x)), int(round(y))
        sl = (slice(max(iy - 1, 0), min(iy + 2, n)), slice(max(ix - 1, 0), min(ix + 2, n)))
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
    start = s["time"][i] - s["exptime"] / 2 / 86400.0
    header = _header(s, "light", start, s["exptime"], airmass=s["airmass"][i])
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
        lam = lam + s["resp"] * np.float32(s["flat"]["level_adu"] * s["gain"])
    electrons = _photons(rng, lam) if kind != "bias" else np.zeros_like(lam)
    adu = _to_adu(s, electrons, rng)
    tag = {"bias": "bias", "dark": f"dark_{texp:g}s", "flat": f"flat_{s['filter']}"}[kind]
    name = f"calibration/{tag}_{item['index'] + 1:03d}.fits"
    _write_fits(dest / name, adu, _header(s, kind, item["start"], texp), dtype, s["saturation"])
    return name


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
    h["BUNIT"] = ("adu", "pixel unit")
    h["ORIGIN"] = ("reduce simulate", "synthetic frame with known truth")
    return h


def _write_fits(path, adu, header, dtype, saturation):
    """Clip to the saturation level, cast like the camera would, write atomically."""
    from astropy.io import fits

    np.clip(adu, 0.0, saturation, out=adu)
    data = np.rint(adu).astype(np.uint16) if dtype == "uint16" else adu.astype(np.float32)
    with atomic_write(path, "wb") as f:
        fits.PrimaryHDU(data=data, header=header).writeto(f)


def _truth(s, files, *, seed, signal, dtype) -> dict:
    """The JSON-ready truth: parameters, per-frame and per-star arrays, file names."""
    st, t = s["stars"], s["stars"]["target"]
    xt, yt = st["x"][t] + s["dx"], st["y"][t] + s["dy"]
    params = {
        "seed": seed, "signal": signal, "dtype": dtype, "size": s["size"], "n_stars": len(st["x"]),
        "n_images": len(s["time"]), "exptime": s["exptime"], "gain": s["gain"],
        "read_noise": s["read_noise"], "bias_level": s["bias_level"],
        "dark_current": s["dark_current"], "hot_pixels": s["hot_pixels"],
        "saturation": s["saturation"], "psf_beta": s["beta"], "flat": s["flat"],
        "sky_gradient": s["sky_gradient"], "extinction_coefficient": s["extinction_coefficient"],
        "calibration": s["calibration"], "filter": s["filter"], "telescope": s["telescope"],
        "object": s["object"], "ra": s["ra"], "dec": s["dec"], "site": dict(SITE),
        "readout_s": READOUT_S}
    frames = {
        "time": s["time"], "dflux": s["dflux"], "transparency": s["transparency"],
        "extinction": s["extinction"], "airmass": s["airmass"], "fwhm": s["fwhm"],
        "sky": s["sky_center"] * sky_plane(xt, yt, s["size"], s["sky_gradient"]),
        "dx": s["dx"], "dy": s["dy"], "file": files["light"]}
    stars = {
        "x": st["x"], "y": st["y"], "flux": st["flux"], "peak_adu": st["peak"],
        "saturated": st["peak"] >= s["saturation"], "variable": st["amplitude"] > 0,
        "amplitude": st["amplitude"], "period": st["period"], "phase": st["phase"],
        "signal": st["signal"]}
    return {"version": 1, "generator": "reduce.simulations", "units": UNITS, "parameters": params,
            "target": t, "time": s["time"].tolist(), "dflux": s["dflux"].tolist(),
            "frames": {k: np.asarray(v).tolist() for k, v in frames.items()},
            "stars": {k: np.asarray(v).tolist() for k, v in stars.items()},
            "calibration": {k: files[k] for k in ("bias", "dark", "flat")}}


# ----------------------------------------------------------------------------- noise floor
def noise_floor(truth, radius_px: float, *, comparisons=None, annulus_px: float | None = None) -> float:
    """Theoretical RMS of the target's normalised differential light curve (aperture radius px).

    Per frame, the target's relative variance is (photon noise of its aperture flux, sky and dark
    in the aperture, read noise x npix, all in e-) / flux^2 (flat response at the star included);
    the ensemble's is 1 / sum(1 / sigma_c^2) over ``comparisons`` (default: every comparison
    that is neither variable nor saturated), i.e. the inverse-variance weighted best ensemble.
    floor = sqrt(mean over frames of sigma_T^2 + sigma_ens^2). With ``annulus_px`` (number of
    background pixels) the sky-estimate noise npix^2 * sigma_px^2 / annulus_px is added too.
    Master-frame noise, scintillation and centroid errors are not included. Issue 4 requires a
    pipeline's residual RMS to be within 1.10x this floor. ``truth``: dict or truth.json path.
    """
    if not isinstance(truth, dict):
        truth = load_truth(truth)
    p, fr, st = truth["parameters"], truth["frames"], truth["stars"]
    if not radius_px > 0:
        raise ValueError(f"radius_px must be > 0 (got {radius_px})")
    x = np.asarray(st["x"])[:, None] + np.asarray(fr["dx"])[None]
    y = np.asarray(st["y"])[:, None] + np.asarray(fr["dy"])[None]
    t = int(truth["target"])
    frac = enclosed_fraction(radius_px, np.asarray(fr["fwhm"]), p["psf_beta"])
    atm = np.asarray(fr["transparency"]) * np.asarray(fr["extinction"])
    flux = np.asarray(st["flux"])[:, None] * np.asarray(st["signal"]) * atm * frac
    plane = sky_plane(x, y, p["size"], p["sky_gradient"])
    sky_e = np.asarray(fr["sky"]) * plane / plane[t] * p["gain"]
    resp = illumination(x, y, p["flat"])
    npix = np.pi * radius_px ** 2
    per_px = resp * sky_e + p["dark_current"] * p["exptime"] + p["read_noise"] ** 2
    var = resp * flux + npix * per_px
    if annulus_px:
        var = var + npix ** 2 * per_px / float(annulus_px)
    rel = var / (resp * flux) ** 2
    if comparisons is None:
        comparisons = [k for k in range(len(st["x"])) if k != t and not st["variable"][k]
                       and not st["saturated"][k]]
    comparisons = [int(c) for c in comparisons]
    if not comparisons or t in comparisons:
        raise ValueError("comparisons must name at least one star other than the target")
    ens = 1.0 / np.sum(1.0 / rel[comparisons], axis=0)
    return float(np.sqrt(np.mean(rel[t] + ens)))


# ----------------------------------------------------------------------------- validation, files
def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number (got {value!r})")


def _validate(*, seed, size, n_stars, shift, dtype, n_bias, n_darks, n_flats, dark_exptimes):
    """Clear errors for options that cannot make a sensible night."""
    _check_int("seed", seed, 0)
    _check_int("size", size, MIN_SIZE)
    if size > 8192:
        raise ValueError(f"size must be at most 8192 px (got {size})")
    _check_int("n_stars", n_stars, 4)
    if n_stars > size * size // 400:
        raise ValueError(f"n_stars={n_stars} is too many for {size}x{size} px (at most "
                         f"{size * size // 400}: one star per 20x20 px)")
    if isinstance(shift, bool) or not isinstance(shift, (int, float, np.number)) or \
            not math.isfinite(shift) or shift < 0:
        raise ValueError(f"shift must be a number of pixels >= 0 (got {shift!r})")
    if size - 2 * 18 - shift < size / 4:
        raise ValueError(f"shift={shift:g} px is too large for {size}x{size} px frames (at most "
                         f"{0.75 * size - 36:g} px keeps the stars in the frame)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    for name, v in (("n_bias", n_bias), ("n_darks", n_darks), ("n_flats", n_flats)):
        _check_int(name, v, 0)
    for v in dark_exptimes:
        _check_positive("dark exposure time", v)


def _prepare_destination(dest: Path, overwrite: bool) -> Path:
    """Make the folder; a non-empty one needs ``overwrite`` (previous simulation files go)."""
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dest} is not empty; choose a new folder or overwrite it")
        _remove_previous(dest)
    for sub in ("light", "calibration"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    return dest


def _remove_previous(dest: Path) -> None:
    """Delete the files a previous simulation listed in DEST/truth.json (and nothing else)."""
    try:
        old = load_truth(dest)
        names = list(old["frames"]["file"]) + [f for v in old["calibration"].values() for f in v]
    except (OSError, ValueError, KeyError, TypeError):
        return
    root = dest.resolve()
    for name in names + ["truth.json"]:
        path = (dest / str(name)).resolve()
        if root in path.parents and path.is_file():
            path.unlink()


def _iso_to_jd(iso: str) -> float:
    return 2451545.0 + (datetime.fromisoformat(iso) - _J2000) / timedelta(days=1)


def jd_to_iso(jd: float) -> str:
    """ISO UTC string (millisecond precision) of a JD (UTC scale, no leap-second smearing)."""
    ms = round((jd - 2451545.0) * 86400000.0)
    return (_J2000 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
