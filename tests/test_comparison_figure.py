"""The comparison-star figure's curves: each comparison over the weighted ensemble of the others."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.figures.comparisons import comparison_series, comparisons_figure
from reduce.lightcurve import Fluxes


def _night(n_frames=60, seed=1):
    """Raw Fluxes of a target and 5 comparisons under common clouds; star 4 is variable (1 % sine)."""
    rng = np.random.default_rng(seed)
    t = 2460000.5 + np.arange(n_frames) / 1440
    clouds = 1 - 0.3 * rng.random(n_frames)
    base = np.array([5e4, 8e4, 6e4, 4e4, 7e4, 3e4])[:, None] * clouds
    flux = base * (1 + 1e-3 * rng.standard_normal(base.shape))
    flux[4] *= 1 + 0.01 * np.sin(np.arange(n_frames) / 3)
    flux[2, 7] = np.nan  # a frame without that star
    return Fluxes(t, flux[None], np.full((1, *flux.shape), 50.0), apertures=[4.0], target=0)


def test_ratios_follow_the_leave_one_out_ensemble_and_the_variable_stands_out():
    raw = _night()
    comps, w = [1, 2, 3, 4, 5], [0.3, 0.25, 0.2, 0.15, 0.1]
    s = comparison_series(raw.diff(comps, w))
    assert s["stars"] == comps and np.allclose(s["weights"], w)
    f = raw.fluxes[0]
    n = f / np.nanmedian(f, axis=1, keepdims=True)  # the ensemble averages median-normalised fluxes
    # star 1 over the weighted mean of 2..5, up to its normalisation (frames 10 and 20)
    others = sum(wi * n[c] for wi, c in zip(w[1:], comps[1:])) / sum(w[1:])
    expected = f[1] / others
    assert np.isclose(s["ratio"][0][10] / s["ratio"][0][20], expected[10] / expected[20], rtol=1e-12)
    assert np.nanmedian(s["ratio"][0]) == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(s["ratio"][1][7]) and np.isfinite(s["ratio"][0][7])  # the missing frame: that star only
    # clouds cancel: the quiet comparisons are flat to ~1e-3, the variable one (star 4, a slow
    # sine a point-to-point scatter would miss) is flagged
    assert s["suspect"] == [False, False, False, True, False]
    assert s["rms"][3] > 3 * np.median(s["rms"])
    assert all(p < 3e-3 for i, p in enumerate(s["rms"]) if i != 3)


def test_figure_has_one_labelled_curve_per_comparison():
    raw = _night()
    s = comparison_series(raw.diff([1, 2, 3, 4, 5], [0.3, 0.25, 0.2, 0.15, 0.1]))
    fig = comparisons_figure(s, title="TEST", time_scale="JD UTC")
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert len(ax.lines) - len([ln for ln in ax.lines if len(ln.get_xdata()) == 2]) == 5  # one curve each
    labels = [t.get_text() for t in ax.texts]
    assert labels[0].startswith("#1  w = 0.300") and "(noisy)" in labels[3] and "#4" in labels[3]
