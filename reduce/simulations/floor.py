"""The theoretical noise floor of a simulated night's differential light curve, from its truth alone."""
from __future__ import annotations

import numpy as np

from .profiles import doughnut_enclosed, enclosed_fraction, illumination, sky_plane
from .truth import load_truth, positions


def noise_floor(truth, radius_px: float, *, comparisons=None, annulus_px: float | None = None,
                superpixel: int = 1) -> float:
    """Theoretical RMS of the target's normalised differential light curve (aperture radius px).

    Per frame, the target's relative variance is (photon noise of its aperture flux, sky and dark
    in the aperture, read noise x npix, all in e-) / flux^2 (flat response at the star included);
    the ensemble's is 1 / sum(1 / sigma_c^2) over ``comparisons`` (default: every comparison
    that is neither variable nor saturated), i.e. the inverse-variance weighted best ensemble.
    floor = sqrt(mean over frames of sigma_T^2 + sigma_ens^2). With ``annulus_px`` (number of
    background pixels) the sky-estimate noise npix^2 * sigma_px^2 / annulus_px is added too.
    Master-frame noise, scintillation and centroid errors are not included, nor are hot pixels
    (``parameters.hot_pixels``) and cosmic-ray hits (``frames.cosmic_rays``), which a reduction
    is expected to mask. Issue 4 requires a
    pipeline's residual RMS to be within 1.10x this floor. ``truth``: dict or truth.json path.

    ``superpixel=k``: the floor of a measurement on k x k superpixels (each the sum of its k^2
    pixels, as a colour frame measured on 2x2 superpixels); ``radius_px`` and ``annulus_px``
    are then in superpixels (the same as a radius k x larger, k^2 x more annulus pixels, in
    raw pixels). On a colour mosaic (``parameters.bayer``) each star's flux and the sky count
    with their mean channel weight over a 2x2 cell, (R + 2G + B) / 4, as a superpixel or a
    raw-pixel aperture records them; dark current and read noise do not.
    """
    if not isinstance(truth, dict):
        truth = load_truth(truth)
    p, fr, st = truth["parameters"], truth["frames"], truth["stars"]
    if not radius_px > 0:
        raise ValueError(f"radius_px must be > 0 (got {radius_px})")
    if isinstance(superpixel, bool) or not isinstance(superpixel, (int, np.integer)) or superpixel < 1:
        raise ValueError(f"superpixel must be an integer >= 1 (got {superpixel!r})")
    if superpixel > 1:  # k x k sums: the same noise as an aperture k x larger in raw pixels
        radius_px = radius_px * superpixel
        annulus_px = annulus_px * superpixel ** 2 if annulus_px else annulus_px
    x, y = positions(truth)
    t = int(truth["target"])
    frac = _enclosed(p, fr, radius_px)
    atm = np.asarray(fr["transparency"]) * np.asarray(fr["extinction"])
    flux = np.asarray(st["flux"])[:, None] * np.asarray(st["signal"]) * atm * frac
    plane = sky_plane(x, y, p["size"], p["sky_gradient"])
    sky_e = np.asarray(fr["sky"]) * plane / plane[t] * p["gain"]
    if "bayer" in p:  # a 2x2 cell's mean channel weight, for each star and for the sky
        flux = flux * _cell_weight(np.asarray(st["channel_weights"]))[:, None]
        sky_e = sky_e * _cell_weight(np.asarray(p["bayer"]["sky_weights"]))
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


def _enclosed(params, frames, radius_px):
    """Each frame's fraction of a star's flux inside ``radius_px``: the Moffat's (analytic) or,
    for ``psf='doughnut'`` nights, the blurred annulus's (numerical)."""
    psf = params.get("psf", {"kind": "moffat"})
    if psf["kind"] == "doughnut":
        return np.array([doughnut_enclosed(radius_px, psf["diameter"], psf["obstruction"], s)
                         for s in frames["seeing"]])
    return enclosed_fraction(radius_px, np.asarray(frames["fwhm"]), params["psf_beta"])


def _cell_weight(weights):
    """Mean channel weight over a 2x2 Bayer cell, (R + 2G + B) / 4, of [..., (R, G, B)] weights."""
    w = np.asarray(weights, float)
    return (w[..., 0] + 2.0 * w[..., 1] + w[..., 2]) / 4.0
