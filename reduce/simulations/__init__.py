"""Synthetic nights with known truth: raw light, bias, dark and flat frames plus ``truth.json``.

The scene is physical enough to exercise a whole reduction: a target near the centre (the
brightest star, so star 0 once detected, as prose's simulator does; no star saturates), comparison stars of which a few vary, a common transparency and
airmass extinction, pointing drift, a Moffat PSF whose seeing changes, a sky gradient, photon,
dark and read noise, and a camera signature (bias structure, dark current with hot pixels,
vignetting, a dust donut, pixel response) that the calibration frames let a pipeline remove.

Conventions (repeated in ``truth.json['units']``): pixel coordinates are 0-based with pixel
centres on integers (numpy / photutils / sep); ``time`` is JD UTC at mid-exposure while the
headers' ``DATE-OBS`` and ``JD`` mark the exposure *start*; star fluxes are total electrons per
exposure at airmass 1 in clear sky, before the flat response; ``sky`` is ADU per pixel at the
target without the flat response. Not simulated: scintillation, colour-dependent extinction
(cosmic rays, hot pixels, doughnut stars, clouds, a colour mosaic and uncalibrated lights are
options, off by default). Photon noise is drawn exactly (Poisson) below 100 e- and with its
Gaussian limit (same mean and variance) above, which is 3x faster and indistinguishable at
those levels.

Layout: this module holds the entry points; :mod:`.conventions` (site, camera, times),
:mod:`.profiles` (PSF, signals, flat, sky), :mod:`.scene` and :mod:`.stars` (the night's random
design), :mod:`.render` (frames and headers), :mod:`.truth`, :mod:`.floor` (noise floor) and
:mod:`.options` (option checks, destination folder), :mod:`.defects` (cosmic-ray hits).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_text
from .conventions import (DTYPES, MIN_SIZE, NIGHT_START, READOUT_S, SIGNALS, SITE,  # noqa: F401 (public names)
                          _iso_to_jd, jd_to_iso)
from .floor import noise_floor
from .options import (_check_int, _check_positive, _check_size, _prepare_destination, _validate,
                      _validate_camera, _validate_conditions, _validate_psf,
                      _validate_sky_and_colour)
from .profiles import (doughnut_enclosed, doughnut_profile, enclosed_fraction, illumination,
                       moffat_alpha, sky_plane, target_signal)
from .render import _calibration_plan, _write_calibration, _write_light
from .scene import _design
from .stars import _default_n_stars
from .truth import UNITS, _truth, load_truth  # noqa: F401 (UNITS: public name)

_CONDITION_STREAMS = ("hot_pixels", "cosmic_rays", "clouds", "bayer")  # one SeedSequence child each

__all__ = ["simulate_night", "simulate_observation", "noise_floor", "load_truth", "target_signal",
           "enclosed_fraction", "doughnut_enclosed", "doughnut_profile", "moffat_alpha",
           "illumination", "sky_plane", "jd_to_iso", "SITE", "SIGNALS", "DTYPES"]


def simulate_night(destination, *, seed: int = 0, n_images: int = 100, size=600,
                   n_stars: int | None = None, signal: str = "sine", shift: float = 5.0,
                   calibration: bool = True, dtype: str = "uint16", n_bias: int = 5,
                   n_darks: int = 5, n_flats: int = 15, exptime: float = 60.0,
                   dark_exptimes=None, overwrite: bool = False,
                   show_progress: bool = False, **conditions) -> dict:
    """Write a synthetic night into ``destination``; return its truth (also in truth.json).

    Lights start at ``NIGHT_START`` (UTC), one every ``exptime + 10`` s; ``signal`` is the
    target's injected relative flux (:func:`target_signal`). ``size``: px, one number (square)
    or (width, height). ``shift``: total pointing drift in px over the night, plus ~0.3 px
    jitter. ``n_stars`` defaults to 40 for 600x600, scaled with the area. Darks are taken at
    each of ``dark_exptimes`` (default: the lights' exposure), ``n_darks`` each.
    ``calibration=False`` writes no calibration frames and lights with no camera signature (no
    bias, dark or flat response). A non-empty ``destination`` is an error unless ``overwrite``
    (then files listed by the previous truth.json there are removed).

    Hostile ``conditions`` (issue 9), all off by default:
    ``fwhm`` median seeing in px (default 3.5-4.2; under 2.5 px stars are integrated over each
    pixel), ``jitter`` RMS pointing jitter per axis in px (default 0.3), ``jump`` a sudden
    pointing step in px at mid-night, ``rotation`` field rotation in degrees over the night
    about the frame centre, ``twilight`` minutes over which the sky falls from 24,700 ADU to
    the night's level at the start, ``dead_columns`` unilluminated columns at both ends (bias
    level even in flats), ``saturated_neighbour`` distance in px of a saturated star (3x the
    target's flux) from the target.

    Real-camera conditions (issue 18), all off by default, each drawn from its own random
    stream so that a night without them is unchanged: ``uncalibrated=True`` an uncalibrated
    CCD night: lights carry the camera signature (bias pedestal of 300-1000 ADU with column,
    row and slope structure, dark current, hot pixels, vignetting) but no calibration frame is
    written; the response is kept smooth (vignetting only: no PRNU, no dust donut) so that the
    truth's noise floor stays honest for a reduction that cannot flat-field. ``hot_pixels``
    the fraction of pixels that are hot (e.g. 1e-3), replacing the camera's own few warm
    pixels: fixed, distinct pixels whose dark signal in one light exposure is log-uniform from
    50 ADU to saturation, in lights and darks alike (listed in ``parameters.hot_pixels`` as
    [x, y, e-/s]); they matter with ``uncalibrated`` or ``calibration=False``, since darks
    remove them otherwise. ``cosmic_rays`` hits per light frame (:mod:`.defects`: single pixels
    and short tracks, deposits of 100 ADU to twice saturation, clipped there), listed per frame
    in ``frames.cosmic_rays``; darks and flats get the same rate per second of exposure, rounded
    up, bias frames none. ``psf='doughnut'`` (default ``'moffat'``) defocused stars through an
    obstructed pupil: a uniform annulus whose outer diameter in px is ``fwhm`` (so read
    ``fwhm`` as the ring's diameter then; default 12, at least 8) with a central obstruction of
    ``obstruction`` x the diameter (default 0.4), blurred by Gaussian seeing of 2.5-3.0 px FWHM
    that varies through the night (``frames.seeing``), so the centre is clearly darker than the
    ring (:func:`.profiles.doughnut_table`); ``noise_floor`` uses its enclosed fraction.
    ``clouds`` passing clouds at random times: smooth dips (cos^2, 10-25 min edge to edge) of
    the transparency to 0.3-0.8 of clear while the sky rises x1.5-4, in ``frames.transparency``
    and ``frames.sky`` (which the floor uses) and, alone, ``frames.cloud_transparency`` and
    ``frames.cloud_sky``; ``parameters.clouds`` lists them. ``bayer`` ('RGGB', 'GRBG', 'GBRG'
    or 'BGGR') a colour sensor's raw colour-filter-array frames: each pixel records its
    channel's weight times the mono signal; weights are the sensitivities (R 0.6, G 1, B 0.5)
    tinted by each star's random colour (``stars.channel_weights``), by a reddish sky
    (``parameters.bayer.sky_weights``), white for flats; headers carry ``BAYERPAT``,
    ``XBAYROFF = YBAYROFF = 0`` as N.I.N.A./ASCOM write them; ``noise_floor(truth, r,
    superpixel=2)`` gives the floor of a measurement on 2x2 superpixels.

    ``wcs``: which light frames carry a celestial WCS (TAN, 1.5"/px, north up, east left, the
    target at the header RA/DEC, following the drift and rotation), as a plate-solved frame does:
    ``'all'`` (default), ``'none'`` (a camera without plate solving) or 0-based frame numbers
    (``[3]`` or ``'3,5'``); recorded in ``parameters.wcs_frames`` unless ``'all'``.

    The conditions combine, e.g. ``uncalibrated=True, hot_pixels=1e-3, cosmic_rays=30,
    bayer='GRBG', jump=30, exptime=10`` for a smart-telescope night.
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
                     show_progress=show_progress, **conditions)


def simulate_observation(time, dflux, destination, **options) -> dict:
    """Like :func:`simulate_night` for a given light curve of the target.

    ``time``: JD UTC at mid-exposure, one per light frame (increasing, at least ``exptime``
    apart); ``dflux``: the target's relative flux at each time. Other options are those of
    :func:`simulate_night` (hostile conditions included) except ``n_images`` and ``signal``.
    Example::

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


def _wcs_frames(wcs, n: int) -> set:
    """The light frames (0-based) that carry a WCS: ``'all'``, ``'none'``, or indices."""
    if wcs == "all":
        return set(range(n))
    if wcs in ("none", None):
        return set()
    try:
        idx = {int(i) for i in (wcs.split(",") if isinstance(wcs, str) else wcs)}
    except (TypeError, ValueError):
        raise ValueError(f"wcs must be 'all', 'none' or light frame numbers (0-based), got {wcs!r}") from None
    if any(not 0 <= i < n for i in idx):
        raise ValueError(f"wcs frame numbers must be within 0..{n - 1} (got {sorted(idx)})")
    return idx


def _simulate(time, dflux, destination, *, seed=0, size=600, n_stars=None, signal="custom",
              shift=5.0, calibration=True, dtype="uint16", n_bias=5, n_darks=5, n_flats=15,
              exptime=60.0, dark_exptimes=None, overwrite=False, show_progress=False,
              fwhm=None, jitter=0.3, jump=0.0, rotation=0.0, twilight=0.0, dead_columns=0,
              saturated_neighbour=0.0, uncalibrated=False, hot_pixels=0.0, cosmic_rays=0,
              psf="moffat", obstruction=0.4, clouds=0, bayer=None, wcs="all") -> dict:
    """Design the scene, write calibration frames, lights and truth.json; return the truth."""
    from ..console import progress

    conditions = dict(fwhm=fwhm, jitter=jitter, jump=jump, rotation=rotation, twilight=twilight,
                      dead_columns=dead_columns, saturated_neighbour=saturated_neighbour)
    _validate_conditions(size=size, **conditions)
    camera = dict(uncalibrated=uncalibrated, hot_pixels=hot_pixels, cosmic_rays=cosmic_rays)
    _validate_camera(calibration=calibration, **camera)
    _validate_psf(psf=psf, obstruction=obstruction, fwhm=fwhm)
    _validate_sky_and_colour(clouds=clouds, bayer=bayer)
    camera.update(psf=psf, obstruction=obstruction, clouds=clouds, bayer=bayer)
    nx, ny = _check_size(size)
    n_stars = _default_n_stars(min(nx, ny)) if n_stars is None else n_stars
    dark_exptimes = (exptime,) if dark_exptimes is None else tuple(dark_exptimes)
    _validate(seed=seed, size=size, n_stars=n_stars, shift=shift, dtype=dtype, n_bias=n_bias,
              n_darks=n_darks, n_flats=n_flats, dark_exptimes=dark_exptimes)
    root = np.random.SeedSequence(int(seed))
    seeds = root.spawn(3)  # the night's own streams (design, calibration frames, lights)
    streams = dict(zip(_CONDITION_STREAMS, root.spawn(len(_CONDITION_STREAMS))))  # drawn only when on
    s = _design(np.random.default_rng(seeds[0]), time, dflux,
                size=int(nx) if nx == ny else (int(nx), int(ny)),
                n_stars=int(n_stars), shift=float(shift), calibration=bool(calibration),
                exptime=float(exptime), streams=streams, **conditions, **camera)
    s["wcs_frames"] = _wcs_frames(wcs, len(time))
    dest = _prepare_destination(Path(destination), overwrite)
    plan = _calibration_plan(s, n_bias, n_darks, n_flats, dark_exptimes) if s["calibration"] else []
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
    if wcs != "all":
        truth["parameters"]["wcs_frames"] = sorted(s["wcs_frames"])
    atomic_write_text(dest / "truth.json", json.dumps(truth, indent=1))
    return truth
