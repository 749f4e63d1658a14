"""Light curves with a known transit, white and red noise and an airmass trend: the truth the
fit's uncertainties are checked against (tests/fit, benchmarks/bench_fit.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .planet import Planet
from .product import LightCurve

__all__ = ["simulated_transit"]


def _red_noise(time, amplitude: float, timescale_d: float, rng) -> np.ndarray:
    """A stationary AR(1) (Ornstein-Uhlenbeck) process of RMS ``amplitude`` and correlation time
    ``timescale_d`` at the given times: the slow wander of transparency and guiding."""
    out = np.empty(len(time))
    out[0] = rng.normal(0.0, amplitude)
    for i in range(1, len(time)):
        rho = np.exp(-(time[i] - time[i - 1]) / timescale_d)
        out[i] = rho * out[i - 1] + rng.normal(0.0, amplitude * np.sqrt(1.0 - rho * rho))
    return out


def simulated_transit(seed: int, *, n: int = 140, hours: float = 7.0, white: float = 0.004,
                      red: float = 0.0015, red_minutes: float = 20.0, planet: Planet | None = None):
    """(LightCurve, truth) of one night: a transit of ``planet`` (HAT-P-32 b-like by default) with
    mid-time drawn within +-15 min of the ephemeris, Rp/Rs drawn in 0.12-0.16, an airmass trend,
    white noise ``white`` and red noise ``red`` (RMS) with a ``red_minutes`` correlation time. The
    errors given are the white noise's (as a reduction propagates them): the fit must find the rest."""
    from .transit import transit_model

    rng = np.random.default_rng(seed)
    planet = planet or Planet(period=2.1500082, t0=2455867.402743, a_rs=(6.05, 0.0), inc=(88.9, 0.0),
                              rp_rs=0.15, u=(0.40, 0.25), name="SIM b")
    epoch = 1042
    expected = planet.t0 + epoch * planet.period
    tc = expected + rng.uniform(-15, 15) / 1440.0
    rp = rng.uniform(0.12, 0.16)
    start = expected - hours / 48.0 + rng.uniform(-0.5, 0.5) / 24.0
    time = np.sort(start + rng.uniform(0, hours / 24.0, n))
    airmass = 1.0 + 0.6 * ((time - time.mean()) / (hours / 24.0)) ** 2 + 0.1
    transit = transit_model(time, tc=tc, period=planet.period, rp=rp, a=planet.a_rs[0], inc=planet.inc[0],
                            u=planet.u)
    extinction = 10 ** (-0.4 * 0.05 * (airmass - airmass.mean()))
    flux = transit * extinction * (1.0 + _red_noise(time, red, red_minutes / 1440.0, rng)) \
        + rng.normal(0.0, white, n)
    lc = LightCurve(path=Path(f"sim{seed}.fits"), time=time, flux=flux, err=np.full(n, white),
                    covariates={"airmass": airmass}, n_rows=n, n_flagged=0, meta={})
    return lc, {"tc": tc, "rp_rs": rp, "planet": planet}
