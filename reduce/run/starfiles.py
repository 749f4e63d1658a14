"""The per-star products AstroImageJ users look for: a DS9 region file of the measured stars and a
plain per-star measurement table, built as text so they are written atomically with the others.

Pixel conventions: reduce's positions (``--target X,Y``, the tables, the STARS HDU) are 0-based,
pixel centres on integers (numpy, photutils, sep); DS9, AstroImageJ and the FITS standard count
from 1. The region file is in DS9's ``image`` system, so its centres are reduce's positions + 1.
"""
from __future__ import annotations

import io

import numpy as np

from ..blocks.bayer import grid_scale, grid_to_file

__all__ = ["region_text", "stars_csv_text", "star_roles"]

_COLOURS = {"target": "red", "comparison": "cyan", "check": "yellow"}
STARS_COLUMNS = ("time", "bjd_tdb", "file", "star", "role", "x", "y", "flux", "flux_err", "sky", "peak")


def star_roles(n: int, target: int, comparisons, check=None) -> list[str]:
    """'target', 'comparison', 'check' or '' for each of ``n`` stars."""
    roles = [""] * n
    for c in comparisons:
        roles[int(c)] = "comparison"
    if check is not None:
        roles[int(check)] = "check"
    roles[int(target)] = "target"
    return roles


def region_text(ref, target: int, comparisons, weights, radius: float, *, check=None, title="") -> str:
    """DS9 region file (``image`` coordinates, 1-based) of the target, the comparisons (labelled with
    their weight) and the check star, as circles of the chosen aperture ``radius`` (measured-grid
    pixels) centred on their positions on the reference frame (``ref``)."""
    xy = np.column_stack(grid_to_file(ref, ref.sources.x, ref.sources.y)) + 1.0  # DS9 is 1-based
    r = float(radius) * grid_scale(ref)
    name = getattr(ref, "path", None)
    lines = ["# Region file format: DS9 version 4.1",
             f"# reduce: {title} target, comparisons{' and check star' if check is not None else ''}, "
             f"aperture r = {r:.2f} px",
             f"# positions on the reference frame {_name(name)}; image pixels, 1-based (DS9, AstroImageJ, "
             "FITS): reduce's 0-based positions + 1",
             'global color=green font="helvetica 10 normal roman" select=1 edit=1 move=1 delete=1 '
             "include=1 source=1",
             "image"]

    def circle(i: int, role: str, label: str) -> str:
        x, y = xy[int(i)]
        return f"circle({x:.3f},{y:.3f},{r:.3f}) # color={_COLOURS[role]} text={{{label}}}"

    lines.append(circle(target, "target", f"T{int(target)}"))
    for c, w in zip(comparisons, weights):
        lines.append(circle(c, "comparison", f"C{int(c)} w={float(w):.3f}"))
    if check is not None:
        lines.append(circle(check, "check", f"K{int(check)}"))
    return "\n".join(lines) + "\n"


def stars_csv_text(raw, aperture: int, ref, *, bjd_tdb=None, comparisons=(), check=None) -> str:
    """One row per frame per star (frame-major), in the chosen ``aperture``: JD UTC (mid-exposure,
    the product's ``time``), BJD_TDB, file, star index, role, x, y (0-based file pixels on that
    frame), background-subtracted flux and its error (ADU), sky (ADU per pixel), peak (ADU)."""
    n_ap, n_stars, n = raw.fluxes.shape
    nan = np.full((n_stars, n), np.nan)
    x, y = (np.asarray(raw.data.get(k, nan), float) for k in ("x", "y"))
    x, y = grid_to_file(ref, x, y)
    sky = np.asarray(raw.data.get("bkg", nan), float)
    peak = np.asarray(raw.data.get("peak", nan), float)
    if sky.ndim == 1:  # one sky per frame
        sky = np.broadcast_to(sky, (n_stars, n))
    flux, err = raw.fluxes[aperture], raw.errors[aperture]
    bjd = np.full(n, np.nan) if bjd_tdb is None else np.asarray(bjd_tdb, float)
    roles = star_roles(n_stars, raw.target, comparisons, check)
    files = [str(f).replace("\\", "/").rsplit("/", 1)[-1] for f in raw.files]
    out = io.StringIO()
    out.write(",".join(STARS_COLUMNS) + "\n")
    for f in range(n):
        for s in range(n_stars):
            out.write(f"{_g(raw.time[f], 15)},{_g(bjd[f], 15)},{_csv(files[f])},{s},{roles[s]},"
                      f"{_g(x[s, f], 8)},{_g(y[s, f], 8)},{_g(flux[s, f], 10)},{_g(err[s, f], 6)},"
                      f"{_g(sky[s, f], 8)},{_g(peak[s, f], 8)}\n")
    return out.getvalue()


def _g(v, digits: int) -> str:
    v = float(v)
    return f"{v:.{digits}g}" if np.isfinite(v) else "nan"


def _csv(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def _name(path) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1] if path else "?"
