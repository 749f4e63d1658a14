"""The numpy Levenberg-Marquardt PSF fits land where scipy's MINPACK does (same bounds policy)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from reduce.algorithms import psf
from tests.algorithms._stars import render


def _minpack(fun, jac, p0, bounds=None, **_):
    """scipy's ``least_squares(method='lm')`` (MINPACK lmder) in place of the numpy solver (which
    reports a solution outside ``bounds`` as not converged)."""
    res = least_squares(fun, p0, jac=jac, method="lm", max_nfev=400)
    inside = bounds is None or (np.all(res.x >= bounds[0]) and np.all(res.x <= bounds[1]))
    return res.x, bool(res.success and inside)


@pytest.mark.parametrize("profile,fwhm,beta", [("moffat", 2.2, 2.0), ("moffat", 4.0, 3.5), ("gaussian", 3.0, 3.0),
                                               ("moffat", 7.5, 5.0)])
def test_fits_agree_with_minpack(profile, fwhm, beta, monkeypatch):
    rng = np.random.default_rng(int(10 * fwhm))
    size = 31 if fwhm > 5 else 21
    c = size // 2
    stamp = render((size, size), [[c + 0.3, c - 0.2]], 1.0, fwhm=fwhm, sky=0.0, noise=2e-4, rng=rng,
                   profile=profile, beta=beta)
    mine = {f.__name__: f(stamp) for f in (psf.fit_moffat, psf.fit_gaussian)}
    monkeypatch.setattr(psf, "_levenberg_marquardt", _minpack)
    ref = {f.__name__: f(stamp) for f in (psf.fit_moffat, psf.fit_gaussian)}
    for name in mine:
        assert mine[name]["success"] and ref[name]["success"]
        assert mine[name]["fwhm"] == pytest.approx(ref[name]["fwhm"], rel=1e-4)
        assert (mine[name]["x"], mine[name]["y"]) == pytest.approx((ref[name]["x"], ref[name]["y"]), abs=1e-4)
    assert mine["fit_moffat" if profile == "moffat" else "fit_gaussian"]["fwhm"] == pytest.approx(fwhm, rel=0.02)



def _trf(model, jac, stamp, p0, lower, upper, at_bound=None, **_):
    """scipy's bounded TRF on the same residuals, in place of the LM steps of ``psf._fit``."""
    y, x = np.mgrid[0:stamp.shape[0], 0:stamp.shape[1]]
    x, y, z = x.ravel().astype(float), y.ravel().astype(float), stamp.ravel()
    scale = np.max(np.abs(z))
    res = least_squares(lambda p: (model(x, y, *p) - z) / scale, np.clip(p0, np.add(lower, 1e-9), np.add(upper, -1e-9)),
                        jac=lambda p: jac(x, y, *p) / scale, bounds=(lower, upper), method="trf", x_scale="jac")
    return res.x, bool(res.success)


@pytest.mark.parametrize("fwhm", [1.6, 1.9])
def test_gaussian_like_psf_lands_on_the_beta_bound_as_trf(fwhm, monkeypatch):
    """An undersampled, Gaussian-like PSF drives the Moffat beta to its bound (50): the held-beta
    LM step finds the bounded optimum scipy's TRF finds."""
    rng = np.random.default_rng(7)
    stamp = render((15, 15), [[7.2, 6.9]], 1.0, fwhm=fwhm, sky=0.0, noise=1e-4, rng=rng, profile="gaussian")
    mine = psf.fit_moffat(stamp)
    assert mine["success"] and mine["beta"] == pytest.approx(50.0)
    assert mine["fwhm"] == pytest.approx(fwhm, rel=0.03)
    monkeypatch.setattr(psf, "_fit", _trf)
    trf = psf.fit_moffat(stamp)
    assert trf["success"] and trf["beta"] == pytest.approx(50.0, rel=1e-3)
    assert (mine["fwhm"], mine["x"], mine["y"]) == pytest.approx((trf["fwhm"], trf["x"], trf["y"]), rel=1e-4)


@pytest.mark.parametrize("profile,fwhm,beta", [("gaussian", 1.6, 3.0), ("gaussian", 1.9, 3.0), ("moffat", 2.2, 2.0),
                                               ("moffat", 4.0, 3.5)])
def test_a_fit_like_the_reference_gives_the_same_fit_in_fewer_steps(profile, fwhm, beta, monkeypatch):
    """``like`` (the frames of a night start from the reference's PSF): another frame of the same
    night (other noise, shifted, 5 % wider) gets the fit the generic start gives, in fewer LM
    evaluations; at the Gaussian limit the held fit alone (one LM run where the generic path needs
    2-3), a real Moffat (beta 2-3.5) still its interior beta."""
    rng = np.random.default_rng(int(10 * fwhm))
    make = lambda w, xy: render((15, 15), [xy], 1.0, fwhm=w, sky=0.0, noise=1e-4, rng=rng,  # noqa: E731
                                profile=profile, beta=beta)
    reference = psf.fit_moffat(make(fwhm, [7.0, 7.1]))
    stamp = make(1.05 * fwhm, [7.2, 6.9])
    runs, evals = [], []
    solve = psf._levenberg_marquardt

    def counted(fun, jac, p0, **kw):
        runs.append(1)
        return solve(lambda p: evals.append(1) or fun(p), jac, p0, **kw)

    monkeypatch.setattr(psf, "_levenberg_marquardt", counted)
    full = psf.fit_moffat(stamp)
    n_runs, n_evals = len(runs), len(evals)
    runs[:], evals[:] = [], []
    like = psf.fit_moffat(stamp, like=reference)
    assert full["success"] and like["success"]
    assert (like["fwhm"], like["beta"], like["x"]) == pytest.approx((full["fwhm"], full["beta"], full["x"]), rel=1e-5)
    assert psf.at_gaussian_limit(like) == (profile == "gaussian") == psf.at_gaussian_limit(reference)
    assert len(evals) < n_evals
    if profile == "gaussian":
        assert len(runs) == 1 < n_runs


def test_moffat_residuals_reuse_the_evaluation_and_give_the_very_same_values():
    """The Moffat fit's residuals and Jacobian share one evaluation per point (the Jacobian is asked
    for where the residuals were just computed): bit for bit what the model functions give, in
    either order and after a move."""
    rng = np.random.default_rng(2)
    y, x = (v.ravel().astype(float) for v in np.mgrid[0:15, 0:15])
    z = rng.normal(0.0, 0.01, x.size)
    fun, jac = psf._moffat_u_residuals(x, y, z, 2.0)
    for p in (np.array([1.0, 7.1, 6.8, 0.3, 0.25, 0.02, 0.3, 0.01]), np.array([0.9, 7.0, 7.2, 0.2, 0.3, -0.01, 0.05, 0.0])):
        assert np.array_equal(fun(p), (psf._moffat_u(x, y, *p) - z) / 2.0)
        assert np.array_equal(jac(p), psf._moffat_u_jac(x, y, *p) / 2.0)
        assert np.array_equal(jac(p + 1e-3), psf._moffat_u_jac(x, y, *(p + 1e-3)) / 2.0)  # Jacobian first
