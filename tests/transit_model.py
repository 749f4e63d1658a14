"""A small exact transit model for tests: quadratic limb darkening integrated over the stellar disk.

The planet (radius ``rp`` in stellar radii) on a circular orbit (``a`` stellar radii, inclination
``inc`` deg, period ``period`` d, mid-transit ``tc``) hides, of each thin ring of the star at radius
r, the arc inside the planet's disk; the dimming is the sum over rings of that arc times the ring's
intensity I(r) = 1 - u1 (1 - mu) - u2 (1 - mu)^2 (mu = sqrt(1 - r^2)), over the star's total light.
Rings are a fine midpoint grid, so the model is exact to ~1e-6 for r_p ~ 0.15 (checked against the
analytic uniform-disk overlap in tests/test_real_hatp32.py). No dependency beyond numpy/scipy.
"""
from __future__ import annotations

import numpy as np

N_RINGS = 4000
_R = (np.arange(N_RINGS) + 0.5) / N_RINGS  # ring radii (stellar radii), midpoints


def _intensity(u1: float, u2: float) -> np.ndarray:
    one_minus_mu = 1.0 - np.sqrt(1.0 - _R ** 2)
    return 1.0 - u1 * one_minus_mu - u2 * one_minus_mu ** 2


def covered_arc(z, rp):
    """Angle (rad, 0..2 pi) of each ring (rows: ring radii) hidden by a planet disk of radius
    ``rp`` at centre distance ``z`` (columns)."""
    r = _R[:, None]
    z = np.atleast_1d(np.asarray(z, float))[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_a = (r ** 2 + z ** 2 - rp ** 2) / (2.0 * r * z)
    arc = 2.0 * np.arccos(np.clip(cos_a, -1.0, 1.0))
    arc = np.where(r + z <= rp, 2 * np.pi, arc)  # ring entirely inside the planet
    arc = np.where((r >= z + rp) | (r <= z - rp), 0.0, arc)  # ring clear of the planet
    return arc


def occulted_flux(z, rp: float, u1: float, u2: float) -> np.ndarray:
    """Relative flux of a quadratically limb-darkened star with a planet of radius ``rp`` at
    sky-projected centre distances ``z`` (stellar radii)."""
    z = np.atleast_1d(np.asarray(z, float))
    out = np.ones_like(z)
    near = z < 1.0 + rp
    if near.any():
        w = _intensity(u1, u2) * _R  # ring weight: intensity x circumference / 2 pi
        arc = covered_arc(z[near], rp)
        out[near] = 1.0 - (w @ arc) / (2 * np.pi * w.sum())
    return out


def separation(time, tc: float, period: float, a: float, inc_deg: float) -> np.ndarray:
    """Sky-projected star-planet distance (stellar radii) on a circular orbit; behind the star
    (secondary eclipse side) it is returned as a large number."""
    phase = 2 * np.pi * (np.asarray(time, float) - tc) / period
    inc = np.radians(inc_deg)
    z = a * np.sqrt(np.sin(phase) ** 2 + (np.cos(inc) * np.cos(phase)) ** 2)
    return np.where(np.cos(phase) > 0, z, 1e3)


def transit_flux(time, *, rp, tc, period, a, inc_deg, u1, u2) -> np.ndarray:
    """Relative flux at ``time`` (days, any scale shared with ``tc``)."""
    return occulted_flux(separation(time, tc, period, a, inc_deg), rp, u1, u2)


def uniform_overlap(z, rp):
    """Exact area of a planet disk (radius rp) over a unit disk at distance z, / pi (uniform star)."""
    z = np.atleast_1d(np.asarray(z, float))
    out = np.zeros_like(z)
    inside = z <= 1 - rp
    out[inside] = rp ** 2
    part = (z > 1 - rp) & (z < 1 + rp)
    zz = z[part]
    k0 = np.arccos((rp ** 2 + zz ** 2 - 1) / (2 * rp * zz))
    k1 = np.arccos((1 - rp ** 2 + zz ** 2) / (2 * zz))
    area = rp ** 2 * k0 + k1 - 0.5 * np.sqrt(np.maximum(4 * zz ** 2 - (1 + zz ** 2 - rp ** 2) ** 2, 0))
    out[part] = area / np.pi
    return out


def fit_transit(time, flux, *, period, a, inc_deg, u1, u2, tc_guess, rp_guess=0.15,
                airmass=None):
    """Least-squares fit of Rp/Rs and mid-transit with the geometry fixed, times a baseline
    linear in time (plus a term in airmass when given). Returns a dict with ``rp``, ``tc``, the
    baseline coefficients, the residuals and their RMS."""
    from scipy.optimize import least_squares

    t = np.asarray(time, float)
    f = np.asarray(flux, float)
    t0 = float(np.mean(t))
    x = np.zeros_like(t) if airmass is None else np.asarray(airmass, float) - float(np.mean(airmass))

    def model(p):  # p: rp, mid-transit offset from tc_guess (min), baseline c0, c1 (/d), c2
        rp, dt, c0, c1, c2 = p
        base = c0 * (1.0 + c1 * (t - t0) + c2 * x)
        return base * transit_flux(t, rp=rp, tc=tc_guess + dt / 1440.0, period=period, a=a,
                                   inc_deg=inc_deg, u1=u1, u2=u2)

    p0 = [rp_guess, 0.0, float(np.median(f)), 0.0, 0.0]
    lower = [0.01, -120.0, 0.0, -1.0, -1.0]
    upper = [0.5, 120.0, np.inf, 1.0, 1.0]
    if airmass is None:
        p0, lower, upper = p0[:4], lower[:4], upper[:4]
        fit_model = lambda p: model([*p, 0.0])  # noqa: E731
    else:
        fit_model = model
    noise = max(float(np.std(np.diff(f))) / np.sqrt(2), 1e-9 * float(np.median(f)))
    res = least_squares(lambda p: fit_model(p) - f, p0, bounds=(lower, upper), x_scale="jac",
                        diff_step=1e-4, loss="soft_l1", f_scale=3 * noise)  # outliers count less
    resid = f - fit_model(res.x)
    p = list(res.x) + ([0.0] if airmass is None else [])
    return {"rp": float(p[0]), "tc": tc_guess + float(p[1]) / 1440.0, "c0": float(p[2]), "c1": float(p[3]),
            "c2": float(p[4]), "residuals": resid, "rms": float(np.std(resid / p[2]))}
