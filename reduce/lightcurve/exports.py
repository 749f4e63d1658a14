"""Exports observers submit: the AAVSO extended file format and EXOTIC's pre-reduced input.

Both are built from the light-curve table (:func:`reduce.lightcurve.tables.lightcurve_table`) and keep
only the good frames (flag 0, finite values): a submitted file carries no NaN and no flagged
point. Text is built in memory so the caller writes it atomically with the other outputs.

- AAVSO extended format 1.2 (https://www.aavso.org/aavso-extended-file-format): six ``#``
  parameters (TYPE, OBSCODE, SOFTWARE, DELIM, DATE, OBSTYPE), then one observation per line with
  15 fields: STARID, DATE (JD, mid-exposure), MAGNITUDE, MAGERR, FILTER, TRANS, MTYPE, CNAME,
  CMAG, KNAME, KMAG, AIRMASS, GROUP, CHART, NOTES; ``na`` where a value is absent. reduce's
  magnitudes are differential against the weighted comparison ensemble: MTYPE ``DIF``, not
  transformed. For ensemble photometry the format asks for CNAME ``ENSEMBLE``, CMAG ``na`` and a
  check star (KNAME, KMAG), which is then required: the check star is measured like a comparison
  but never in the ensemble (recipe ``differential: {check: ...}``, else the steadiest star
  outside the ensemble), and KMAG is its magnitude on the same scale as MAG.
- EXOTIC (Exoplanet Watch) pre-reduced file: comma-separated lines ``time, flux, error,
  airmass`` with time in BJD_TDB and normalised flux; lines whose first field is not a number (the
  ``#`` header) are skipped by EXOTIC. Beside it, EXOTIC's initialization file (``inits.json``:
  ``user_info``, ``planetary_parameters``, ``optional_info`` with ``Pre-reduced File:``, its time
  format ``BJD_TDB`` and units ``flux``), so ``exotic --prereduced -i <file>`` runs without
  questions; planetary parameters left ``null`` are taken by EXOTIC from the NASA Exoplanet Archive.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["aavso_text", "exotic_text", "exotic_inits_text", "aavso_filter", "aavso_band", "aavso_starid",
           "CheckStar", "check_magnitudes", "pick_check_star", "cfa_band", "CFA_BANDS", "AAVSO_FIELDS",
           "AAVSO_PARAMETERS", "AAVSO_FILTERS", "AAVSO_CODES", "EXOTIC_COLUMNS"]

AAVSO_PARAMETERS = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE")
AAVSO_FIELDS = ("NAME", "DATE", "MAG", "MERR", "FILT", "TRANS", "MTYPE", "CNAME", "CMAG", "KNAME",
                "KMAG", "AMASS", "GROUP", "CHART", "NOTES")
EXOTIC_COLUMNS = ("BJD_TDB", "Flux", "Error", "Airmass")
#: AAVSO filter codes (https://www.aavso.org/filters) a recipe may name directly
AAVSO_CODES = frozenset({"U", "B", "V", "R", "I", "J", "H", "K", "TG", "TB", "TR", "CV", "CR", "SU", "SG",
                         "SR", "SI", "SZ", "STU", "STV", "STB", "STY", "STHBW", "STHBN", "MA", "MB", "MI",
                         "ZS", "Y", "HA", "HAC", "CBB", "O"})
_SLOAN_WORDS = ("sloan", "sdss", "prime", "'")

#: filter names seen in headers (lower case) -> AAVSO filter code
AAVSO_FILTERS = {
    "u": "U", "b": "B", "v": "V", "r": "R", "rc": "R", "i": "I", "ic": "I", "j": "J", "h": "H",
    "k": "K", "tg": "TG", "tb": "TB", "tr": "TR", "cv": "CV", "cr": "CR", "clear": "CV", "c": "CV",
    "l": "CV", "lum": "CV", "luminance": "CV", "none": "CV", "open": "CV", "u'": "SU", "su": "SU",
    "g": "SG", "g'": "SG", "sg": "SG", "r'": "SR", "sr": "SR", "i'": "SI", "si": "SI",
    "z": "SZ", "z'": "SZ", "sz": "SZ", "ha": "HA", "halpha": "HA",
}


def aavso_filter(name) -> str | None:
    """The AAVSO code of a header filter name (``V`` -> ``V``; Sloan names ``g'``, ``r-Sloan``,
    ``SDSS r``, ``sdss_i``, ``Sloan z'`` -> ``SG``, ``SR``, ``SI``, ``SZ``), or None."""
    key = str(name or "").strip().lower()
    for sep in "-_ .":
        key = key.replace(sep, "")
    sloan = any(w in key for w in _SLOAN_WORDS)
    if sloan:
        for w in _SLOAN_WORDS:
            key = key.replace(w, "")
        return f"S{key.upper()}" if key in ("u", "g", "r", "i", "z") else None
    return AAVSO_FILTERS.get(key)


def aavso_band(given, header_filter, image=None) -> str:
    """The AAVSO code of the export: the recipe's ``filter`` (a code, or a filter name mapped like
    a header's), else the colour channel's band, else the frames' filter; ReduceError when none."""
    from ..model.errors import ReduceError

    if given:
        code = str(given).strip().upper() if str(given).strip().upper() in AAVSO_CODES else aavso_filter(given)
        if code is None:
            raise ReduceError(f"AAVSO export: the recipe's filter {given!r} is not an AAVSO filter code "
                              "(https://www.aavso.org/filters: V, B, R, I, CV, SG, SR, SI, TG, ...)")
        return code
    code = (cfa_band(image) if image is not None else None) or aavso_filter(header_filter)
    if code is None:
        raise ReduceError(f"AAVSO export: the filter {header_filter!r} has no AAVSO code; name it in the "
                          "recipe, e.g. outputs: {aavso: {obscode: ..., filter: CV}} (https://www.aavso.org/filters)")
    return code


#: survey prefixes of exoplanet hosts as VSX spells them (``HATP-32`` -> ``HAT-P-32``)
_SURVEYS = {"hatp": "HAT-P", "hats": "HATS", "wasp": "WASP", "kelt": "KELT", "tres": "TrES", "xo": "XO",
            "qatar": "Qatar", "kps": "KPS", "toi": "TOI", "koi": "KOI", "k2": "K2", "corot": "CoRoT",
            "gj": "GJ", "ngts": "NGTS", "hd": "HD", "kepler": "Kepler", "tic": "TIC", "wts": "WTS"}
_SURVEY_RE = None


def aavso_starid(given, object_name) -> str:
    """The STARID: the recipe's ``starid`` as given, else the frames' OBJECT normalised (spaces and
    underscores tidied, a host's survey name spelled as VSX does, ``HATP-32 b`` -> ``HAT-P-32``)."""
    import re

    if given:
        return str(given).strip()
    name = " ".join(str(object_name or "").replace("_", " ").split())
    global _SURVEY_RE
    if _SURVEY_RE is None:
        _SURVEY_RE = re.compile(r"(hat[- ]?p|" + "|".join(k for k in _SURVEYS if k != "hatp")
                                + r")[- ]?(\d+(?:\.\d+)?)(?:[- ]?([b-h]))?", re.I)
    m = _SURVEY_RE.fullmatch(name)
    if m:
        prefix = _SURVEYS[m.group(1).lower().replace("-", "").replace(" ", "")]
        sep = " " if prefix in ("HD", "GJ", "TIC") else "-"
        return f"{prefix}{sep}{m.group(2)}"
    return name[:30] or "na"


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


class CheckStar:
    """The check star of an ensemble export: its index, KNAME, how it was chosen, and its
    magnitude per light-curve row (``kmag``, NaN where not measured)."""

    def __init__(self, index: int, kmag, how: str):
        self.index, self.kmag, self.how = int(index), np.asarray(kmag, float), how
        self.name = f"star {self.index}"

    @property
    def label(self) -> str:
        """``3 (leave-one-out)``, ``3 (recipe)`` or ``3 (automatic)``: the NOTES' short form."""
        kind = "leave-one-out" if "leave-one-out" in self.how else "recipe" if "recipe" in self.how else "automatic"
        return f"{self.index} ({kind})"


def check_magnitudes(diff, n_rows: int, star: int, offset: float = 0.0) -> np.ndarray:
    """Per light-curve row (``n_rows``), the check ``star``'s magnitude: -2.5 log10 of its
    differential flux against the target's ensemble, plus ``offset`` (its median brightness
    relative to the target's, so that KMAG - MAG is the magnitude difference from the target)."""
    kmag = np.full(n_rows, np.nan)
    idx = np.asarray(diff.data["frame_index"], int)
    flux = np.asarray(diff.fluxes[int(diff.aperture), star, :], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        kmag[idx] = -2.5 * np.log10(np.where(flux > 0, flux, np.nan)) + offset
    return kmag


def _steadiest(diff, stars) -> tuple[int | None, float]:
    """(star, p2p scatter) of the steadiest differential curve among ``stars`` measured on at
    least 80 % of the frames; (None, inf) if none is."""
    from .stats import p2p_scatter

    a, n_frames = int(diff.aperture), diff.fluxes.shape[2]
    best, best_s = None, np.inf
    for s in stars:
        f = np.asarray(diff.fluxes[a, s, :], float)
        ok = np.isfinite(f) & (f > 0)
        if ok.sum() < max(3, 0.8 * n_frames):
            continue
        scatter = float(p2p_scatter(f[ok]))
        if np.isfinite(scatter) and scatter < best_s:
            best, best_s = s, scatter
    return best, best_s


def pick_check_star(diff, *, target: int) -> tuple[int, str]:
    """A check star and why it was chosen: the steadiest star outside the ensemble; when every
    measured star is in it, the steadiest comparison against the ensemble of the others
    (leave-one-out). ReduceError if no star is measured on 80 % of the frames."""
    from ..model.errors import ReduceError

    comps = [int(c) for c in diff.comparisons]
    others = [s for s in range(diff.fluxes.shape[1]) if s != target and s not in comps]
    best, scatter = _steadiest(diff, others)
    if best is not None:
        return best, f"chosen automatically: the steadiest star outside the ensemble (p2p scatter {scatter:.4f})"
    best, scatter = _steadiest(diff, comps)
    if best is not None:
        return best, ("chosen automatically, leave-one-out: every measured star is in the ensemble, so "
                      f"the steadiest comparison against the ensemble of the others (p2p scatter {scatter:.4f}); "
                      "name one outside it with differential: {check: {x: .., y: ..}}")
    raise ReduceError("AAVSO export: ensemble photometry needs a check star (KNAME/KMAG) and no star is "
                      "measured on 80 % of the frames; name one with differential: {check: {x: .., y: ..}}")


def aavso_text(table, *, obscode: str, starid: str, filter: str, chart: str | None = None,
               software: str = "reduce", notes: str | None = None, check: CheckStar | None = None) -> str:
    """The AAVSO extended-format file of the good frames (differential magnitudes against the
    ensemble, JD mid-exposure; with the ``check`` star's KNAME/KMAG, which ensemble photometry
    requires; KMAG ``na`` on a frame where the check star has no measurement)."""
    ok = _good(table, ("time", "flux", "flux_err"))
    kmag = check.kmag[ok] if check is not None else np.full(int(ok.sum()), np.nan)
    flux = np.asarray(table["flux"], float)[ok]
    err = np.asarray(table["flux_err"], float)[ok]
    mag = -2.5 * np.log10(flux)
    merr = np.minimum(2.5 / math.log(10) * err / flux, 9.999)
    airmass = np.asarray(table["airmass"], float)[ok]
    lines = ["#TYPE=EXTENDED", f"#OBSCODE={obscode}", f"#SOFTWARE={_short(software, 255)}",
             "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD", "#" + ",".join(AAVSO_FIELDS)]
    name, chart_id = _short(starid, 30), _short(chart or "na", 20)
    note = _short(notes or "na", 1000)
    kname = _short(check.name, 20) if check is not None else "na"
    for t, m, e, x, k in zip(np.asarray(table["time"], float)[ok], mag, merr, airmass, kmag):
        am = f"{x:.4f}" if np.isfinite(x) else "na"
        km = f"{k:.4f}" if np.isfinite(k) else "na"
        lines.append(",".join([name, f"{t:.6f}", f"{m:.4f}", f"{e:.4f}", filter, "NO", "DIF",
                               "ENSEMBLE", "na", kname, km, am, "na", chart_id, note]))
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


def _sexagesimal(deg: float, hours: bool) -> str:
    """``HH:MM:SS.ss`` (RA, ``hours``) or ``+DD:MM:SS.s`` (Dec), as EXOTIC's inits ask."""
    value = deg / 15.0 if hours else deg
    sign = "-" if value < 0 else "+"
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    sec = (value - d - m / 60) * 3600
    if hours:
        return f"{d:02d}:{m:02d}:{sec:05.2f}"
    return f"{sign}{d:02d}:{m:02d}:{sec:04.1f}"


def _signed(value) -> str | None:
    return None if value is None or not np.isfinite(value) else f"{float(value):+.6f}"


def exotic_inits_text(*, data_file: str, save_dir: str, planet: str, host: str, ra: float | None,
                      dec: float | None, date_jd: float, site, filter_code: str | None,
                      exposure: float | None, obscode: str | None = None, notes: str = "") -> str:
    """EXOTIC's initialization file (JSON) for the pre-reduced ``data_file``: observer, site, date,
    filter and exposure from the night; target RA/Dec; the planet's fit parameters ``null`` (EXOTIC
    takes them from the NASA Exoplanet Archive by ``Planet Name``)."""
    import json

    from astropy.time import Time

    lat, lon, elev = site if site is not None else (None, None, None)
    date = Time(date_jd, format="jd", scale="utc").datetime.strftime("%d-%B-%Y") if np.isfinite(date_jd) else None
    planet_keys = ("Orbital Period (days)", "Orbital Period Uncertainty", "Published Mid-Transit Time (BJD-UTC)",
                   "Mid-Transit Time Uncertainty", "Ratio of Planet to Stellar Radius (Rp/Rs)",
                   "Ratio of Planet to Stellar Radius (Rp/Rs) Uncertainty", "Ratio of Distance to Stellar Radius (a/Rs)",
                   "Ratio of Distance to Stellar Radius (a/Rs) Uncertainty", "Orbital Inclination (deg)",
                   "Orbital Inclination (deg) Uncertainty", "Orbital Eccentricity (0 if null)",
                   "Star Effective Temperature (K)", "Star Effective Temperature (+) Uncertainty",
                   "Star Effective Temperature (-) Uncertainty", "Star Metallicity ([FE/H])",
                   "Star Metallicity (+) Uncertainty", "Star Metallicity (-) Uncertainty",
                   "Star Surface Gravity (log(g))", "Star Surface Gravity (+) Uncertainty",
                   "Star Surface Gravity (-) Uncertainty")
    inits = {
        "inits_guide": {
            "Title": "EXOTIC's Initialization File, written by reduce for its pre-reduced light curve",
            "Comment": "Run: exotic --prereduced -i <this file>. Planetary parameters left null are taken "
                       "from the NASA Exoplanet Archive for 'Planet Name'; check that name.",
        },
        "user_info": {
            "Directory with FITS files": None,
            "Directory to Save Plots": save_dir,
            "Directory of Flats": None, "Directory of Darks": None, "Directory of Biases": None,
            "AAVSO Observer Code (N/A if none)": obscode or "N/A",  # EXOTIC's older and newer labels
            "AAVSO Observer Code (blank if none)": obscode or "",
            "Secondary Observer Codes (N/A if none)": "N/A", "Secondary Observer Codes (blank if none)": "",
            "Observation date": date,
            "Obs. Latitude": _signed(lat), "Obs. Longitude": _signed(lon),
            "Obs. Elevation (meters)": None if elev is None or not np.isfinite(elev) else float(elev),
            "Camera Type (CCD or DSLR)": "CCD", "Pixel Binning": "1x1",
            "Filter Name (aavso.org/filters)": filter_code,
            "Observing Notes": notes,
            "Plate Solution? (y/n)": "n", "Align Images? (y/n)": "n",
            "Add Comparison Stars from AAVSO? (y/n)": "n",
            "Target Star X & Y Pixel": None, "Comparison Star(s) X & Y Pixel": None,
        },
        "planetary_parameters": {
            "Target Star RA": _sexagesimal(ra, True) if ra is not None and np.isfinite(ra) else None,
            "Target Star Dec": _sexagesimal(dec, False) if dec is not None and np.isfinite(dec) else None,
            "Planet Name": planet, "Host Star Name": host, **{k: None for k in planet_keys},
        },
        "optional_info": {
            "Pre-reduced File:": data_file,
            "Pre-reduced File Time Format (BJD_TDB, JD_UTC, MJD_UTC)": "BJD_TDB",
            "Pre-reduced File Units of Flux (flux, magnitude, millimagnitude)": "flux",
            "Filter Minimum Wavelength (nm)": None, "Filter Maximum Wavelength (nm)": None,
            "Pixel Scale (Ex: 5.21 arcsecs/pixel)": None,
            "Exposure Time (s)": None if exposure is None or not np.isfinite(exposure) else float(exposure),
        },
    }
    return json.dumps(inits, indent=4) + "\n"
