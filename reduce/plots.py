"""Figures: light curve with per-frame diagnostics, reference frame with the chosen stars.

matplotlib is imported inside the functions (``import reduce`` stays fast). Figures are built with
``matplotlib.figure.Figure`` directly, not pyplot, so they need no display, touch no global state
and are safe in worker processes; only ``plot_lightcurve(ax=None)`` (interactive use) uses pyplot.
Margins are fixed in inches rather than computed by the constrained-layout engine, and PNGs are
written with fast zlib compression: together about 3x faster to save, which ``reduce run`` feels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["lightcurve_figure", "reference_figure", "save_figure", "plot_lightcurve"]

_TARGET_COLOR = "#ff3b3b"
_COMP_COLOR = "#00d5ff"


def _time_axis(time):
    """Time offset (integer JD) and label for readable tick values."""
    t0 = float(np.floor(np.nanmin(time))) if np.any(np.isfinite(time)) else 0.0
    return t0, f"JD - {t0:.0f}"


def plot_lightcurve(fluxes, ax=None, *, binned_dt=None, errorbars=False, t0=None, **kwargs):
    """Target light curve (chosen aperture) on ``ax`` (pyplot's current axes when None).

    Points (or error bars), plus ``binned_dt``-day bin means with their errors when given.
    Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt
        ax = plt.gca()
    if t0 is None:
        t0, label = _time_axis(fluxes.time)
    else:
        label = f"JD - {t0:.0f}"
    t, f, e = fluxes.time - t0, fluxes.flux, fluxes.error
    style = {"color": "0.55", "ms": 2.5, "alpha": 0.8, "zorder": 1, **kwargs}
    if errorbars:
        ax.errorbar(t, f, yerr=np.where(np.isfinite(e), e, 0), fmt=".", elinewidth=0.6,
                    label="frames", **style)
    else:
        ax.plot(t, f, ".", label="frames", **style)
    if binned_dt:
        b = fluxes.bin(binned_dt, estimate_error=True)
        ax.errorbar(b.time - t0, b.flux, yerr=np.where(np.isfinite(b.error), b.error, 0),
                    fmt="o", color="k", ms=4, elinewidth=1, capsize=2, zorder=3,
                    label=f"binned {binned_dt * 1440:.3g} min")
    ax.set_xlabel(label)
    ax.set_ylabel("differential flux" if fluxes.comparisons else "flux")
    return ax


def _diagnostics(fluxes):
    """(label, [(series, name)]) for each per-frame quantity present."""
    panels = []
    for name, label in (("fwhm", "FWHM (px)"), ("sky", "sky (ADU)"), ("airmass", "airmass")):
        v = fluxes.get(name)
        if v is not None and np.any(np.isfinite(v)):
            panels.append((label, [(np.asarray(v, float), name)]))
    shifts = [(np.asarray(fluxes.get(n), float), n) for n in ("dx", "dy")
              if fluxes.get(n) is not None and np.any(np.isfinite(fluxes.get(n)))]
    if shifts:
        panels.append(("shift (px)", shifts))
    return panels


def lightcurve_figure(fluxes, binned_dt=0.005, *, title=None):
    """Figure: differential light curve (frames + bins, with error bars) over per-frame panels.

    Below the light curve, panels share its time axis for fwhm, sky, airmass and the dx/dy shift
    (whichever are present). ``binned_dt`` in days (None: no bins). Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure
    panels = _diagnostics(fluxes)
    ratios = [3.0] + [1.0] * len(panels)
    width, height = 8.0, 3.2 + 1.2 * len(panels)
    fig = Figure(figsize=(width, height))
    grid = {"height_ratios": ratios, "hspace": 0.08, **_margins(width, height, left=0.9, right=0.15)}
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw=grid, squeeze=False)[:, 0]
    t0, label = _time_axis(fluxes.time)
    plot_lightcurve(fluxes, axes[0], binned_dt=binned_dt, errorbars=True, t0=t0)
    axes[0].legend(loc="best", fontsize=8, frameon=False)
    axes[0].set_title(title or _lc_title(fluxes), fontsize=10)
    for ax, (ylabel, series) in zip(axes[1:], panels):
        for values, name in series:
            ax.plot(fluxes.time - t0, values, ".", ms=2.5, label=name)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=7, frameon=False, ncol=len(series))
        ax.set_ylabel(ylabel, fontsize=9)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    axes[-1].set_xlabel(label)
    return fig


def _margins(width, height, *, left=0.8, right=0.2, bottom=0.55, top=0.4) -> dict:
    """Subplot margins (figure fractions) from margins in inches: room for labels and title."""
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height,
            "top": 1 - top / height}


def _lc_title(fluxes):
    parts = [f"target {fluxes.target}"]
    if fluxes.comparisons:
        parts.append(f"{len(fluxes.comparisons)} comparisons")
    parts.append(f"aperture {fluxes.aperture} (r = {fluxes.aperture_radius:.1f} px)")
    return ", ".join(parts)


def _positions(spec, sources):
    """((n, 2) x, y, labels) from source indices (integers) or coordinates (floats or {x, y})."""
    if spec is None:
        return np.empty((0, 2)), []
    if isinstance(spec, dict):
        return np.array([[float(spec["x"]), float(spec["y"])]]), [""]
    arr = np.asarray(spec)
    if arr.size == 0:
        return np.empty((0, 2)), []
    if arr.ndim <= 1 and np.issubdtype(arr.dtype, np.integer):
        if sources is None:
            raise ValueError("star indices need an image with sources (or give float x, y)")
        idx = np.atleast_1d(arr)
        coords = np.asarray(getattr(sources, "coords", sources), float).reshape(-1, 2)
        if np.any((idx < 0) | (idx >= len(coords))):
            raise ValueError(f"star index out of range for {len(coords)} sources")
        return coords[idx], [str(int(i)) for i in idx]
    coords = np.asarray(arr, float).reshape(-1, 2)
    return coords, [str(i) for i in range(len(coords))]


def reference_figure(image, target, comparisons, *, radius=None, title=None):
    """Figure: zscaled reference frame with the target (red) and comparisons (blue) circled and labelled.

    ``image`` is a 2-D array or an object with ``data`` (and ``sources`` for index lookups, e.g.
    ``reduce.image.Image``). ``target`` is a source index (int) or float ``(x, y)`` / ``{x, y}``;
    ``comparisons`` integer source indices or a float (n, 2) array of x, y. ``radius`` (pixels) of the circles
    defaults to the image aperture or 2 x fwhm when known, else 8.
    """
    from astropy.visualization import ZScaleInterval
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle
    from matplotlib.patheffects import withStroke
    data = np.asarray(getattr(image, "data", image), dtype=float)
    if data.ndim != 2:
        raise ValueError(f"reference_figure needs a 2-D image, got shape {data.shape}")
    sources = getattr(image, "sources", None)
    tpos, _ = _positions(target, sources)
    cpos, cidx = _positions(comparisons, sources)
    radius = radius or _default_radius(image)
    finite = data[np.isfinite(data)]
    vmin, vmax = ZScaleInterval().get_limits(finite if finite.size else np.zeros(1))
    h, w = data.shape
    width = 7.0
    height = (width - 1.0) * h / w + 1.0
    fig = Figure(figsize=(width, height))
    ax = fig.subplots(gridspec_kw=_margins(width, height, left=0.8, right=0.2, bottom=0.5, top=0.4))
    ax.imshow(data, origin="lower", cmap="Greys_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    outline = [withStroke(linewidth=2.5, foreground="black")]
    for (x, y), label in zip(cpos, cidx):
        ax.add_patch(Circle((x, y), radius, fill=False, color=_COMP_COLOR, lw=1.4))
        ax.annotate(f"C{label}", (x + 0.8 * radius, y + 0.8 * radius), color=_COMP_COLOR,
                    fontsize=9, fontweight="bold", path_effects=outline)
    for x, y in tpos:
        ax.add_patch(Circle((x, y), radius, fill=False, color=_TARGET_COLOR, lw=2.0))
        ax.annotate("T", (x + 0.8 * radius, y + 0.8 * radius), color=_TARGET_COLOR, fontsize=11,
                    fontweight="bold", path_effects=outline)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(-0.5, h - 0.5)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title or f"reference: target T (red), {len(cpos)} comparisons C<index> (cyan)",
                 fontsize=10)
    return fig


def _default_radius(image):
    ap = getattr(image, "aperture", None)
    if isinstance(ap, (int, float)) and ap > 0:
        return float(ap)
    fwhm = getattr(image, "fwhm", None)
    if isinstance(fwhm, (int, float)) and np.isfinite(fwhm) and fwhm > 0:
        return 2.0 * float(fwhm)
    return 8.0


def save_figure(fig, path, *, dpi=110):
    """Save ``fig`` to ``path`` atomically (``reduce.io.atomic``: temp file + fsync + os.replace).

    The format follows the extension (png by default). A missing folder raises ``OutputError``.
    """
    from .io.atomic import atomic_write
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    # zlib level 1: several times faster than the default, and no bigger on noisy sky images
    extra = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, **extra)
    return path
