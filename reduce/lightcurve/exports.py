"""Exports observers submit: the AAVSO extended file format and EXOTIC's pre-reduced input.

Both are built from the light-curve table (:func:`reduce.lightcurve.tables.lightcurve_table`) and keep
only the good frames (flag 0, finite values): a submitted file carries no NaN and no flagged
point. Text is built in memory so the caller writes it atomically with the other outputs.

- AAVSO extended format 1.2 (https://www.aavso.org/aavso-extended-file-format): six ``#``
  parameters (TYPE, OBSCODE, SOFTWARE, DELIM, DATE, OBSTYPE), then one observation per line with
  15 fields: STARID, DATE (JD, mid-exposure), MAGNITUDE, MAGERR, FILTER, TRANS, MTYPE, CNAME,
  CMAG, KNAME, KMAG, AIRMASS, GROUP, CHART, NOTES; ``na`` where a value is absent. reduce's
  magnitudes are differential against the weighted comparison ensemble: MTYPE ``DIF``, CNAME
  ``ENSEMBLE``, not transformed.
- EXOTIC (Exoplanet Watch) pre-reduced file: comma-separated lines ``time, flux, error,
  airmass`` with time in BJD_TDB and normalised flux (answer ``BJD_TDB`` and ``flux`` to EXOTIC's
  questions); lines whose first field is not a number (the ``#`` header) are skipped by EXOTIC.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["aavso_text", "exotic_text", "aavso_filter", "cfa_band", "CFA_BANDS", "AAVSO_FIELDS", "AAVSO_PARAMETERS",
           "AAVSO_FILTERS", "EXOTIC_COLUMNS"]

AAVSO_PARAMETERS = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE")
AAVSO_FIELDS = ("NAME", "DATE", "MAG", "MERR", "FILT", "TRANS", "MTYPE", "CNAME", "CMAG", "KNAME",
                "KMAG", "AMASS", "GROUP", "CHART", "NOTES")
EXOTIC_COLUMNS = ("BJD_TDB", "Flux", "Error", "Airmass")

#: filter names seen in headers (lower case) -> AAVSO filter code
AAVSO_FILTERS = {
    "u": "U", "b": "B", "v": "V", "r": "R", "rc": "R", "i": "I", "ic": "I", "j": "J", "h": "H",
    "k": "K", "tg": "TG", "tb": "TB", "tr": "TR", "cv": "CV", "cr": "CR", "clear": "CV", "c": "CV",
    "l": "CV", "lum": "CV", "luminance": "CV", "none": "CV", "open": "CV", "u'": "SU", "su": "SU",
    "g": "SG", "g'": "SG", "sg": "SG", "r'": "SR", "sr": "SR", "i'": "SI", "si": "SI",
    "z": "SZ", "z'": "SZ", "sz": "SZ", "ha": "HA", "halpha": "HA",
}


def aavso_filter(name) -> str | None:
    """The AAVSO code of a header filter name (``V`` -> ``V``, ``g'`` -> ``SG``), or None."""
    key = str(name or "").strip().lower().replace("-", "").replace("_", "")
    return AAVSO_FILTERS.get(key)


#: AAVSO band of one channel of a colour (Bayer) sensor: "TB/TG/TR: Blue/Green/Red filter from the
#: RGB set (Tri-Color)", AAVSO's band list (https://www.aavso.org/data/ql/bandhelp.shtml); "If
#: you're using a DSLR or one-shot color CMOS (OSC) camera, photometric measurements are reported
#: as TG, TB, and TR" (AAVSO forum, https://aavso.org/node/88621). AAVSO names no band for the sum
#: of the four pixels (a superpixel): it is not "CV" either (unfiltered with a V zero point is a
#: clear filter on a monochrome sensor), so that export stops and asks for a channel.
CFA_BANDS = {"R": "TR", "G": "TG", "B": "TB"}


def cfa_band(image) -> str | None:
    """The AAVSO band of frames measured on one colour channel (TR, TG, TB); None for a mono frame.

    Raises ReduceError for superpixels, whose band AAVSO does not define."""
    info = getattr(image, "computed", {}).get("cfa")
    if not info:
        return None
    if info["mode"] in CFA_BANDS:
        return CFA_BANDS[info["mode"]]
    from ..model.errors import ReduceError

    raise ReduceError(
        f"AAVSO export: these colour-sensor frames ({info['pattern']}) were measured on 2x2 superpixels "
        "(R+G+G+B), a band AAVSO does not define; AAVSO takes one channel of a colour camera as TG, TB "
        "or TR: measure the green channel with `bayer_channel: G` in the config (or `- BayerBin: "
        "{channel: G}` after Trim in the recipe) to report TG, or name the band yourself with "
        "outputs: {aavso: {obscode: ..., filter: ...}}")


def _good(table, columns) -> np.ndarray:
    """Rows with flag 0 and finite values in ``columns``."""
    ok = np.asarray(table["flag"]) == 0
    for c in columns:
        ok &= np.isfinite(np.asarray(table[c], float))
    return ok & (np.asarray(table["flux"], float) > 0)


def _short(text: str, n: int) -> str:
    return str(text).replace(",", " ").replace("#", " ").strip()[:n] or "na"


def aavso_text(table, *, obscode: str, starid: str, filter: str, chart: str | None = None,
               software: str = "reduce", notes: str | None = None) -> str:
    """The AAVSO extended-format file of the good frames (differential magnitudes, JD mid-exposure)."""
    ok = _good(table, ("time", "flux", "flux_err"))
    flux = np.asarray(table["flux"], float)[ok]
    err = np.asarray(table["flux_err"], float)[ok]
    mag = -2.5 * np.log10(flux)
    merr = np.minimum(2.5 / math.log(10) * err / flux, 9.999)
    airmass = np.asarray(table["airmass"], float)[ok]
    lines = ["#TYPE=EXTENDED", f"#OBSCODE={obscode}", f"#SOFTWARE={_short(software, 255)}",
             "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD", "#" + ",".join(AAVSO_FIELDS)]
    name, chart_id = _short(starid, 30), _short(chart or "na", 20)
    note = _short(notes or "na", 1000)
    for t, m, e, x in zip(np.asarray(table["time"], float)[ok], mag, merr, airmass):
        am = f"{x:.4f}" if np.isfinite(x) else "na"
        lines.append(",".join([name, f"{t:.6f}", f"{m:.4f}", f"{e:.4f}", filter, "NO", "DIF",
                               "ENSEMBLE", "na", "na", "na", am, "na", chart_id, note]))
    return "\n".join(lines) + "\n"


def exotic_text(table, *, target: str | None = None) -> str:
    """EXOTIC's pre-reduced input: ``BJD_TDB,flux,error,airmass`` lines of the good frames."""
    ok = _good(table, ("bjd_tdb", "flux", "flux_err", "airmass"))
    head = ["# EXOTIC pre-reduced light curve written by reduce" + (f" for {_short(target, 60)}" if target else ""),
            "# time format: BJD_TDB; units of flux: flux (normalised)",
            "#" + ",".join(EXOTIC_COLUMNS)]
    cols = [np.asarray(table[c], float)[ok] for c in ("bjd_tdb", "flux", "flux_err", "airmass")]
    rows = [f"{t:.7f},{f:.7f},{e:.7f},{a:.5f}" for t, f, e, a in zip(*cols)]
    return "\n".join(head + rows) + "\n"
