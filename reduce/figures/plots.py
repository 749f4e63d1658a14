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
_OTHER_COLOR = "#ffd700"


def _time_axis(time, scale="JD UTC"):
    """Time offset (integer day) and label for readable tick values."""
    t0 = float(np.floor(np.nanmin(time))) if np.any(np.isfinite(time)) else 0.0
    return t0, f"{scale} - {t0:.0f}"


def _times(fluxes):
    """(x, scale): BJD_TDB per frame when ``data['bjd_tdb']`` holds it (``reduce run``), else the
    JD UTC ``time``."""
    bjd = fluxes.data.get("bjd_tdb") if hasattr(fluxes, "data") else None
    if bjd is not None and np.all(np.isfinite(np.asarray(bjd, float))):
        return np.asarray(bjd, float), "BJD_TDB"
    return np.asarray(fluxes.time, float), "JD UTC"


def _flagged_x(fluxes, x):
    """Times (on the ``x`` scale) of the frames left out of ``fluxes``: ``meta['flagged_frames']``
    when ``reduce run`` gave them, else ``meta['rejected']`` (JD UTC, shifted like ``x``)."""
    given = fluxes.meta.get("flagged_frames")
    if given is not None:
        return np.asarray(given, float)
    times = np.array([r["time"] for r in fluxes.meta.get("rejected", []) if "time" in r], float)
    shift = float(np.nanmedian(x - np.asarray(fluxes.time, float))) if len(x) else 0.0
    return times + (shift if np.isfinite(shift) else 0.0)


def plot_lightcurve(fluxes, ax=None, *, binned_dt=None, errorbars=False, t0=None, **kwargs):
    """Target light curve (chosen aperture) on ``ax`` (pyplot's current axes when None).

    Points (or error bars), plus ``binned_dt``-day bin means with their errors when given; frames
    left out (flagged or clipped) as red crosses on a strip below the data. Time is BJD_TDB when the
    Fluxes carry it (``reduce run``), else JD UTC, minus ``t0``. Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt
        ax = plt.gca()
    x, scale = _times(fluxes)
    if t0 is None:
        t0, label = _time_axis(x, scale)
    else:
        label = f"{scale} - {t0:.0f}"
    t, f, e = x - t0, fluxes.flux, fluxes.error
    style = {"color": "0.55", "ms": 2.5, "alpha": 0.8, "zorder": 1, **kwargs}
    if errorbars:
        ax.errorbar(t, f, yerr=np.where(np.isfinite(e), e, 0), fmt=".", elinewidth=0.6,
                    label="frames", **style)
    else:
        ax.plot(t, f, ".", label="frames", **style)
    if binned_dt:
        b = fluxes.bin(binned_dt, estimate_error=True)
        bx, _ = _times(b)
        ax.errorbar(bx - t0, b.flux, yerr=np.where(np.isfinite(b.error), b.error, 0),
                    fmt="o", color="k", ms=4, elinewidth=1, capsize=2, zorder=3,
                    label=f"binned {binned_dt * 1440:.3g} min")
    if "binned" not in fluxes.meta:
        _mark_flagged(ax, _flagged_x(fluxes, x) - t0)
    ax.set_xlabel(label)
    ax.set_ylabel("differential flux" if fluxes.comparisons else "flux")
    return ax


def _mark_flagged(ax, xf) -> None:
    """Frames without a flux, as red crosses on a strip added below the lowest point (and its error
    bar), under a dotted line: never at a flux level that a measured point could have, so an
    unflagged outlier cannot pass for a flagged frame."""
    if not len(xf):
        return
    lo, hi = ax.get_ylim()  # autoscaled on the points and error bars drawn so far
    span = hi - lo if np.isfinite(hi - lo) and hi > lo else 1.0
    strip = lo - 0.12 * span
    ax.set_ylim(strip, hi)
    ax.axhline(lo, color="0.6", lw=0.6, ls=":", zorder=0)
    ax.plot(xf, np.full(len(xf), lo - 0.06 * span), "x", color="#d62728", ms=5, mew=1.2, ls="none",
            clip_on=False, zorder=4, label=f"flagged ({len(xf)})")


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


def lightcurve_figure(fluxes, binned_dt=0.005, *, title=None, info=None):
    """Figure: differential light curve (frames + bins, with error bars) over per-frame panels.

    Below the light curve, panels share its time axis (BJD_TDB when known, else JD UTC, minus an
    offset; UT hours on top) for fwhm, sky, airmass and the dx/dy shift (whichever are present).
    Frames left out are red crosses; the legend sits right of the plot, off the data. The title
    names ``info``'s target, date, telescope and filter (keys of ``Group.to_dict``), the aperture
    and the number of comparisons. ``binned_dt`` in days (None: no bins). Returns a Figure.
    """
    from matplotlib.figure import Figure
    panels = _diagnostics(fluxes)
    ratios = [3.0] + [1.0] * len(panels)
    width, height = 9.5, 3.6 + 1.2 * len(panels)
    fig = Figure(figsize=(width, height))
    grid = {"height_ratios": ratios, "hspace": 0.08,
            **_margins(width, height, left=0.9, right=1.6, top=1.0)}
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw=grid, squeeze=False)[:, 0]
    x, scale = _times(fluxes)
    t0, label = _time_axis(x, scale)
    plot_lightcurve(fluxes, axes[0], binned_dt=binned_dt, errorbars=True, t0=t0)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                   borderaxespad=0.0)
    _ut_axis(axes[0], fluxes, x, t0)
    fig.suptitle(title or _lc_title(fluxes, info), fontsize=10, y=1 - 0.12 / height, va="top")
    for ax, (ylabel, series) in zip(axes[1:], panels):
        for values, name in series:
            ax.plot(x - t0, values, ".", ms=2.5, label=name)
        if len(series) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                      borderaxespad=0.0)
        ax.set_ylabel(ylabel, fontsize=9)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    axes[-1].set_xlabel(label)
    return fig


def _ut_axis(ax, fluxes, x, t0) -> None:
    """UT hours (hh:mm, from the first frame's UT midnight) on a secondary axis on top."""
    from matplotlib.ticker import FuncFormatter

    jd = np.asarray(fluxes.time, float)
    ok = np.isfinite(jd) & np.isfinite(x)
    if not ok.any():
        return
    shift = float(np.median(x[ok] - jd[ok]))  # BJD_TDB - JD UTC, constant to < 1 s in a night
    midnight = float(np.floor(jd[ok].min() - 0.5) + 0.5)
    top = ax.secondary_xaxis("top", functions=(lambda v: (v + t0 - shift - midnight) * 24.0,
                                               lambda h: h / 24.0 + midnight + shift - t0))

    def hhmm(h, _pos=None):
        minutes = int(round(h * 60.0)) % (24 * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    top.xaxis.set_major_formatter(FuncFormatter(hhmm))
    top.set_xlabel("UT", fontsize=9)


def _margins(width, height, *, left=0.8, right=0.2, bottom=0.55, top=0.4) -> dict:
    """Subplot margins (figure fractions) from margins in inches: room for labels and title."""
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height,
            "top": 1 - top / height}


def _lc_title(fluxes, info=None):
    """Two lines: what was observed (target, date, telescope, filter), then how it was measured."""
    info = info or {}
    first = [str(info.get("target") or f"star {fluxes.target}")]
    first += [str(info[k]) for k in ("date", "telescope") if info.get(k)]
    if info.get("filter"):
        first.append(f"filter {info['filter']}")
    second = [f"aperture r = {fluxes.aperture_radius:.1f} px",
              f"{len(fluxes.comparisons)} comparison{'s' if len(fluxes.comparisons) != 1 else ''}",
              f"target = star {fluxes.target}"]
    return " | ".join(first) + "\n" + ", ".join(second)


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


def reference_figure(image, target, comparisons, *, radius=None, annulus=None, title=None,
                     filename=None):
    """Figure: zscaled reference frame, every measured star circled and labelled with its index.

    ``image`` is a 2-D array or an object with ``data`` (and ``sources``, e.g. an Image: its
    stars are the measured ones). ``target`` is a source index (int) or float ``(x, y)`` /
    ``{x, y}``; ``comparisons`` integer source indices or a float (n, 2) array of x, y. Circles are
    the aperture to scale: ``radius`` px (default the image aperture, else 2 x fwhm, else 8);
    ``annulus`` = (inner, outer) px draws the sky annulus around the target. The target is red,
    comparisons cyan, other stars yellow; the title names ``filename``.
    """
    from astropy.visualization import ZScaleInterval
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle
    from matplotlib.patheffects import withStroke
    data = np.asarray(getattr(image, "data", image), dtype=float)
    if data.ndim != 2:
        raise ValueError(f"reference_figure needs a 2-D image, got shape {data.shape}")
    sources = getattr(image, "sources", None)
    tpos, tidx = _positions(target, sources)
    tidx = [f"{i} target" if isinstance(target, (int, np.integer)) else "target" for i in tidx]
    cpos, cidx = _positions(comparisons, sources)
    radius = radius or _default_radius(image)
    finite = data[np.isfinite(data)]
    vmin, vmax = ZScaleInterval().get_limits(finite if finite.size else np.zeros(1))
    h, w = data.shape
    width = 7.0
    height = (width - 1.0) * h / w + 1.5
    fig = Figure(figsize=(width, height))
    ax = fig.subplots(gridspec_kw=_margins(width, height, left=0.8, right=0.2, bottom=0.5, top=0.9))
    ax.imshow(data, origin="lower", cmap="Greys_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    outline = [withStroke(linewidth=2.0, foreground="black")]
    marked = {tuple(np.round(p, 3)) for p in np.vstack([tpos, cpos])}
    for i, (x, y) in enumerate(_all_coords(sources)):  # every measured star: its index
        if tuple(np.round((x, y), 3)) in marked:
            continue
        ax.add_patch(Circle((x, y), radius, fill=False, color=_OTHER_COLOR, lw=0.6, alpha=0.8))
        ax.annotate(str(i), (x + 0.75 * radius, y + 0.75 * radius), color=_OTHER_COLOR, fontsize=7,
                    path_effects=outline)
    for (x, y), label in zip(cpos, cidx):
        ax.add_patch(Circle((x, y), radius, fill=False, color=_COMP_COLOR, lw=1.4))
        ax.annotate(label, (x + 0.8 * radius, y + 0.8 * radius), color=_COMP_COLOR,
                    fontsize=9, fontweight="bold", path_effects=outline)
    for (x, y), label in zip(tpos, tidx):
        if annulus is not None:
            for r in annulus:
                ax.add_patch(Circle((x, y), float(r), fill=False, color=_TARGET_COLOR, lw=1.0,
                                    ls=(0, (5, 4))))
        ax.add_patch(Circle((x, y), radius, fill=False, color=_TARGET_COLOR, lw=2.0))
        ax.annotate(label, (x + 0.8 * radius, y + 0.8 * radius), color=_TARGET_COLOR,
                    fontsize=11, fontweight="bold", path_effects=outline)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(-0.5, h - 0.5)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title or _ref_title(filename, len(cpos), radius, annulus), fontsize=9)
    return fig


def _all_coords(sources) -> np.ndarray:
    if sources is None:
        return np.empty((0, 2))
    return np.asarray(getattr(sources, "coords", sources), float).reshape(-1, 2)


def _ref_title(filename, n_comps, radius, annulus) -> str:
    first = f"reference frame {filename}" if filename else "reference frame"
    sky = f", sky annulus {annulus[0]:.1f}-{annulus[1]:.1f} px (dashed)" if annulus is not None else ""
    return (f"{first}\ntarget (red), {n_comps} comparisons (cyan), other stars (yellow), by index"
            f"\naperture r = {radius:.1f} px{sky}")


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
    from ..io.atomic import atomic_write
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    # zlib level 1: several times faster than the default, and no bigger on noisy sky images
    extra = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, **extra)
    return path
