"""The light-curve figure: flagged-frame markers below every measured point (an unflagged outlier
cannot pass for one), and the airmass panel kept when the airmass was computed, not read."""
from __future__ import annotations

import numpy as np
from astropy.table import Table

from reduce.figures import plots
from reduce.run.outputs import _table_fluxes

from .lightcurve.test_ensemble import synthetic


def _ax_flagged(ax):
    return next(ln for ln in ax.lines if ln.get_label().startswith("flagged"))


def test_flagged_markers_are_below_every_point_even_a_low_outlier():
    fl, _ = synthetic(34, n_frames=120)
    d = fl.mask(np.arange(120) % 40 != 7, reason="test").autodiff()
    fluxes = np.array(d.fluxes, float)  # (aperture, star, frame)
    f = fluxes[d.aperture, d.target]
    fluxes[:, d.target, 10] = np.nanmin(f) - 8 * np.nanstd(f)  # an unflagged outlier, far down
    d = d._replace(fluxes=fluxes)
    assert d.flux[10] < np.nanmin(np.delete(d.flux, 10))
    fig = plots.lightcurve_figure(d, binned_dt=0.01)
    ax = fig.axes[0]
    marks = _ax_flagged(ax)
    assert len(marks.get_xdata()) == 3
    lowest = np.nanmin(np.asarray(d.flux) - np.nan_to_num(np.asarray(d.error)))
    xy = np.c_[np.asarray(marks.get_xdata(), float), np.asarray(marks.get_ydata(), float)]
    shown = marks.get_transform().transform(xy)[:, 1]  # in display pixels, whatever the transform
    floor = ax.transData.transform([[0.0, lowest]])[0, 1]
    bottom = ax.transAxes.transform([[0.0, 0.0]])[0, 1]
    assert np.all(shown < floor), "a flagged marker sits at a flux a measured point can have"
    assert np.all(shown > bottom)  # on the axes, in their own strip below the data
    height = ax.transAxes.transform([[0.0, 1.0]])[0, 1] - bottom
    assert (floor - shown.max()) / height > 0.05, "the markers touch the data: a strip of their own"
    lines = [ln for ln in ax.lines if ln.get_linestyle() == ":"]  # the strip's edge, between the two
    edge = [ax.transData.transform([[0.0, ln.get_ydata()[0]]])[0, 1] for ln in lines]
    assert any(shown.max() < e < floor for e in edge)


def test_figure_keeps_the_airmass_panel_when_the_airmass_was_computed():
    fl, _ = synthetic(31, n_frames=60)
    d = fl.autodiff()
    n = len(d.time)
    header_less = {k: v for k, v in d.data.items() if k != "airmass"}
    d = d._replace(data={**header_less, "frame_index": np.arange(n)})
    assert d.get("airmass") is None
    computed = 1.2 + 0.3 * np.linspace(0, 1, n)  # as full_table computes it from RA/Dec and site
    table = Table({"bjd_tdb": np.asarray(d.time) + 0.0008, "airmass": computed, "flag": np.zeros(n, int)})
    plotted = _table_fluxes(d, table)
    assert np.allclose(plotted.get("airmass"), computed)
    fig = plots.lightcurve_figure(plotted, binned_dt=None)
    assert "airmass" in [ax.get_ylabel() for ax in fig.axes]
    without = plots.lightcurve_figure(d, binned_dt=None)
    assert "airmass" not in [ax.get_ylabel() for ax in without.axes]
