"""What ``reduce fit`` writes beside a product: ``<stem>_fit.json``, ``<stem>_fit.png`` and, for a
transit, the AAVSO exoplanet database report ``<stem>_fit_aavso.txt`` (Exoplanet Watch's format)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.atomic import atomic_write

__all__ = ["write_transit", "write_minimum", "aavso_exoplanet_report"]


def _clean(value):
    """JSON-safe: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: Path, data: dict) -> Path:
    text = json.dumps(_clean(data), indent=2) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path


def write_transit(fit, lc, planet, outdir: Path, *, aavso: bool = True) -> list[Path]:
    """The JSON summary, the figure and the AAVSO report of a transit fit; returns their paths."""
    outdir = Path(outdir)
    stem = lc.stem
    data = {"product": str(lc.path), "planet": planet.name, "software": f"reduce {__version__}",
            "time_scale": "BJD_TDB", "units": {"tc": "d", "duration": "d", "o_c": "d", "o_c_min": "min",
                                               "depth": "fraction of the star's flux"},
            "ephemeris": {"period": planet.period, "t0": planet.t0}, "frames_flagged_left_out": lc.n_flagged,
            **fit.summary()}
    paths = [_write_json(outdir / f"{stem}_fit.json", data), _transit_figure(fit, lc, planet, outdir / f"{stem}_fit.png")]
    if aavso:
        text = aavso_exoplanet_report(fit, lc, planet)
        path = outdir / f"{stem}_fit_aavso.txt"
        with atomic_write(path, "w") as fh:
            fh.write(text)
        paths.append(path)
    return paths


def write_minimum(result, lc, outdir: Path) -> list[Path]:
    """``<stem>_fit.json`` with the time of minimum, and its figure."""
    outdir = Path(outdir)
    data = {"product": str(lc.path), "software": f"reduce {__version__}", "time_scale": "BJD_TDB",
            "units": {"tmin": "d", "tmin_err": "d"}, **result.summary()}
    return [_write_json(outdir / f"{lc.stem}_fit.json", data),
            _minimum_figure(result, lc, outdir / f"{lc.stem}_fit.png")]


def _binned(time, values, width=10.0 / 1440.0):
    k = np.floor((time - time.min()) / width).astype(int)
    n = np.bincount(k)
    ok = n >= 2
    return (np.bincount(k, weights=time)[ok] / n[ok], np.bincount(k, weights=values)[ok] / n[ok])


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


def _transit_figure(fit, lc, planet, path: Path) -> Path:
    """Raw flux with the full model; detrended flux with the transit; residuals; 10-min bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = fit.time
    x = (t - fit.params["tc"][0]) * 24.0  # hours from mid-transit
    transit = fit.model / fit.baseline_flux
    detrended = fit.flux / fit.baseline_flux
    resid = fit.flux - fit.model
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]})
    axes[0].plot(x, fit.flux, ".", color="0.6", ms=3, label="flux")
    axes[0].plot(x, fit.model, "-", color="C1", label="transit x baseline (" + ", ".join(fit.baseline) + ")")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("relative flux")
    axes[1].plot(x, detrended, ".", color="0.6", ms=3)
    bx, by = _binned(t, detrended)
    axes[1].plot((bx - fit.params["tc"][0]) * 24.0, by, "o", color="k", ms=4, label="10-min bins")
    order = np.argsort(x)
    axes[1].plot(x[order], transit[order], "-", color="C0", label="transit")
    rp, tc = fit.params["rp_rs"], fit.params["tc"]
    axes[1].set_title(f"Tc = {tc[0]:.5f} +- {tc[1] * 1440:.2f} min, Rp/Rs = {rp[0]:.4f} +- {rp[1]:.4f}, "
                      f"O-C = {fit.o_c * 1440:+.2f} +- {fit.o_c_err * 1440:.2f} min", fontsize=9)
    axes[1].legend(fontsize=8)
    axes[1].set_ylabel("detrended flux")
    axes[2].plot(x, resid, ".", color="0.6", ms=3)
    rx, ry = _binned(t, resid)
    axes[2].plot((rx - tc[0]) * 24.0, ry, "o", color="k", ms=4)
    axes[2].axhline(0, color="C0")
    axes[2].set_ylabel("residual")
    axes[2].set_xlabel("hours from mid-transit (BJD_TDB)")
    fig.suptitle(f"{planet.name or lc.stem}: {fit.n_frames} frames, RMS {fit.rms * 1e3:.2f} ppt, beta {fit.beta:.2f}",
                 fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _minimum_figure(result, lc, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = (lc.time - result.tmin) * 24.0
    ax.plot(x, lc.flux, ".", color="0.5", ms=3)
    lo, hi = result.window
    ax.axvspan((lo - result.tmin) * 24, (hi - result.tmin) * 24, color="C0", alpha=0.08, label="window used")
    ax.axvline(0, color="C1", label=f"KvW Tmin {result.tmin:.5f} +- {result.tmin_err * 1440:.2f} min")
    ax.axvline((result.poly_tmin - result.tmin) * 24, color="C2", ls="--",
               label=f"polynomial (degree {result.poly_degree}) {result.poly_tmin:.5f} +- {result.poly_tmin_err * 1440:.2f} min")
    ax.set_xlabel("hours from the time of minimum (BJD_TDB)")
    ax.set_ylabel("relative flux")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _pm(value, err, digits):
    return f"{value:.{digits}f} +/- {err:.{digits}f}"


def aavso_exoplanet_report(fit, lc, planet) -> str:
    """The AAVSO exoplanet database report (the format Exoplanet Watch submits): header lines,
    then BJD_TDB, normalised flux, error and airmass of the frames fitted."""
    meta = lc.meta
    star = planet.name[:-2].strip() if planet.name.lower().endswith(" b") else (meta.get("OBJECT") or planet.name)
    p = fit.params
    priors = [f"Period={planet.period}", f"a/R*={planet.a_rs[0]}" + (f" +/- {planet.a_rs[1]}" if planet.a_rs[1] else ""),
              f"inc={planet.inc[0]:.4f}" + (f" +/- {planet.inc[1]}" if planet.inc[1] else ""),
              f"ecc={planet.ecc}", f"Tc={planet.t0}"]
    if planet.u is not None:
        priors += [f"u1={planet.u[0]}", f"u2={planet.u[1]}"]
    results = [f"Tc={_pm(*p['tc'], 6)}", f"Rp/R*={_pm(*p['rp_rs'], 5)}", f"Depth={_pm(*p['depth'], 6)}",
               f"Duration={_pm(*p['duration'], 5)}"]
    am = lc.covariates.get("airmass")
    header = ["#TYPE=EXOPLANET", "#OBSCODE=", "#SECONDARY_OBSCODES=", f"#SOFTWARE=reduce {__version__}",
              "#DELIM=,", "#DATE_TYPE=BJD_TDB", "#OBSTYPE=CCD", f"#STAR_NAME={star}",
              f"#EXOPLANET_NAME={planet.name or star + ' b'}", "#BINNING=1x1",
              f"#EXPOSURE_TIME={meta.get('EXPTIME', 'na')}", f"#FILTER={meta.get('FILTER', 'na')}",
              "#NOTES=differential ensemble photometry; flux normalised, not detrended",
              "#DETREND_PARAMETERS=" + (", ".join(c.upper() for c in fit.baseline if c not in ("t0",)) or "NONE"),
              "#MEASUREMENT_TYPE=Rnflux", "#PRIORS=" + ",".join(priors), "#RESULTS=" + ",".join(results),
              "#DATE,DIFF,ERR,DETREND_1"]
    rows = [f"{t:.8f},{f:.7f},{e:.7f},{a:.7f}" if am is not None else f"{t:.8f},{f:.7f},{e:.7f},na"
            for t, f, e, a in zip(fit.time, fit.flux, fit.err, am if am is not None else fit.time)]
    return "\n".join(header + rows) + "\n"
