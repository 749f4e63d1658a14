"""The comparison-star figure: each comparison's light curve divided by the weighted ensemble of the
others, one panel per star labelled with its index, weight and robust scatter, so that a
variable or badly measured comparison shows at once (as AstroImageJ users check theirs).

:func:`comparison_series` computes the curves (plain arrays, cheap to hand to the figure helper);
:func:`comparisons_figure` draws them. matplotlib is imported inside the function.
"""
from __future__ import annotations

import numpy as np

__all__ = ["comparison_series", "comparisons_figure", "MAX_PANELS", "SUSPECT"]

MAX_PANELS = 24  # the heaviest comparisons drawn; the others are named in the title
SUSPECT = 3.0    # a panel whose scatter is this many times the comparisons' median is framed in red
MAD_TO_SIGMA = 1.4826


def comparison_series(diff, *, time=None) -> dict:
    """{'time', 'stars', 'weights', 'ratio' (n_comps, n_frames), 'rms', 'suspect'} of the
    comparisons of differential Fluxes ``diff`` (by decreasing weight) in its chosen aperture.

    The ratio is the differential step's own: each comparison's flux over the weighted ensemble of
    the *other* comparisons (leave-one-out, a comparison's single-frame hits left out of the
    ensemble, as :func:`reduce.lightcurve.ensemble.differential` does), median 1. 'rms' is its
    robust scatter (MAD), which a variable comparison (a slow trend that a point-to-point scatter
    would miss) raises as much as a noisy one; 'suspect' marks those more than ``SUSPECT`` times
    the comparisons' median. ``time``: the frames' times (default ``diff.time``, JD UTC)."""
    comps = np.asarray(diff.comparisons, int)
    ratio = np.asarray(diff.fluxes[diff.aperture], float)[comps]
    rms = np.array([_robust_rms(r) for r in ratio])
    typical = np.nanmedian(rms) if np.isfinite(rms).any() else np.nan
    suspect = (rms > SUSPECT * typical) if len(rms) >= 3 and np.isfinite(typical) else np.zeros(len(rms), bool)
    return {"time": np.asarray(diff.time if time is None else time, float), "stars": comps.tolist(),
            "weights": [float(w) for w in diff.weights], "ratio": ratio, "rms": rms.tolist(),
            "suspect": suspect.tolist()}


def _robust_rms(r) -> float:
    """MAD scatter of the finite values (NaN for fewer than 3)."""
    r = r[np.isfinite(r)]
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r)))) if r.size >= 3 else np.nan


def comparisons_figure(series: dict, *, title=None, time_scale="BJD_TDB"):
    """Figure: one panel per comparison (at most ``MAX_PANELS``, the heaviest), its flux over the
    ensemble of the others against time; the label gives its index, weight and robust rms; a
    panel SUSPECT times noisier than the typical comparison is framed in red. Returns a Figure."""
    from matplotlib.figure import Figure

    from .plots import _margins, _time_axis

    n_all = len(series["stars"])
    n = min(n_all, MAX_PANELS)
    cols = 1 if n <= 8 else 2 if n <= 16 else 3
    rows = int(np.ceil(n / cols))
    width, height = 4.6 * cols + 1.2, 1.15 * rows + 1.3
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False,
                        gridspec_kw={"hspace": 0.08, "wspace": 0.25,
                                     **_margins(width, height, left=0.9, right=0.3, top=0.75)})
    t = np.asarray(series["time"], float)
    t0, label = _time_axis(t, time_scale)
    for k, ax in enumerate(axes.ravel(order="F")):
        if k >= n:
            ax.set_visible(False)
            continue
        r = np.asarray(series["ratio"][k], float)
        ax.plot(t - t0, r, ".", ms=3, color="0.3")
        ax.axhline(1.0, color="0.7", lw=0.8, zorder=0)
        rms = series["rms"][k]
        text = f"#{series['stars'][k]}  w = {series['weights'][k]:.3f}" + (
            f"  rms {1000 * rms:.2g} ppt" if np.isfinite(rms) else "")
        bad = bool(series["suspect"][k])
        ax.text(0.01, 0.95, text + ("  (noisy)" if bad else ""), transform=ax.transAxes, va="top",
                fontsize=8, color="#d62728" if bad else "k",
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})
        if bad:
            for spine in ax.spines.values():
                spine.set(color="#d62728", lw=1.5)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.35 * (hi - lo))  # room for the label above the points
        ax.tick_params(labelsize=7)
        if (k + 1) % rows == 0 or k == n - 1:  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(label, fontsize=8)
    fig.text(0.02 / width * 10, 0.5, "comparison / ensemble of the others", rotation=90, va="center",
             fontsize=9)
    head = title or "comparison stars"
    more = f"; {n_all - n} lighter ones not drawn" if n_all > n else ""
    fig.suptitle(f"{head}\neach comparison over the weighted ensemble of the others (weight w){more}",
                 fontsize=10, y=1 - 0.1 / height, va="top")
    return fig
