"""The stars of a simulated field: positions, fluxes and variable comparison stars.

The target is the brightest star of the field, near the centre and kept clear of neighbours, and
no star saturates (a prose-style chain that takes the brightest detected star, index 0, measures
the target); ``n_saturated`` adds stars 4-10x brighter than the target, which do saturate, and a
``saturated_neighbour`` option one 3x brighter close to it. A crowded field (hundreds of stars or
more) is placed in batches and its extra stars are mostly faint.
"""
from __future__ import annotations

import math

import numpy as np

from .conventions import NEIGHBOUR_FLUX
from .profiles import moffat_alpha


_CROWDED = 200  # from this many stars to place, :func:`_place_crowded` does it in batches


_CROWDED_MID = 40  # a crowded field's stars beyond these are faint (:func:`_faint`)
_FAINT = (0.002, 0.03, 0.75)  # their flux range (x the target's) and slope a of N(>F) ~ F^-a


def _faint(rng, n):
    """Relative fluxes of a crowded field's many faint stars: number counts rising toward the
    faint end, N(>F) ~ F^-0.75 between 0.2 % and 3 % of the target (near the detection limit),
    as in a real dense field where most detected stars are faint."""
    lo, hi, a = _FAINT
    u = rng.uniform(0.0, 1.0, n)
    return (hi ** -a + u * (lo ** -a - hi ** -a)) ** (-1.0 / a)


def _default_n_stars(size):
    """40 stars for 600x600, scaled with the area, at least 10."""
    return max(10, int(round(40 * (size / 600.0) ** 2)))


def _stars(rng, s, n_stars, n_saturated=0) -> dict:
    """Positions (frame 0), fluxes (e-) and variability; sorted by decreasing flux."""
    nx, ny = s["nx"], s["ny"]
    fmax = s.get("extent_fwhm", float(s["fwhm"].max()))  # the star's width for margins and spacing
    size = min(nx, ny)
    lo, hi = _bounds(s, math.ceil(3 * fmax) + 3)
    centre = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0]) - np.array([s["dx"].mean(), s["dy"].mean()])
    target = np.clip(centre + rng.uniform(-np.array([nx, ny]) / 40, np.array([nx, ny]) / 40, 2), lo, hi)
    n_sat = max(0, min(int(n_saturated), n_stars - 4))
    n_comp = n_stars - 1 - n_sat - (1 if s.get("saturated_neighbour") else 0)
    sat = _place(rng, n_sat, lo, hi, [target], 5 * fmax, [(target, 0.3 * size)])
    if s.get("saturated_neighbour"):
        sat.append(_neighbour(rng, target, s["saturated_neighbour"], lo, hi))
    keep_off = [(target, 8 * fmax)] + [(q, 12 * fmax) for q in sat]  # clean target and wings
    comp = _place(rng, n_comp, lo, hi, [target] + sat, 5 * fmax, keep_off)
    f_t = _target_flux(s)
    n_bright = min(3, n_comp)
    n_mid = n_comp - n_bright if n_comp < _CROWDED else min(n_comp - n_bright, _CROWDED_MID)
    u = np.concatenate([rng.uniform(0.45, 0.8, n_bright),  # the target stays the brightest
                        np.exp(rng.uniform(np.log(0.03), np.log(0.45), n_mid)),
                        _faint(rng, n_comp - n_bright - n_mid)])
    flux = np.concatenate([[f_t], f_t * u, f_t * rng.uniform(4, 10, n_sat),
                           [NEIGHBOUR_FLUX * f_t] * (len(sat) - n_sat)])
    xy = np.array([target] + comp + sat).reshape(-1, 2)
    amp, period, phase = _variables(rng, n_comp, n_bright, 1 + len(sat) + n_comp)
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


def _bounds(s, margin):
    """Lowest and highest (x, y) of a star on the first frame so that it stays ``margin`` px
    inside the frame (and clear of dead columns) on every frame, whatever the drift and rotation."""
    nx, ny = s["nx"], s["ny"]
    rot = float(np.max(np.abs(s.get("rotation", 0.0))))
    if rot:  # a star at the corner moves by up to r * angle
        margin = margin + math.ceil(math.hypot(nx, ny) / 2 * math.radians(rot))
    dead = s.get("dead_columns", 0)
    lo = np.array([margin + dead - min(s["dx"].min(), 0.0), margin - min(s["dy"].min(), 0.0)])
    hi = np.array([nx - 1 - margin - dead - max(s["dx"].max(), 0.0),
                   ny - 1 - margin - max(s["dy"].max(), 0.0)])
    if np.any(hi <= lo):
        raise ValueError(f"the stars cannot stay in {nx}x{ny} px frames with this drift, jump, "
                         f"jitter and rotation (the pointing spans {np.ptp(s['dx']):.0f} x "
                         f"{np.ptp(s['dy']):.0f} px): use a larger size or less motion")
    return lo, hi


def _neighbour(rng, target, distance, lo, hi):
    """A position ``distance`` px from the target, in a random direction that stays in bounds."""
    for _ in range(100):
        b = rng.uniform(0, 2 * np.pi)
        q = target + distance * np.array([math.cos(b), math.sin(b)])
        if np.all(q >= lo) and np.all(q <= hi):
            return q
    raise ValueError(f"no room for a saturated neighbour {distance:g} px from the target")


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
    if "psf_peak" in s:  # a doughnut's ring: its own peak per unit flux
        norm = s["psf_peak"]
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
    if n >= _CROWDED:
        return _place_crowded(rng, n, lo, hi, taken, dmin, keep_off)
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


def _place_crowded(rng, n, lo, hi, taken, dmin, keep_off):
    """:func:`_place` for hundreds or thousands of stars: batches of random candidates, kept
    in order when clear of every star kept so far (a k-d tree finds the conflicts), with the
    distance between stars shrinking by 20 % steps while the field is too crowded to honour it.
    The ``keep_off`` distances never shrink: the target stays clean in a crowded field."""
    from scipy.spatial import cKDTree

    out = np.empty((0, 2))
    scale = 1.0
    while len(out) < n:
        cand = rng.uniform(lo, hi, (4 * (n - len(out)) + 100, 2))
        ok = np.ones(len(cand), bool)
        for q, d in keep_off:
            ok &= np.hypot(*(cand - np.asarray(q)).T) >= d
        placed = np.vstack([np.array(taken).reshape(-1, 2), out])
        ok &= cKDTree(placed).query(cand)[0] >= dmin * scale
        cand = cand[ok]
        kept: list = []
        conflicts = cKDTree(cand).query_ball_point(cand, dmin * scale) if len(cand) else []
        keep = np.zeros(len(cand), bool)
        for i, near in enumerate(conflicts):
            if not any(keep[j] for j in near if j < i):
                keep[i] = True
                kept.append(i)
                if len(out) + len(kept) == n:
                    break
        out = np.vstack([out, cand[kept]])
        if len(out) < n:
            scale *= 0.8
    return [q for q in out]
