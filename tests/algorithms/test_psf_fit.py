"""The numpy Levenberg-Marquardt PSF fits land where scipy's MINPACK does (same bounds policy)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from reduce.algorithms import psf
from tests.algorithms._stars import render


def _minpack(fun, jac, p0, **_):
    """scipy's ``least_squares(method='lm')`` (MINPACK lmder) in place of the numpy solver."""
    res = least_squares(fun, p0, jac=jac, method="lm", max_nfev=400)
    return res.x, bool(res.success)


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
