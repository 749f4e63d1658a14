"""The stars of a simulated field: positions, fluxes and variable comparison stars.

The target is the brightest star of the field, near the centre and kept clear of neighbours, and
no star saturates (a prose-style chain that takes the brightest detected star, index 0, measures
the target); ``n_saturated`` adds stars 4-10x brighter than the target, which do saturate.
"""
from __future__ import annotations

import math

import numpy as np

from .profiles import moffat_alpha


def _default_n_stars(size):
    """40 stars for 600x600, scaled with the area, at least 10."""
    return max(10, int(round(40 * (size / 600.0) ** 2)))


def _stars(rng, s, n_stars, n_saturated=0) -> dict:
    """Positions (frame 0), fluxes (e-) and variability; sorted by decreasing flux."""
    size, fmax = s["size"], float(s["fwhm"].max())
    margin = math.ceil(3 * fmax) + 3
    lo = np.array([margin - min(s["dx"].min(), 0.0), margin - min(s["dy"].min(), 0.0)])
    hi = np.array([size - 1 - margin - max(s["dx"].max(), 0.0),
                   size - 1 - margin - max(s["dy"].max(), 0.0)])
    centre = (size - 1) / 2.0 - np.array([s["dx"].mean(), s["dy"].mean()])
    target = np.clip(centre + rng.uniform(-size / 40, size / 40, 2), lo, hi)
    n_sat = min(int(n_saturated), n_stars - 4)
    n_comp = n_stars - 1 - n_sat
    sat = _place(rng, n_sat, lo, hi, [target], 5 * fmax, [(target, 0.3 * size)])
    keep_off = [(target, 8 * fmax)] + [(q, 12 * fmax) for q in sat]  # clean target and wings
    comp = _place(rng, n_comp, lo, hi, [target] + sat, 5 * fmax, keep_off)
    f_t = _target_flux(s)
    n_bright = min(3, n_comp)
    u = np.concatenate([rng.uniform(0.45, 0.8, n_bright),  # the target stays the brightest
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
