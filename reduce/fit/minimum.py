"""Time of minimum of an eclipse or a pulsation without a model: Kwee & van Woerden (1956), with a
polynomial fit and its bootstrap beside it as a check.

Kwee-van Woerden folds the light curve about trial times T and measures the asymmetry
``S(T) = sum (f(T + d) - f(T - d))^2 / N`` on an even grid; near the minimum S is a parabola
``A T^2 + B T + C`` whose vertex is the time of minimum and whose error is
``sqrt((4 A C - B^2) / (4 A^2 (Z - 1)))``, Z the number of independent point pairs (N / 4 for a
grid as dense as the data). The polynomial check fits a quadratic to quartic polynomial around the
minimum (the degree of least BIC) and bootstraps its vertex.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.errors import ReduceError

__all__ = ["Minimum", "kwee_van_woerden", "polynomial_minimum", "time_of_minimum"]


@dataclass
class Minimum:
    """A time of minimum (BJD_TDB, d) by Kwee-van Woerden and by a polynomial, with errors."""

    tmin: float
    tmin_err: float
    poly_tmin: float
    poly_tmin_err: float
    poly_degree: int
    n_frames: int
    window: tuple

    def summary(self) -> dict:
        return {"tmin": self.tmin, "tmin_err": self.tmin_err, "method": "Kwee-van Woerden",
                "poly_tmin": self.poly_tmin, "poly_tmin_err": self.poly_tmin_err,
                "poly_degree": self.poly_degree, "n_frames": self.n_frames,
                "window": list(self.window), "agreement_sigma":
                abs(self.tmin - self.poly_tmin) / math.hypot(self.tmin_err, self.poly_tmin_err)
                if self.tmin_err > 0 and self.poly_tmin_err > 0 else float("nan")}


def _window(time, flux) -> tuple[np.ndarray, np.ndarray, float]:
    """The points around the minimum: the dip below the halfway level between its floor and the
    out-of-dip level, widened by half (a smoothed curve finds it, not one low point)."""
    k = max(3, len(flux) // 25)
    smooth = np.convolve(flux, np.ones(k) / k, mode="same")
    smooth[: k // 2] = smooth[k // 2]
    smooth[-(k // 2):] = smooth[-(k // 2) - 1]
    i0 = int(np.argmin(smooth))
    top, low = float(np.percentile(smooth, 90)), float(smooth[i0])
    half = 0.5 * (top + low)
    lo = i0
    while lo > 0 and smooth[lo - 1] < half:
        lo -= 1
    hi = i0
    while hi < len(flux) - 1 and smooth[hi + 1] < half:
        hi += 1
    width = max(time[hi] - time[lo], 3 * np.median(np.diff(time)))
    centre = time[i0]
    keep = np.abs(time - centre) <= 0.75 * width + 1e-12
    return time[keep], flux[keep], centre


def kwee_van_woerden(time, flux, *, n_grid: int | None = None) -> tuple[float, float]:
    """(time of minimum, error) of a symmetric minimum sampled by ``time``, ``flux`` (the window
    around it only: see :func:`time_of_minimum`)."""
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    n = len(time)
    if n < 8:
        raise ReduceError(f"only {n} points around the minimum: too few for Kwee-van Woerden")
    n_grid = n_grid or n
    grid = np.linspace(time.min(), time.max(), n_grid)
    f = np.interp(grid, time, flux)
    dt = grid[1] - grid[0]
    i0 = int(np.argmin(f))
    best = []
    for shift in (-1, 0, 1):  # S at three trial centres on the grid, then the parabola's vertex
        c = i0 + shift
        m = min(c, n_grid - 1 - c)
        if m < 2:
            raise ReduceError("the minimum is at the edge of the data: it is not covered on both sides")
        left, right = f[c - m:c][::-1], f[c + 1:c + 1 + m]
        best.append((grid[c], float(np.sum((right - left) ** 2)) / m, m))
    t = np.array([b[0] for b in best])
    s = np.array([b[1] for b in best])
    a, b, c = np.polyfit(t - t[1], s, 2)
    if not a > 0:
        raise ReduceError("the light curve is not symmetric about a minimum (Kwee-van Woerden found no vertex)")
    tmin = t[1] - b / (2 * a)
    z = max(best[1][2] * n / n_grid / 2.0, 2.0)  # independent pairs: half-window in data points / 2
    var = (4 * a * c - b * b) / (4 * a * a * (z - 1))
    return float(tmin), float(math.sqrt(max(var, (dt / 10) ** 2)))


def polynomial_minimum(time, flux, *, rng=None, n_boot: int = 200) -> tuple[float, float, int]:
    """(vertex time, bootstrap error, degree) of the polynomial of degree 2-4 with the least BIC."""
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    t0 = float(np.mean(time))
    x = time - t0
    n = len(x)
    best = None
    for deg in (2, 3, 4):
        if n <= deg + 2:
            continue
        coef = np.polyfit(x, flux, deg)
        chi = float(np.sum((np.polyval(coef, x) - flux) ** 2))
        bic = n * math.log(max(chi / n, 1e-300)) + (deg + 1) * math.log(n)
        if best is None or bic < best[0]:
            best = (bic, deg)
    if best is None:
        raise ReduceError("too few points around the minimum for a polynomial")
    deg = best[1]

    def vertex(xx, yy):
        coef = np.polyfit(xx, yy, deg)
        fine = np.linspace(xx.min(), xx.max(), 2001)
        return float(fine[int(np.argmin(np.polyval(coef, fine)))])

    tv = vertex(x, flux)
    rng = rng or np.random.default_rng(1)
    model = np.polyval(np.polyfit(x, flux, deg), x)
    resid = flux - model
    boots = [vertex(x, model + rng.choice(resid, n, replace=True)) for _ in range(n_boot)]
    return tv + t0, float(np.std(boots)), deg


def time_of_minimum(lc) -> Minimum:
    """The time of minimum of a light-curve product's good frames (:class:`~reduce.fit.product.LightCurve`)."""
    t, f, _ = _window(lc.time, lc.flux)
    tmin, err = kwee_van_woerden(t, f)
    ptmin, perr, deg = polynomial_minimum(t, f)
    return Minimum(tmin=tmin, tmin_err=err, poly_tmin=ptmin, poly_tmin_err=perr, poly_degree=deg,
                   n_frames=len(t), window=(float(t.min()), float(t.max())))
