"""Scene design: every random choice of a simulated night, made once before any frame is drawn.

Per-frame conditions (seeing, transparency, sky, pointing drift, airmass), the detector's fixed
pixel maps (flat response, bias structure, dark rate with hot pixels) and the stars
(:mod:`.stars`).
"""
from __future__ import annotations

import math

import numpy as np

from .conventions import (_CAMERA, BAYER_COLOUR, BAYER_SENSITIVITY, DOUGHNUT_DIAMETER, SITE,
                          TWILIGHT_SKY_ADU, _iso_to_jd, jd_to_iso)
from .profiles import doughnut_table, frame_dims, illumination, sky_plane
from .stars import _stars

_OFF = {"fwhm": None, "jitter": 0.3, "jump": 0.0, "rotation": 0.0, "twilight": 0.0,
        "dead_columns": 0, "saturated_neighbour": 0.0,  # the hostile conditions' defaults
        "uncalibrated": False, "hot_pixels": 0.0, "cosmic_rays": 0, "psf": "moffat",
        "obstruction": 0.4, "clouds": 0, "bayer": None}  # issue 18's real-camera conditions
_MEAN_SEEING = 3.85  # px: the middle of the default seeing draw, scaled to a requested ``fwhm``


def _design(rng, time, dflux, *, size, n_stars, shift, calibration, exptime, fwhm=None,
            jitter=0.3, jump=0.0, rotation=0.0, twilight=0.0, dead_columns=0,
            saturated_neighbour=0.0, uncalibrated=False, hot_pixels=0.0, cosmic_rays=0,
            psf="moffat", obstruction=0.4, clouds=0, bayer=None, streams=None) -> dict:
    """Every random choice of the night, made once: conditions per frame, stars, detector.

    The hostile conditions (issues 9 and 18) are off by default and then draw nothing, so a
    night without them is the same, byte for byte, as before they existed; those of issue 18
    draw from their own ``streams`` (SeedSequence children by name), never from ``rng``.
    ``calibration`` gives the lights a camera signature; ``uncalibrated`` keeps it but writes
    no calibration frames (``s['calibration']`` False).
    """
    half = exptime / 2 / 86400.0  # start times are whole milliseconds, as DATE-OBS shows them
    mid = np.array([_iso_to_jd(jd_to_iso(t - half)) for t in np.asarray(time, float)]) + half
    s = {"time": mid, "dflux": np.asarray(dflux, float), "size": size, "exptime": exptime,
         "calibration": calibration and not uncalibrated, "signature": calibration, **_CAMERA}
    nx, ny = s["nx"], s["ny"] = frame_dims(size)
    s["dead_columns"], s["saturated_neighbour"] = int(dead_columns), float(saturated_neighbour)
    s["streams"] = streams or {}
    s["hot_fraction"] = float(hot_pixels)
    s["cosmic_rays"] = _cosmic_ray_plan(s["streams"], int(cosmic_rays), len(mid))
    asked = {"fwhm": fwhm, "jitter": jitter, "jump": jump, "rotation": rotation,
             "twilight": twilight, "dead_columns": dead_columns,
             "saturated_neighbour": saturated_neighbour, "uncalibrated": uncalibrated,
             "hot_pixels": hot_pixels, "cosmic_rays": cosmic_rays, "psf": psf,
             "obstruction": obstruction, "clouds": clouds, "bayer": bayer}
    s["conditions"] = {k: v for k, v in asked.items() if v != _OFF[k]}
    span = max(float(s["time"][-1] - s["time"][0]), 0.02)
    s["beta"] = float(rng.uniform(2.5, 4.0))
    seeing = rng.uniform(3.5, 4.2) + 0.5 * _smooth(rng, s["time"], span)
    seeing = seeing + rng.normal(0, 0.04, len(mid))  # slow trend + jitter
    k = 1.0 if fwhm is None else float(fwhm) / _MEAN_SEEING
    s["fwhm"] = np.clip(seeing, 3.0, 5.0) if fwhm is None else np.clip(seeing * k, 3.0 * k, 5.0 * k)
    if psf == "doughnut":
        _doughnut(s, s["fwhm"] / k, fwhm, obstruction)
    s["transparency"] = 1.0 - rng.uniform(0.02, 0.05) * (0.5 + 0.5 * _smooth(rng, s["time"], span))
    s["sky_center"] = rng.uniform(150, 300) * (1.0 + 0.2 * _smooth(rng, s["time"], span))
    g, phi = rng.uniform(0.1, 0.25) / max(nx, ny), rng.uniform(0, 2 * np.pi)
    s["sky_gradient"] = [g * math.cos(phi), g * math.sin(phi)]
    s["ra"], s["dec"], s["airmass"] = _pointing(s["time"])
    s["extinction"] = 10 ** (-0.4 * s["extinction_coefficient"] * (s["airmass"] - 1.0))
    s["dx"], s["dy"] = _drift(rng, len(s["time"]), shift, jitter, jump)
    s["rotation"] = float(rotation) * (np.linspace(0.0, 1.0, len(mid)) if len(mid) > 1 else np.zeros(1))
    s["rotation_center"] = [(nx - 1) / 2.0, (ny - 1) / 2.0]
    s["bias_level"] = float(rng.uniform(300, 1000)) if calibration else 0.0
    s["dark_current"] = float(rng.uniform(0.1, 0.5)) if calibration else 0.0
    s["flat"] = _flat_params(rng, size, calibration)
    if uncalibrated:  # smooth response only: the floor's flux and sky stay honest without a flat
        s["flat"].update(prnu=0.0, donuts=[], level_adu=0.0, exptime=0.0)
    s["stars"] = _stars(rng, s, n_stars)
    if twilight:
        s["sky_center"] = _twilight(s["time"], s["sky_center"], float(twilight))
    if clouds:  # after the stars too: their brightness is the clear night's
        _clouds(np.random.default_rng(s["streams"]["clouds"]), s, int(clouds))
    _detector_maps(rng, s)
    if bayer:
        _bayer(np.random.default_rng(s["streams"]["bayer"]), s, bayer)
    return s


def _doughnut(s, seeing, diameter, obstruction):
    """Option ``psf='doughnut'``: a defocused star of fixed ring diameter (``fwhm``, default
    ``DOUGHNUT_DIAMETER`` px) blurred by seeing that follows the night's draw, mapped from its
    3-5 px range onto 2.5-3.0 px; ``s['fwhm']`` becomes the ring's outer diameter."""
    d = DOUGHNUT_DIAMETER if diameter is None else float(diameter)
    s["seeing"] = 2.5 + 0.25 * (np.asarray(seeing) - 3.0)
    s["fwhm"] = np.full(len(s["seeing"]), d)
    s["psf"] = {"kind": "doughnut", "diameter": d, "obstruction": float(obstruction)}
    surf = doughnut_table(d, obstruction, float(s["seeing"].min()))[1]
    s["psf_peak"] = float(surf.max())  # per unit flux, the sharpest frame's: sets the target flux
    s["peak_box"] = int(math.ceil(d / 2)) + 1  # the ring's brightest pixel is off centre
    # margins and spacing as for a Moffat whose 1.5 FWHM reach the blurred ring's edge: a ring
    # 12 px across fits a 64 px high CCD window, neighbours' rings stay apart
    s["extent_fwhm"] = (d / 2 + 2 * float(s["seeing"].max())) / 2


def _clouds(rng, s, n):
    """Option ``clouds``: ``n`` passing clouds at random times of the night, each a smooth dip
    (cos^2 in time, 10-25 min from edge to edge) of the transparency to 0.3-0.8 of clear while
    the sky rises x1.5-4 (moonlight or city light scattered by the cloud); overlapping clouds
    multiply. Scales ``s['transparency']`` and ``s['sky_center']``; records the clouds."""
    t = np.asarray(s["time"])
    dim, bright, record = np.ones(len(t)), np.ones(len(t)), []
    for _ in range(n):
        tc, minutes = rng.uniform(t[0], t[-1]), rng.uniform(10.0, 25.0)
        depth, sky = rng.uniform(0.3, 0.8), rng.uniform(1.5, 4.0)
        x = (t - tc) * 1440.0 / minutes
        bump = np.where(np.abs(x) < 0.5, np.cos(np.pi * x) ** 2, 0.0)
        dim *= 1.0 - (1.0 - depth) * bump
        bright *= 1.0 + (sky - 1.0) * bump
        record.append({"time": float(tc), "duration_min": float(minutes),
                       "transparency": float(depth), "sky_factor": float(sky)})
    s["transparency"] = s["transparency"] * dim
    s["sky_center"] = s["sky_center"] * bright
    s["clouds"] = {"clouds": record, "cloud_transparency": dim, "cloud_sky": bright}


def _twilight(time, night_sky, minutes):
    """Sky (ADU) falling log-linearly from ``TWILIGHT_SKY_ADU`` at the first light to the
    night's level ``minutes`` later, as a sky does after sunset; unchanged afterwards. Applied
    after the stars are designed, so star brightnesses are those of the dark night."""
    t = (np.asarray(time) - time[0]) * 1440.0
    frac = np.clip(1.0 - t / minutes, 0.0, 1.0)
    return night_sky * (TWILIGHT_SKY_ADU / night_sky) ** frac


def _smooth(rng, time, span, n_modes=3):
    """A smooth random curve within [-1, 1]: a few sinusoids with periods of 0.3-2 nights."""
    t = np.asarray(time) - time[0]
    amps = rng.uniform(0.3, 1.0, n_modes)
    out = sum(a * np.sin(2 * np.pi * t / (rng.uniform(0.3, 2.0) * span) + rng.uniform(0, 2 * np.pi))
              for a in amps)
    return out / amps.sum()


def _drift(rng, n, shift, jitter=0.3, jump=0.0):
    """Pointing offsets (px) relative to frame 0: a linear drift totalling ``shift``, Gaussian
    jitter of RMS ``jitter`` per axis, and a sudden step of ``jump`` px (random direction) from
    the middle frame on, as when a guider re-acquires."""
    ang = rng.uniform(0, 2 * np.pi)
    frac = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    noise = rng.normal(0, jitter, (2, n))
    noise[:, 0] = 0.0
    dx, dy = shift * frac * math.cos(ang) + noise[0], shift * frac * math.sin(ang) + noise[1]
    if jump:
        b, after = rng.uniform(0, 2 * np.pi), np.arange(n) >= n // 2
        dx, dy = dx + jump * math.cos(b) * after, dy + jump * math.sin(b) * after
    return dx, dy


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
    nx, ny = frame_dims(size)
    if not calibration:
        return {"vignetting": 0.0, "center": [nx / 2, ny / 2], "radius": max(nx, ny) / 2,
                "prnu": 0.0, "donuts": [], "level_adu": 0.0, "exptime": 0.0}
    dims = np.array([nx, ny], float)
    c = (dims - 1) / 2.0 + rng.normal(0, dims / 30, 2)
    donut = [float(rng.uniform(0.15, 0.85) * nx), float(rng.uniform(0.15, 0.85) * ny),
             float(max(4.0, min(nx, ny) / 50)), float(rng.uniform(0.02, 0.04))]
    radius = nx / math.sqrt(2) if nx == ny else math.hypot(nx, ny) / 2
    return {"vignetting": float(rng.uniform(0.08, 0.15)), "center": [float(c[0]), float(c[1])],
            "radius": float(radius), "prnu": float(rng.uniform(0.01, 0.02)),
            "donuts": [donut], "level_adu": float(rng.uniform(20000, 30000)), "exptime": 2.0}


def _detector_maps(rng, s):
    """Fixed pixel maps: flat response, bias structure, dark rate with hot pixels, sky shape."""
    nx, ny = s["nx"], s["ny"]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    if s["signature"]:
        resp = illumination(xx, yy, s["flat"])
        if s["flat"]["prnu"]:  # an uncalibrated night's response stays smooth (no PRNU draw)
            resp = resp * (1.0 + s["flat"]["prnu"] * rng.standard_normal((ny, nx), dtype=np.float32))
        resp = resp.astype(np.float32)
        bias = (s["bias_level"] + rng.normal(0, 2.5, nx)[None, :] + rng.normal(0, 0.8, ny)[:, None]
                + 3.0 * xx / nx).astype(np.float32)
        rate = np.full((ny, nx), s["dark_current"], dtype=np.float32)
        n_hot = max(3, int(3e-4 * nx * ny))
        hx, hy = rng.integers(0, nx, n_hot), rng.integers(0, ny, n_hot)
        hr = np.exp(rng.uniform(np.log(2.0), np.log(200.0), n_hot))
        rate[hy, hx] += hr
        s["hot_pixels"] = [[int(a), int(b), round(float(c), 3)] for a, b, c in zip(hx, hy, hr)]
    else:
        resp, bias = np.ones((ny, nx), np.float32), np.zeros((ny, nx), np.float32)
        rate, s["hot_pixels"] = np.zeros((ny, nx), np.float32), []
    if s["hot_fraction"]:  # the option's population replaces the camera's few warm pixels
        rate = np.full((ny, nx), s["dark_current"], dtype=np.float32)
        hx, hy, hr = _hot_pixels(np.random.default_rng(s["streams"]["hot_pixels"]), s)
        rate[hy, hx] += hr.astype(np.float32)
        s["hot_pixels"] = [[int(a), int(b), round(float(c), 3)] for a, b, c in zip(hx, hy, hr)]
    d = s["dead_columns"]
    if d:  # unilluminated columns at both ends of a CCD window: bias level even in the flats
        resp[:, :d] = 0.0
        resp[:, nx - d:] = 0.0
    s["resp"], s["bias_map"], s["dark_rate"] = resp, bias, rate
    s["flat"]["median_response"] = float(np.median(resp))  # a median-normalised master flat
    # divides by this too: calibrated sky and fluxes come out x median_response
    s["sky_base"] = (resp * sky_plane(xx, yy, s["size"], s["sky_gradient"]) * s["gain"]).astype(np.float32)


def _hot_pixels(rng, s):
    """Hot pixels (x, y, e-/s) of option ``hot_pixels``: that fraction of the pixels, distinct,
    whose dark signal in one light exposure is log-uniform from 50 ADU to the saturation level,
    as on uncooled or uncalibrated cameras."""
    nx, ny = s["nx"], s["ny"]
    n = max(1, int(round(s["hot_fraction"] * nx * ny)))
    flat = rng.choice(nx * ny, size=n, replace=False)
    adu = np.exp(rng.uniform(np.log(50.0), np.log(s["saturation"]), n))
    return flat % nx, flat // nx, adu * s["gain"] / s["exptime"]


def _cosmic_ray_plan(streams, n, n_frames):
    """Option ``cosmic_rays``: ``n`` hits per light frame, and a random stream each for the
    calibration frames' and the lights' hits (so a light's hits do not depend on how many
    calibration frames there are); ``None`` when off."""
    if not n:
        return None
    cal, light = (np.random.default_rng(c) for c in streams["cosmic_rays"].spawn(2))
    return {"per_light": n, "calibration_rng": cal, "light_rng": light, "light": [[]] * n_frames}


def _channel_weights(colour):
    """Relative response (R, G, B) of the mosaic's channels to light of ``colour`` (-1 blue to
    +1 red; 0 white: the sensor's own sensitivities, ``BAYER_SENSITIVITY``)."""
    c = np.atleast_1d(np.asarray(colour, float))[:, None]
    tint = np.exp(BAYER_COLOUR * c * np.array([1.0, 0.0, -1.0]))
    return np.asarray(BAYER_SENSITIVITY)[None] * tint


def _bayer(rng, s, pattern):
    """Option ``bayer``: a colour filter array. Each pixel records its channel's weight times
    the mono signal: stars have random colours, the sky is reddish, flats are white; sets the
    channel map and multiplies the sky by its weights."""
    nx, ny = s["nx"], s["ny"]
    letters = np.array(["RGB".index(c) for c in pattern], dtype=np.uint8).reshape(2, 2)
    cfa = np.tile(letters, ((ny + 1) // 2, (nx + 1) // 2))[:ny, :nx]
    colours = rng.uniform(-1.0, 1.0, len(s["stars"]["x"]))
    sky_colour = float(rng.uniform(0.0, 0.8))
    weights = _channel_weights(colours)
    sky_w, flat_w = _channel_weights(sky_colour)[0], _channel_weights(0.0)[0]
    s["sky_base"] = (s["sky_base"] * sky_w.astype(np.float32)[cfa]).astype(np.float32)
    s["bayer"] = {"pattern": pattern, "cfa": cfa, "colours": colours, "star_weights": weights,
                  "sky_colour": sky_colour, "sky_weights": sky_w, "flat_weights": flat_w,
                  "flat_map": flat_w.astype(np.float32)[cfa]}
