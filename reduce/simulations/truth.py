"""The truth of a simulated night (``truth.json``): parameters, per-frame and per-star arrays, units."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .conventions import BAYER_COLOUR, BAYER_SENSITIVITY, READOUT_S, SITE
from .profiles import sky_plane, star_positions

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


_RAGGED = ("cosmic_rays",)  # per-frame lists of unequal lengths, already JSON-ready


def _truth(s, files, *, seed, signal, dtype) -> dict:
    """The JSON-ready truth: parameters, per-frame and per-star arrays, file names."""
    st, t = s["stars"], s["stars"]["target"]
    xt, yt = (a[0] for a in star_positions([st["x"][t]], [st["y"][t]], s["dx"], s["dy"],
                                           s["rotation"], s["rotation_center"]))
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
    units = _hostile(s, params, frames, dict(UNITS))
    stars = {
        "x": st["x"], "y": st["y"], "flux": st["flux"], "peak_adu": st["peak"],
        "saturated": st["peak"] >= s["saturation"], "variable": st["amplitude"] > 0,
        "amplitude": st["amplitude"], "period": st["period"], "phase": st["phase"],
        "signal": st["signal"]}
    if "bayer" in s:
        _bayer(s, params, stars, units)
    return {"version": 1, "generator": "reduce.simulations", "units": units, "parameters": params,
            "target": t, "time": s["time"].tolist(), "dflux": s["dflux"].tolist(),
            "frames": {k: v if k in _RAGGED else np.asarray(v).tolist() for k, v in frames.items()},
            "stars": {k: np.asarray(v).tolist() for k, v in stars.items()},
            "calibration": {k: files[k] for k in ("bias", "dark", "flat")}}


def _hostile(s, params, frames, units) -> dict:
    """Record the hostile conditions (issue 9) that are on; a night without them keeps the
    truth.json it always had."""
    if s["nx"] != s["ny"]:
        params["size"] = [s["nx"], s["ny"]]
    if s.get("conditions"):
        params["conditions"] = s["conditions"]
    if s["dead_columns"]:
        params["dead_columns"] = s["dead_columns"]
    if s["saturated_neighbour"]:
        params["saturated_neighbour"] = s["saturated_neighbour"]
    if s["conditions"].get("uncalibrated"):
        params["uncalibrated"] = True
        units["parameters.uncalibrated"] = ("lights carry the camera signature (bias_level and its "
                                            "structure, dark_current, hot_pixels, vignetting only: no "
                                            "PRNU or dust) and no calibration frame is written")
    if s["cosmic_rays"]:
        params["cosmic_rays"] = s["cosmic_rays"]["per_light"]
        frames["cosmic_rays"] = s["cosmic_rays"]["light"]
        units["frames.cosmic_rays"] = ("each light frame's cosmic-ray hits, one list of [x, y] "
                                       "pixels per hit (deposits up to 2x saturation, clipped "
                                       "there); darks and flats get parameters.cosmic_rays x their "
                                       "exposure / the lights', rounded up, bias frames none")
    if "psf" in s:
        params["psf"] = s["psf"]
        frames["seeing"] = s["seeing"]
        units["frames.fwhm"] = ("outer diameter (px) of a doughnut star's ring (parameters.psf: an "
                                "annulus with a central obstruction of psf.obstruction x the "
                                "diameter, blurred by Gaussian seeing; parameters.psf_beta unused)")
        units["frames.seeing"] = "FWHM (px) of the Gaussian seeing that blurs the doughnut"
    if "clouds" in s:
        params["clouds"] = s["clouds"]["clouds"]
        frames["cloud_transparency"] = s["clouds"]["cloud_transparency"]
        frames["cloud_sky"] = s["clouds"]["cloud_sky"]
        units["parameters.clouds"] = ("passing clouds: time (JD UTC of the deepest point), "
                                      "duration_min (edge to edge, cos^2 in time), transparency "
                                      "(x clear at the deepest point), sky_factor (x the sky there)")
        units["frames.cloud_transparency"] = ("the clouds' share of frames.transparency (which "
                                              "includes it); frames.cloud_sky: their factor on "
                                              "frames.sky (which includes it)")
    if np.any(s["rotation"]):
        frames["rotation"] = s["rotation"]
        params["rotation_center"] = s["rotation_center"]
        units["stars.x/y"] = ("position on the first light frame; on frame i turn it by "
                              "frames.rotation[i] deg (counter-clockwise in x, y) about "
                              "parameters.rotation_center, then add frames.dx[i], frames.dy[i] "
                              "(reduce.simulations.truth.positions)")
    return units


def _bayer(s, params, stars, units):
    """Record a colour mosaic (option ``bayer``): pattern, channel weights of sky, flats, stars."""
    b = s["bayer"]
    params["bayer"] = {"pattern": b["pattern"], "x_offset": 0, "y_offset": 0,
                       "sensitivity": list(BAYER_SENSITIVITY), "colour_scale": BAYER_COLOUR,
                       "sky_colour": b["sky_colour"], "sky_weights": b["sky_weights"].tolist(),
                       "flat_weights": b["flat_weights"].tolist()}
    stars["colour"], stars["channel_weights"] = b["colours"], b["star_weights"]
    units["parameters.bayer"] = ("colour filter array (header BAYERPAT, from the top-left pixel): "
                                 "a pixel of channel R, G or B records its weight x the mono "
                                 "signal; weights [R, G, B] = sensitivity x exp(colour_scale x "
                                 "colour x [1, 0, -1]); stars.flux and frames.sky are those of a "
                                 "weight-1 pixel; a 2x2 superpixel records (R + 2G + B) / 4 of them")
    units["stars.channel_weights"] = "each star's [R, G, B] weights (stars.colour: -1 blue to +1 red)"


def positions(truth) -> tuple:
    """Every star's pixel (x, y) on every light frame (arrays stars x frames) from a truth,
    with its drift, jumps and rotation."""
    st, fr, p = truth["stars"], truth["frames"], truth["parameters"]
    return star_positions(st["x"], st["y"], fr["dx"], fr["dy"], fr.get("rotation"),
                          p.get("rotation_center"))


def load_truth(path) -> dict:
    """The truth of a simulated night; ``path`` is its folder or its ``truth.json``."""
    p = Path(path)
    with open(p / "truth.json" if p.is_dir() else p) as f:
        return json.load(f)
