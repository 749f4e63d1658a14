"""Transit fit of one night: batman's limb-darkened model times a baseline chosen by BIC, errors
inflated for red noise, posteriors by emcee.

The baseline (a polynomial in time, airmass, and FWHM, sky, dx, dy when they help) multiplies the
transit and is linear in its coefficients: for every set of transit parameters they are solved by
weighted least squares and marginalised analytically (a flat prior: the likelihood gains
``-0.5 log det(A^T W A)``), so the sampler explores only the transit's few parameters.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from ..model.errors import ReduceError
from .noise import beta_time_averaging, rms_per
from .planet import Planet
from .product import COVARIATES, LightCurve

__all__ = ["TransitFit", "fit_transit", "transit_model", "BASELINES"]

log = logging.getLogger("reduce.fit")

#: the time polynomials tried, each with airmass (a transit and the extinction's curve are both
#: symmetric dips: a baseline without airmass lets the depth absorb the extinction, 4-5 sigma off
#: on simulated nights where the BIC preferred it); then each other covariate is added while it
#: lowers the BIC by more than ``BIC_STEP``
BASELINES = (("t0",), ("t0", "t1"), ("t0", "t1", "t2"))
BIC_STEP = 2.0


def transit_model(time, *, tc, period, rp, a, inc, u, ecc=0.0, w=90.0, exptime_s: float = 0.0):
    """batman's quadratic-limb-darkened transit at ``time`` (one-off; fits keep a model object)."""
    return _Model(np.asarray(time, float), period=period, ecc=ecc, w=w, exptime_s=exptime_s)(tc, rp, a, inc, *u)


class _Model:
    """A batman model at fixed times, its parameters set on every call (batman's set-up once)."""

    def __init__(self, time, *, period, ecc, w, exptime_s=0.0, rp=0.1, a=10.0, inc=89.0):
        import batman

        p = batman.TransitParams()
        p.t0, p.per, p.rp, p.a, p.inc, p.ecc, p.w = float(np.median(time)), period, rp, a, inc, ecc, w
        p.u, p.limb_dark = [0.4, 0.25], "quadratic"
        self.params = p
        k = int(math.ceil(exptime_s / 60.0)) if exptime_s > 120 else 1  # long exposures are integrated
        kw = dict(supersample_factor=k, exp_time=exptime_s / 86400.0) if k > 1 else {}
        self.model = batman.TransitModel(p, time, **kw)

    def __call__(self, tc, rp, a, inc, u1, u2) -> np.ndarray:
        p = self.params
        p.t0, p.rp, p.a, p.inc, p.u = tc, rp, a, inc, [u1, u2]
        return self.model.light_curve(p)


def _design(lc: LightCurve, names) -> np.ndarray:
    """Baseline columns: 1, time (scaled to [-1, 1]) and its square, covariates standardised."""
    t = lc.time
    s = (t - 0.5 * (t.min() + t.max())) / max(0.5 * np.ptp(t), 1e-9)
    cols = []
    for name in names:
        if name == "t0":
            cols.append(np.ones_like(t))
        elif name == "t1":
            cols.append(s)
        elif name == "t2":
            cols.append(s * s)
        else:
            v = lc.covariates[name]
            cols.append((v - v.mean()) / v.std())
    return np.column_stack(cols)


@dataclass
class _Problem:
    """The parameters fitted, their priors and the likelihood of one light curve and baseline."""

    lc: LightCurve
    planet: Planet
    model: _Model
    X: np.ndarray
    sigma: np.ndarray
    names: list
    tc_range: tuple

    def unpack(self, theta) -> dict:
        p = dict(zip(self.names, theta))
        pl = self.planet
        out = {"tc": p["tc"], "rp_rs": p["rp_rs"], "a_rs": p.get("a_rs", pl.a_rs[0]), "inc": p.get("inc", pl.inc[0])}
        if pl.u is None:
            q1, q2 = p["q1"], p["q2"]
            out["u1"], out["u2"] = 2.0 * math.sqrt(max(q1, 0.0)) * q2, math.sqrt(max(q1, 0.0)) * (1.0 - 2.0 * q2)
        else:
            out["u1"], out["u2"] = pl.u
        return out

    def inside(self, theta) -> bool:
        p = dict(zip(self.names, theta))
        if not (self.tc_range[0] < p["tc"] < self.tc_range[1] and 0.0 < p["rp_rs"] < 0.5):
            return False
        if "a_rs" in p and p["a_rs"] <= 1.0:
            return False
        if "inc" in p and not 0.0 < p["inc"] <= 90.0:
            return False
        return all(0.0 <= p[q] <= 1.0 for q in ("q1", "q2") if q in p)

    def transit(self, theta) -> np.ndarray:
        v = self.unpack(theta)
        return self.model(v["tc"], v["rp_rs"], v["a_rs"], v["inc"], v["u1"], v["u2"])

    def solve(self, theta):
        """(model flux, baseline coefficients, chi2, log det of the normal matrix)."""
        tr = self.transit(theta)
        a = self.X * tr[:, None]
        w = 1.0 / (self.sigma * self.sigma)
        ata = a.T @ (a * w[:, None])
        coef = np.linalg.solve(ata, a.T @ (self.lc.flux * w))
        model = a @ coef
        chi2 = float(np.sum(w * (self.lc.flux - model) ** 2))
        return model, coef, chi2, float(np.linalg.slogdet(ata)[1])

    def residuals(self, theta) -> np.ndarray:
        """Normalised residuals plus the Gaussian priors (for least squares)."""
        model, _, _, _ = self.solve(theta)
        r = (self.lc.flux - model) / self.sigma
        return np.concatenate([r, self._prior_terms(theta)])

    def _prior_terms(self, theta) -> np.ndarray:
        p, pl, out = dict(zip(self.names, theta)), self.planet, []
        for key, (value, sigma) in (("a_rs", pl.a_rs), ("inc", pl.inc)):
            if key in p:
                out.append((p[key] - value) / sigma)
        return np.asarray(out, float)

    def log_prob(self, theta) -> float:
        if not self.inside(theta):
            return -np.inf
        _, _, chi2, logdet = self.solve(theta)
        return -0.5 * (chi2 + logdet + float(np.sum(self._prior_terms(theta) ** 2)))


@dataclass
class TransitFit:
    """A transit fit's result (see :func:`fit_transit`); ``summary()`` is the JSON product."""

    params: dict                      # name -> (median, sigma) of the posterior
    best: dict                        # best-fitting values (all model parameters)
    baseline: list
    coefficients: list
    beta: float
    scale: float
    bic: float
    n_frames: int
    rms: float
    rms_10min: float
    converged: bool
    autocorr: float
    steps: int
    epoch: int
    o_c: float
    o_c_err: float
    time: np.ndarray = field(repr=False, default=None)
    flux: np.ndarray = field(repr=False, default=None)
    err: np.ndarray = field(repr=False, default=None)
    model: np.ndarray = field(repr=False, default=None)
    baseline_flux: np.ndarray = field(repr=False, default=None)
    warnings: list = field(default_factory=list)

    def summary(self) -> dict:
        out = {}
        for k, (v, s) in self.params.items():
            out[k], out[k + "_err"] = v, s
        out.update(epoch=self.epoch, o_c=self.o_c, o_c_err=self.o_c_err, o_c_min=self.o_c * 1440.0,
                   o_c_err_min=self.o_c_err * 1440.0, baseline=self.baseline, baseline_coefficients=self.coefficients,
                   beta=self.beta, error_scale=self.scale, bic=self.bic, n_frames=self.n_frames,
                   rms_per_frame=self.rms, rms_per_10min=self.rms_10min, converged=self.converged,
                   autocorr_steps=self.autocorr, mcmc_steps=self.steps, warnings=list(self.warnings))
        return out


def _tc_guess(lc: LightCurve, planet: Planet) -> tuple[float, int]:
    """The predicted mid-transit nearest the night's middle, and its epoch."""
    mid = 0.5 * (lc.time.min() + lc.time.max())
    epoch = int(round((mid - planet.t0) / planet.period))
    return planet.t0 + epoch * planet.period, epoch


def duration(period, rp, a, inc) -> float:
    """Total duration T14 (d) of a circular-orbit transit; NaN when the planet misses the star."""
    b = a * math.cos(math.radians(inc))
    arg = ((1.0 + rp) ** 2 - b * b)
    if arg <= 0:
        return float("nan")
    return period / math.pi * math.asin(min(1.0, math.sqrt(arg) / (a * math.sin(math.radians(inc)))))


def _start(planet: Planet, tc: float) -> tuple[list, list]:
    names, theta = ["tc", "rp_rs"], [tc, planet.rp_rs]
    if planet.a_rs[1] > 0:
        names.append("a_rs")
        theta.append(planet.a_rs[0])
    if planet.inc[1] > 0:
        names.append("inc")
        theta.append(min(planet.inc[0], 89.999))
    if planet.u is None:
        names += ["q1", "q2"]
        theta += [0.36, 0.3]  # u ~ (0.36, 0.24): a Sun-like star in the visible
    return names, theta


def _least_squares(prob: _Problem, theta0) -> np.ndarray:
    from scipy.optimize import least_squares

    lo, hi = [], []
    for n in prob.names:
        lo.append({"tc": prob.tc_range[0], "rp_rs": 1e-4, "a_rs": 1.0001, "inc": 1.0}.get(n, 0.0))
        hi.append({"tc": prob.tc_range[1], "rp_rs": 0.5, "inc": 90.0}.get(n, np.inf if n == "a_rs" else 1.0))
    x0 = np.clip(theta0, np.asarray(lo) + 1e-9, np.asarray(hi) - 1e-9)
    return least_squares(prob.residuals, x0, bounds=(lo, hi), x_scale="jac").x


def _best_tc(prob: _Problem, theta) -> list:
    """Scan mid-times over the night (1-minute steps) at the first Rp/Rs: the least-squares fit
    then starts in the right minimum even when the ephemeris is off by an hour."""
    grid = np.arange(prob.tc_range[0], prob.tc_range[1], 1.0 / 1440.0)
    best, chi = theta[0], np.inf
    for tc in grid:
        trial = list(theta)
        trial[0] = tc
        c = prob.solve(trial)[2]
        if c < chi:
            best, chi = tc, c
    theta = list(theta)
    theta[0] = best
    return theta


def _choose_baseline(lc, planet, model, sigma, tc_range, theta0) -> tuple[list, np.ndarray, float]:
    """The baseline of least BIC: time polynomials, each with airmass, then each other covariate
    added while it lowers the BIC by more than :data:`BIC_STEP`."""
    names, _ = _start(planet, theta0[0])
    n = len(lc.time)

    def score(cols):
        X = _design(lc, cols)
        if np.linalg.matrix_rank(X) < X.shape[1]:  # a covariate that another one already is
            return np.inf, theta0
        prob = _Problem(lc, planet, model, X, sigma, names, tc_range)
        theta = _least_squares(prob, theta0)
        chi2 = float(np.sum(prob.residuals(theta)[:n] ** 2))
        return chi2 + (len(cols) + len(names)) * math.log(n), theta

    tried = []
    for poly in BASELINES:  # extinction is always there: airmass is always in, when known
        cols = list(poly) + (["airmass"] if "airmass" in lc.covariates else [])
        bic, theta = score(cols)
        if not np.isfinite(bic) and "airmass" in cols:  # airmass is this polynomial already
            cols = list(poly)
            bic, theta = score(cols)
        tried.append((bic, cols, theta))
    bic, cols, theta = min(tried, key=lambda t: t[0])
    for cov in COVARIATES:
        if cov in cols or cov not in lc.covariates:
            continue
        b2, th2 = score(cols + [cov])
        if b2 < bic - BIC_STEP:
            bic, cols, theta = b2, cols + [cov], th2
    return cols, theta, bic


def fit_transit(lc: LightCurve, planet: Planet, *, max_steps: int = 20000, seed: int | None = 1,
                show_progress: bool = False) -> TransitFit:
    """Fit one night's transit: baseline by BIC, errors scaled to the residuals and inflated by
    the time-averaging beta, posteriors by emcee until the chains are 50 autocorrelation times long
    (or ``max_steps``, with a warning)."""
    import emcee

    tc0, epoch = _tc_guess(lc, planet)
    dur = duration(planet.period, planet.rp_rs, planet.a_rs[0], planet.inc[0])
    dur = dur if np.isfinite(dur) else 0.1
    t_lo, t_hi = lc.time.min(), lc.time.max()
    if tc0 + 0.5 * dur < t_lo or tc0 - 0.5 * dur > t_hi:
        raise ReduceError(f"{lc.path.name}: by the ephemeris (period {planet.period} d, t0 {planet.t0}), "
                          f"the transit of epoch {epoch} (mid {tc0:.5f}) is not within the night "
                          f"({t_lo:.5f}-{t_hi:.5f}): check the planet file or the product")
    tc_range = (max(t_lo - 0.5 * dur, tc0 - 0.5 * planet.period), min(t_hi + 0.5 * dur, tc0 + 0.5 * planet.period))
    exptime = float(lc.meta.get("EXPTIME", 0.0) or 0.0)
    model = _Model(lc.time, period=planet.period, ecc=planet.ecc, w=planet.w, exptime_s=exptime,
                   rp=planet.rp_rs, a=planet.a_rs[0], inc=planet.inc[0])
    names, theta = _start(planet, tc0)
    sigma = lc.err.copy()
    first = _Problem(lc, planet, model, _design(lc, ["t0", "t1"]), sigma, names, tc_range)
    theta = _best_tc(first, theta)
    cols, theta, _ = _choose_baseline(lc, planet, model, sigma, tc_range, theta)
    prob = _Problem(lc, planet, model, _design(lc, cols), sigma, names, tc_range)
    theta = _least_squares(prob, theta)
    # errors: scaled to the residuals (chi2/dof = 1), then inflated for red noise
    resid = lc.flux - prob.solve(theta)[0]
    n, k = len(lc.time), len(cols) + len(names)
    scale = math.sqrt(float(np.sum((resid / sigma) ** 2)) / max(n - k, 1))
    beta = beta_time_averaging(lc.time, resid)
    prob.sigma = sigma * scale * beta
    theta = _least_squares(prob, theta)
    samples, converged, tau, steps = _sample(prob, np.asarray(theta), max_steps, seed, show_progress, emcee)
    return _result(prob, lc, planet, cols, theta, samples, converged, tau, steps, scale, beta, epoch)


def _sample(prob, theta, max_steps, seed, show_progress, emcee):
    """emcee's ensemble sampler from a small ball around the least-squares fit, in chunks of 500
    steps until converged: more than 50 autocorrelation times, and the estimate stable to 10 %."""
    from ..console import progress

    ndim = len(theta)
    nwalkers = max(24, 4 * ndim)
    rng = np.random.default_rng(seed)
    scale = np.array([{"tc": 2e-4, "rp_rs": 1e-3, "a_rs": 1e-2, "inc": 1e-2}.get(n, 1e-2) for n in prob.names])
    start = theta + scale * rng.standard_normal((nwalkers, ndim))
    for i in range(nwalkers):  # every walker inside the priors
        while not prob.inside(start[i]):
            start[i] = theta + 0.1 * scale * rng.standard_normal(ndim)
    sampler = emcee.EnsembleSampler(nwalkers, ndim, prob.log_prob)
    if seed is not None:  # reproducible chains
        sampler.random_state = np.random.RandomState(seed).get_state()
    chunk, state, tau, old, converged = 500, start, np.inf, np.inf, False
    with progress("MCMC", max_steps, show=show_progress, unit="steps") as bar:
        while sampler.iteration < max_steps:
            state = sampler.run_mcmc(state, chunk, progress=False)
            bar.advance(chunk)
            tau = float(np.max(sampler.get_autocorr_time(tol=0)))
            if np.isfinite(tau) and sampler.iteration > 50 * tau and abs(old - tau) / tau < 0.1:
                converged = True
                break
            old = tau
    burn = int(min(max(2 * tau, 200), sampler.iteration // 2)) if np.isfinite(tau) else sampler.iteration // 2
    thin = max(1, int(tau / 2)) if np.isfinite(tau) else 1
    return sampler.get_chain(discard=burn, thin=thin, flat=True), converged, tau, sampler.iteration


def _result(prob, lc, planet, cols, theta, samples, converged, tau, steps, scale, beta, epoch) -> TransitFit:
    derived = np.array([list(prob.unpack(s).values()) for s in samples])  # tc, rp, a, inc, u1, u2
    keys = ["tc", "rp_rs", "a_rs", "inc", "u1", "u2"]
    post = {k: derived[:, i] for i, k in enumerate(keys)}
    post["depth"] = post["rp_rs"] ** 2
    post["b"] = post["a_rs"] * np.cos(np.radians(post["inc"]))
    post["duration"] = np.array([duration(planet.period, r, a, i) for r, a, i in
                                 zip(post["rp_rs"], post["a_rs"], post["inc"])])

    def stat(v):
        v = v[np.isfinite(v)]
        if not len(v):
            return float("nan"), float("nan")
        lo, med, hi = np.percentile(v, [15.865, 50.0, 84.135])
        return float(med), float(0.5 * (hi - lo))

    params = {k: stat(v) for k, v in post.items()}
    model, coef, chi2, _ = prob.solve(theta)
    transit = prob.transit(theta)
    base = model / transit
    resid = lc.flux - model
    n, k = len(lc.time), len(cols) + len(theta)
    tc, tc_err = params["tc"]
    expected = planet.t0 + epoch * planet.period
    o_c_err = math.sqrt(tc_err ** 2 + (epoch * planet.period_err) ** 2 + planet.t0_err ** 2)
    warnings = []
    if not converged:
        warnings.append(f"MCMC not converged after {steps} steps (autocorrelation {tau:.0f} steps): "
                        "the uncertainties are rough; raise --steps")
    best = dict(prob.unpack(theta))
    chi2_final = float(np.sum((resid / prob.sigma) ** 2))
    return TransitFit(params=params, best=best, baseline=list(cols), coefficients=[float(c) for c in coef],
                      beta=float(beta), scale=float(scale), bic=chi2_final + k * math.log(n), n_frames=n,
                      rms=float(np.std(resid)), rms_10min=rms_per(lc.time, resid, 10.0 / 1440.0),
                      converged=converged, autocorr=float(tau), steps=int(steps), epoch=epoch,
                      o_c=float(tc - expected), o_c_err=float(o_c_err), time=lc.time, flux=lc.flux,
                      err=prob.sigma, model=model, baseline_flux=base, warnings=warnings)
