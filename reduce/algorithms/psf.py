"""PSF stamps, empirical PSF and analytic PSF fits (pure array code).

Moffat profile: ``amp * (1 + (u/ax)^2 + (v/ay)^2)^(-beta) + b`` with ``(u, v)`` the pixel offsets
rotated by ``theta``; its FWHM along an axis is ``2 * alpha * sqrt(2^(1/beta) - 1)`` (not the
Gaussian ``2.3548 * sigma``, a prose pitfall). Gaussian: ``amp * exp(-(u/sx)^2/2 - (v/sy)^2/2) + b``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["extract_stamps", "recenter", "median_epsf", "moffat2d", "gaussian2d", "fit_moffat",
           "fit_gaussian", "moffat_fwhm", "at_gaussian_limit", "GAUSSIAN_FWHM", "BETA_MAX"]

GAUSSIAN_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
BETA_MAX = 50.0  # the Moffat's Gaussian limit as fitted (beta in [1.01, BETA_MAX])


def moffat_fwhm(alpha, beta):
    """FWHM (px) of a Moffat profile of core width ``alpha`` (px) and power ``beta``."""
    return 2.0 * np.asarray(alpha) * np.sqrt(2.0 ** (1.0 / np.asarray(beta)) - 1.0)


def extract_stamps(data: np.ndarray, xy: np.ndarray, size: int, *, pad: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Stamps of ``size`` (odd) px re-centred so each star sits on the central pixel.

    Returns ``(stamps (k, size, size), keep)`` where ``keep`` indexes the positions whose padded
    stamp lies fully inside ``data``. Sub-pixel re-centring uses a Fourier shift on a stamp padded
    by ``pad`` px, so median stacking does not blur the PSF.
    """
    if size % 2 == 0:
        raise ValueError(f"stamp size must be odd, got {size}")
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    h, w = data.shape
    half = size // 2 + pad
    ix, iy = np.rint(xy[:, 0]).astype(int), np.rint(xy[:, 1]).astype(int)
    keep = np.flatnonzero((ix - half >= 0) & (iy - half >= 0) & (ix + half < w) & (iy + half < h))
    n = 2 * half + 1
    if keep.size == 0:
        return np.empty((0, size, size), np.float64), keep
    offs = np.arange(-half, half + 1)
    rows = (iy[keep, None] + offs)[:, :, None]
    cols = (ix[keep, None] + offs)[:, None, :]
    big = np.asarray(data[rows, cols], dtype=np.float64).reshape(len(keep), n, n)
    big = recenter(big, xy[keep, 0] - ix[keep], xy[keep, 1] - iy[keep])
    return big[:, pad:pad + size, pad:pad + size], keep


def recenter(stamps: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Shift each stamp (k, n, n) by ``(-dx, -dy)`` px with a Fourier phase ramp (batched; the
    ramp is separable, so it is built from two small 1-D exponentials)."""
    k, ny, nx = stamps.shape
    fy = np.fft.fftfreq(ny)
    fx = np.fft.rfftfreq(nx)
    ramp_y = np.exp(2j * np.pi * fy[None, :] * np.asarray(dy, float)[:, None])
    ramp_x = np.exp(2j * np.pi * fx[None, :] * np.asarray(dx, float)[:, None])
    spec = np.fft.rfft2(stamps)
    spec *= ramp_y[:, :, None]
    spec *= ramp_x[:, None, :]
    return np.fft.irfft2(spec, s=(ny, nx))


def median_epsf(stamps: np.ndarray) -> np.ndarray:
    """Median of the stamps each normalised to unit sum; the result is normalised to unit sum."""
    stamps = np.asarray(stamps, dtype=np.float64)
    sums = stamps.reshape(len(stamps), -1).sum(axis=1)
    good = np.isfinite(sums) & (sums > 0)
    if not good.any():
        raise ValueError("no stamp has a positive total flux")
    epsf = np.median(stamps[good] / sums[good, None, None], axis=0)
    total = epsf.sum()
    return epsf / total if total > 0 else epsf


def _rotated(x, y, x0, y0, theta):
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = x - x0, y - y0
    return dx * c + dy * s, -dx * s + dy * c


def moffat2d(x, y, amp, x0, y0, ax, ay, theta, beta, b=0.0):
    """Elliptical Moffat profile (see module docstring)."""
    u, v = _rotated(x, y, x0, y0, theta)
    return amp * (1.0 + (u / ax) ** 2 + (v / ay) ** 2) ** (-beta) + b


def gaussian2d(x, y, amp, x0, y0, sx, sy, theta, b=0.0):
    """Elliptical Gaussian profile (see module docstring)."""
    u, v = _rotated(x, y, x0, y0, theta)
    return amp * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)) + b


def _moments(stamp):
    """Amplitude, centroid and rms width guesses from the positive part of the stamp."""
    ny, nx = stamp.shape
    y, x = np.mgrid[0:ny, 0:nx]
    w = np.clip(stamp - np.median(stamp), 0, None)
    tot = w.sum()
    if tot <= 0:
        return float(stamp.max()), (nx - 1) / 2, (ny - 1) / 2, 1.5
    x0, y0 = (w * x).sum() / tot, (w * y).sum() / tot
    # half-light radius is robust to the truncated wings: for a Gaussian r_half = 1.1774 sigma
    r = np.hypot(x - x0, y - y0).ravel()
    order = np.argsort(r)
    cum = np.cumsum(w.ravel()[order])
    r_half = r[order][np.searchsorted(cum, 0.5 * cum[-1])]
    return float(stamp.max()), float(x0), float(y0), max(float(r_half) / 1.1774, 0.5)


def _quad(x, y, x0, y0, qa, qb, qc):
    """The quadratic form ``qa dx^2 + qb dy^2 + qc dx dy`` (well conditioned for round PSFs)."""
    dx, dy = x - x0, y - y0
    return dx, dy, qa * dx * dx + qb * dy * dy + qc * dx * dy


# floor of the Moffat base 1 + q: a trial step with qc^2 > 4 qa qb (not an ellipse) makes it <= 0,
# where a power is undefined (NaN, numpy's "invalid value in power"); floored, such steps get a huge
# but finite residual and the fit turns back (a real profile always has 1 + q >= 1)
_MOFFAT_BASE_FLOOR = 1e-2


def _moffat_base(x, y, x0, y0, qa, qb, qc):
    dx, dy, q = _quad(x, y, x0, y0, qa, qb, qc)
    return dx, dy, np.maximum(1.0 + q, _MOFFAT_BASE_FLOOR)


def _moffat_q(x, y, amp, x0, y0, qa, qb, qc, beta, b):
    return amp * _moffat_base(x, y, x0, y0, qa, qb, qc)[2] ** (-beta) + b


def _moffat_jac(x, y, amp, x0, y0, qa, qb, qc, beta, b, parts=None):
    """Analytic Jacobian of the quadratic-form Moffat, shape (n_pixels, 8); ``parts`` the
    ``(dx, dy, base, base ** -beta)`` of the same point when already computed."""
    if parts is None:
        dx, dy, d = _moffat_base(x, y, x0, y0, qa, qb, qc)
        dpow = d ** (-beta)
    else:
        dx, dy, d, dpow = parts
    g = -beta * amp * dpow / d
    return np.stack([dpow, -g * (2 * qa * dx + qc * dy), -g * (2 * qb * dy + qc * dx),
                     g * dx * dx, g * dy * dy, g * dx * dy, -amp * dpow * np.log(d),
                     np.ones_like(d)], axis=1)


def _moffat_u(x, y, amp, x0, y0, qa, qb, qc, u, b):
    """The Moffat with ``u = 1 / beta``: the Gaussian limit (beta -> inf) is then the straight ray
    q / u = const towards u = 0, which LM follows in a few steps, where in beta it is a curved
    valley it creeps along (>100 steps on undersampled, Gaussian-like PSFs)."""
    return _moffat_q(x, y, amp, x0, y0, qa, qb, qc, 1.0 / u, b)


def _moffat_u_jac(x, y, amp, x0, y0, qa, qb, qc, u, b, parts=None):
    j = _moffat_jac(x, y, amp, x0, y0, qa, qb, qc, 1.0 / u, b, parts)
    j[:, 6] *= -1.0 / (u * u)  # d/du = -beta^2 d/dbeta
    return j


def _moffat_u_residuals(x, y, z, scale):
    """``(fun, jac)``: the residuals ``(_moffat_u - z) / scale`` and their Jacobian over fixed
    pixels, the Jacobian reusing the profile's powers when LM asks for it at the point it has just
    evaluated (after every accepted step): the very values of :func:`_moffat_u` and
    :func:`_moffat_u_jac`, without computing the base and its power twice."""
    last = {}

    def powers(p):
        key = p.tobytes()
        if last.get("key") != key:
            amp, x0, y0, qa, qb, qc, u, b = p
            dx, dy, d = _moffat_base(x, y, x0, y0, qa, qb, qc)
            last.update(key=key, parts=(dx, dy, d, d ** (-(1.0 / u))))
        return last["parts"]

    def fun(p):
        return (p[0] * powers(p)[3] + p[7] - z) / scale

    def jac(p):
        return _moffat_u_jac(x, y, *p, parts=powers(p)) / scale

    return fun, jac


def _gaussian_q(x, y, amp, x0, y0, qa, qb, qc, b):
    return amp * np.exp(-0.5 * _quad(x, y, x0, y0, qa, qb, qc)[2]) + b


def _gaussian_jac(x, y, amp, x0, y0, qa, qb, qc, b):
    """Analytic Jacobian of the quadratic-form Gaussian, shape (n_pixels, 7)."""
    dx, dy, q = _quad(x, y, x0, y0, qa, qb, qc)
    e = np.exp(-0.5 * q)
    g = -0.5 * amp * e
    return np.stack([e, -g * (2 * qa * dx + qc * dy), -g * (2 * qb * dy + qc * dx),
                     g * dx * dx, g * dy * dy, g * dx * dy, np.ones_like(e)], axis=1)


def _axes(qa, qb, qc):
    """(major, minor, theta) widths (px) and major-axis angle (rad, (-pi/2, pi/2]) of a quadratic form."""
    m = np.array([[qa, qc / 2.0], [qc / 2.0, qb]])
    lam, vec = np.linalg.eigh(m)  # ascending: lam[0] -> the major axis
    lam = np.clip(lam, 1e-12, None)
    theta = float(np.arctan2(vec[1, 0], vec[0, 0]))
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2
    return float(1 / np.sqrt(lam[0])), float(1 / np.sqrt(lam[1])), theta


def _levenberg_marquardt(fun, jac, p0, *, max_iter: int = 200, ftol: float = 1e-8, xtol: float = 1e-8,
                         bounds=None):
    """Minimise ``|fun(p)|^2`` by Levenberg-Marquardt with Marquardt's diagonal scaling (as
    MINPACK ``lmder``, which scipy's ``least_squares(method='lm')`` wraps). Returns ``(p,
    converged)``; with ``bounds`` (lower, upper) it stops, unconverged, at the first accepted step
    that leaves them, where MINPACK runs on (a Moffat beta to infinity): 2-3x faster than scipy's
    ``least_squares`` (MINPACK or bounded TRF) on the HAT-P-32 night (benchmarks/bench_dense.py)."""
    p = np.asarray(p0, float).copy()
    r = fun(p)
    cost = float(r @ r)
    if not np.isfinite(cost):
        return p, False
    j = jac(p)
    a, g = j.T @ j, j.T @ r
    scale = np.maximum(np.diag(a), 1e-30)
    lam = 1e-3
    for _ in range(max_iter):
        scale = np.maximum(scale, np.diag(a))
        try:
            step = np.linalg.solve(a + lam * np.diag(scale), -g)
        except np.linalg.LinAlgError:
            lam *= 10.0
            if lam > 1e12:
                return p, False
            continue
        trial = p + step
        r_new = fun(trial)
        new = float(r_new @ r_new)
        if np.isfinite(new) and new <= cost:
            small_step = np.linalg.norm(step) <= xtol * (np.linalg.norm(p) + xtol)
            # a small gain only means convergence near Gauss-Newton steps (small damping): a
            # heavily damped step in a flat valley (e.g. Moffat beta -> large) gains little too
            small_gain = cost - new <= ftol * cost and lam <= 1e-2
            p, r, cost = trial, r_new, new
            if bounds is not None and not (np.all(p >= bounds[0]) and np.all(p <= bounds[1])):
                return p, False
            if small_step or small_gain:
                return p, True
            j = jac(p)
            a, g = j.T @ j, j.T @ r
            lam = max(lam / 10.0, 1e-12)
        else:
            lam *= 10.0
            if lam > 1e12:
                return p, cost == 0.0
    return p, False


def _held_fit(fun, jac, p0, lower, upper, hold: int):
    """LM with parameter ``hold`` held at its value in ``p0`` (on a bound); ``(p, converged)``."""
    free = np.arange(len(p0)) != hold
    start = np.array(p0, float)

    def full(q):
        x = start.copy()
        x[free] = q
        return x

    q, converged = _levenberg_marquardt(lambda q: fun(full(q)), lambda q: jac(full(q))[:, free], start[free],
                                        bounds=(lower[free], upper[free]))
    return full(q), converged


def _fit_at_bound(fun, jac, p0, lower, upper, hold: int):
    """LM with parameter ``hold`` held at its value in ``p0`` (a bound): when LM runs past the bounds,
    e.g. a Moffat ``beta`` (fitted as ``u = 1 / beta``) running to infinity on an undersampled,
    Gaussian-like PSF, the bounded optimum sits there. From that solution LM with every
    parameter free either converges inside the bounds (taken) or runs out again (the held one is
    taken); it is not tried when the cost's gradient there points out of the bounds.
    ``(p, False)`` when it fails."""
    p, converged = _held_fit(fun, jac, p0, lower, upper, hold)
    if not converged:
        return p, False
    if _pushes_outward(fun, jac, p, hold, lower, upper):
        return p, True
    free_p, free_ok = _levenberg_marquardt(fun, jac, p, bounds=(lower, upper))
    return (free_p, True) if free_ok else (p, True)


def _pushes_outward(fun, jac, p, hold: int, lower, upper) -> bool:
    """True when the cost at ``p`` (parameter ``hold`` on a bound, the others at their optimum)
    falls only by crossing that bound: its gradient points outward there (the bounded optimum's
    KKT condition), so LM with every parameter free would only run out again (on the HAT-P-32
    night it did for each of the 128 frames taken at the Gaussian limit: a third of the fit's cost)."""
    slope = float(jac(p)[:, hold] @ fun(p))  # half the cost's derivative along the held parameter
    if p[hold] <= lower[hold]:
        return slope > 0
    if p[hold] >= upper[hold]:
        return slope < 0
    return False


def _fit(model, jac, stamp, p0, lower, upper, at_bound=None, bound_first: bool = False, residuals=None):
    """Levenberg-Marquardt with an analytic Jacobian; when it leaves the bounds, ``at_bound``
    ``(index, start)`` tries :func:`_fit_at_bound`. ``(p, converged inside the bounds)``.

    ``residuals(x, y, z, scale) -> (fun, jac)`` may stand for the generic residuals of ``model``
    and ``jac`` (the same values, computed more cheaply: :func:`_moffat_u_residuals`).

    ``bound_first`` (with ``at_bound``) tries the held fit first and keeps it when the cost's
    gradient there points out of the bounds: the answer the full path reaches when it runs out,
    at about a third of its cost (frames whose reference PSF sits at that bound)."""
    ny, nx = stamp.shape
    y, x = np.mgrid[0:ny, 0:nx]
    x, y, z = x.ravel().astype(float), y.ravel().astype(float), np.asarray(stamp, float).ravel()
    ok = np.isfinite(z)
    x, y, z = x[ok], y[ok], z[ok]
    scale = float(np.max(np.abs(z))) or 1.0
    lower, upper = np.array(lower, float), np.array(upper, float)
    p0 = np.clip(np.array(p0, float), lower + 1e-9, upper - 1e-9)
    if residuals is not None:
        fun, jf = residuals(x, y, z, scale)
    else:
        fun = lambda p: (model(x, y, *p) - z) / scale  # noqa: E731
        jf = lambda p: jac(x, y, *p) / scale  # noqa: E731
    with np.errstate(all="ignore"):  # wild trial steps (negative base powers) are just rejected
        if bound_first and at_bound is not None:
            p, converged = _held_fit(fun, jf, at_bound[1], lower, upper, at_bound[0])
            if converged and _pushes_outward(fun, jf, p, at_bound[0], lower, upper) and np.all(np.isfinite(p)):
                return p, True
        p, converged = _levenberg_marquardt(fun, jf, p0, bounds=(lower, upper))
        if not converged and at_bound is not None:
            p, converged = _fit_at_bound(fun, jf, at_bound[1], lower, upper, at_bound[0])
    return p, bool(converged and np.all(np.isfinite(p)) and np.all(p >= lower) and np.all(p <= upper))


def at_gaussian_limit(params: dict | None) -> bool:
    """True when a :func:`fit_moffat` result sits at its Gaussian limit (``beta`` at ``BETA_MAX``):
    an undersampled or Gaussian-like PSF."""
    beta = (params or {}).get("beta")
    return bool(params and params.get("model") == "moffat" and beta is not None
                and np.isfinite(beta) and beta >= BETA_MAX * (1 - 1e-9))


def _shape(params: dict) -> tuple[float, float, float, float] | None:
    """(qa, qb, qc, 1 / beta) of a :func:`fit_moffat` result (its quadratic form rebuilt from the
    axes and angle, see :func:`_axes`), or None when it holds no usable fit."""
    try:
        major, minor = float(params["alpha_major"]), float(params["alpha_minor"])
        theta, beta = float(params["theta"]), float(params["beta"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (params.get("success", True) and np.isfinite([major, minor, theta, beta]).all()
            and major > 0 and minor > 0 and beta > 1):
        return None
    l0, l1 = major ** -2, minor ** -2
    c, s = np.cos(theta), np.sin(theta)
    return l0 * c * c + l1 * s * s, l0 * s * s + l1 * c * c, 2.0 * (l0 - l1) * s * c, 1.0 / beta


def fit_moffat(stamp: np.ndarray, *, like: dict | None = None) -> dict:
    """Least-squares elliptical Moffat fit of a PSF stamp; widths in px, theta in radians.

    Returns amp, x, y, alpha_major, alpha_minor, theta (major axis, from +x towards +y), beta,
    background, fwhm (mean of the major and minor axis FWHM), fwhm_major, fwhm_minor,
    ellipticity (1 - minor/major) and success.

    ``like`` (another frame's result, e.g. the reference's) starts the fit from that profile's
    shape (widths, angle, beta) instead of a generic beta = 3 guess, and when it sits at the
    Gaussian limit tries that limit first, kept when the fit would only run there (see
    :func:`_fit`): the frames of a night converge to the same optimum in about half the steps.
    """
    amp, x0, y0, sig = _moments(stamp)
    alpha = sig * GAUSSIAN_FWHM / (2 * np.sqrt(2 ** (1 / 3.0) - 1))
    p0 = [amp, x0, y0, alpha ** -2, alpha ** -2, 0.0, 1 / 3.0, 0.0]  # fitted in u = 1 / beta
    ny, nx = stamp.shape
    lo = [0, -0.5, -0.5, 1e-5, 1e-5, -50.0, 1 / BETA_MAX, -np.inf]   # beta in [1.01, 50]
    hi = [np.inf, nx - 0.5, ny - 0.5, 50.0, 50.0, 50.0, 1 / 1.01, np.inf]
    # the Gaussian limit, when LM runs there: beta held at 50, same core width (q beta kept)
    gauss = [amp, x0, y0, 3.0 / BETA_MAX * alpha ** -2, 3.0 / BETA_MAX * alpha ** -2, 0.0, 1 / BETA_MAX, 0.0]
    shape = _shape(like) if like else None
    limit = shape is not None and at_gaussian_limit(like)
    if shape is not None:
        p0[3:7] = shape
    if limit:
        gauss[3:6] = shape[:3]
    p, ok = _fit(_moffat_u, _moffat_u_jac, stamp, p0, lo, hi, at_bound=(6, gauss), bound_first=limit,
                 residuals=_moffat_u_residuals)
    amp, x0, y0, qa, qb, qc, u, b = (float(v) for v in p)
    beta = 1.0 / u
    major, minor, theta = _axes(qa, qb, qc)
    f_major, f_minor = float(moffat_fwhm(major, beta)), float(moffat_fwhm(minor, beta))
    return {"model": "moffat", "amp": amp, "x": x0, "y": y0, "alpha_major": major,
            "alpha_minor": minor, "theta": theta, "beta": beta, "background": b,
            "fwhm": 0.5 * (f_major + f_minor), "fwhm_major": f_major, "fwhm_minor": f_minor,
            "ellipticity": 1.0 - minor / major, "success": ok}


def fit_gaussian(stamp: np.ndarray) -> dict:
    """Least-squares elliptical Gaussian fit; FWHM = 2.3548 sigma (mean of the two axes)."""
    amp, x0, y0, sig = _moments(stamp)
    p0 = [amp, x0, y0, sig ** -2, sig ** -2, 0.0, 0.0]
    ny, nx = stamp.shape
    lo = [0, -0.5, -0.5, 1e-5, 1e-5, -50.0, -np.inf]
    hi = [np.inf, nx - 0.5, ny - 0.5, 50.0, 50.0, 50.0, np.inf]
    p, ok = _fit(_gaussian_q, _gaussian_jac, stamp, p0, lo, hi)
    amp, x0, y0, qa, qb, qc, b = (float(v) for v in p)
    major, minor, theta = _axes(qa, qb, qc)
    return {"model": "gaussian", "amp": amp, "x": x0, "y": y0, "sigma_major": major,
            "sigma_minor": minor, "theta": theta, "background": b,
            "fwhm": GAUSSIAN_FWHM * 0.5 * (major + minor), "fwhm_major": GAUSSIAN_FWHM * major,
            "fwhm_minor": GAUSSIAN_FWHM * minor, "ellipticity": 1.0 - minor / major, "success": ok}
