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
def test_gaussian_first_gives_the_full_fit(profile, fwhm, beta, monkeypatch):
    """``gaussian_first`` (frames of a night whose reference PSF sits at the Gaussian limit) keeps the
    held-beta fit only where the full path ends too: a Gaussian-like PSF lands on the bound in fewer
    LM runs, a real Moffat (beta 2-3.5) still gets its interior beta, both the same as without."""
    rng = np.random.default_rng(int(10 * fwhm))
    stamp = render((15, 15), [[7.2, 6.9]], 1.0, fwhm=fwhm, sky=0.0, noise=1e-4, rng=rng, profile=profile, beta=beta)
    runs = []
    solve = psf._levenberg_marquardt
    monkeypatch.setattr(psf, "_levenberg_marquardt", lambda *a, **k: runs.append(1) or solve(*a, **k))
    full = psf.fit_moffat(stamp)
    n_full, runs[:] = len(runs), []
    first = psf.fit_moffat(stamp, gaussian_first=True)
    assert full["success"] and first["success"]
    assert (first["fwhm"], first["beta"], first["x"]) == pytest.approx((full["fwhm"], full["beta"], full["x"]), rel=1e-6)
    assert psf.at_gaussian_limit(first) == (profile == "gaussian")
    if profile == "gaussian":
        assert len(runs) == 1 < n_full  # the held fit alone, where the full path needed 2-3 LM runs
