"""The recipe's non-block sections: reference frame, target (see ``targets``), differential, outputs.

Each ``parse_*`` takes the YAML value and a ``report(path, message, hint)`` callback, reports every
problem it finds and returns a (frozen) spec with defaults filled in. ``target_from_string`` and
``reference_from_string`` read the command-line override forms (``--target 300,310``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ._yaml import close_match_hint
from .coerce import finite
from .targets import TargetSpec, parse_target, target_from_string

__all__ = [
    "ReferenceSpec", "TargetSpec", "DifferentialSpec", "OutputsSpec", "AavsoSpec",
    "parse_reference", "parse_target", "parse_differential", "parse_outputs",
    "target_from_string", "reference_from_string", "REFERENCE_METHODS", "MISSING_CALIBRATION",
]

Report = Callable[..., None]
REFERENCE_METHODS = ("first", "middle", "best")
MISSING_CALIBRATION = ("warn", "fail")
DEFAULT_SAMPLE = 7
MAX_LIGHT_LOSS = 0.8  # as reduce.lightcurve.guards (not imported: validating a recipe stays light)
GUARD = {"sigma": 5.0, "window": 15}


@dataclass(frozen=True)
class ReferenceSpec:
    """How the reference frame is chosen: ``method`` first | middle | best | index.

    ``best`` picks the sharpest (smallest FWHM, most sources) of ``sample`` frames spread evenly
    over the group; ``index`` uses frame ``index`` (0-based, in time order).
    """

    method: str = "best"
    index: int | None = None
    sample: int = DEFAULT_SAMPLE

    def __str__(self) -> str:
        if self.method == "index":
            return f"frame {self.index}"
        return f"best of {self.sample} frames" if self.method == "best" else f"{self.method} frame"

    def to_plain(self):
        if self.method == "index":
            return self.index
        return {"frame": "best", "sample": self.sample} if self.method == "best" else self.method


@dataclass(frozen=True)
class DifferentialSpec:
    """Differential photometry.

    ``autodiff``: Broeg-style weighted ensemble of at most ``max_comps`` stars (never those in
    ``exclude``; comparisons noisier than ``reject`` x the noise model dropped) and the aperture
    minimising the target's ``scatter`` (p2p | binned | std). ``diff``: explicit ``comps`` with
    optional ``weights`` and ``aperture`` index; ``comps`` may instead be given by position,
    ``[{x: .., y: ..}, ...]`` (``comp_positions``: 0-based pixels of the first frame, as for the
    target, snapped to the nearest measured star by ``reduce.run.comps``). Frames whose per-frame quantity is an outlier
    (``sigma_clip``: name -> sigma, e.g. ``{sky: 3}``) are rejected first, then frames whose
    comparisons lost more than ``max_light_loss`` of their light (clouds; None: never); after the
    ensemble, ``outlier_guard`` ``{sigma, window}`` sets aside a frame whose target ratio is
    ``sigma`` robust sigmas from its ``window`` neighbours (None: off,
    e.g. for flare stars). ``bin`` is the bin width in days for plots (and for ``scatter:
    binned``). None means the Fluxes default.
    """

    method: str = "autodiff"
    comps: tuple[int, ...] | None = None
    comp_positions: tuple[tuple[float, float], ...] | None = None
    weights: tuple[float, ...] | None = None
    aperture: int | None = None
    exclude: tuple[int, ...] = ()
    max_comps: int | None = None
    reject: float | None = None
    scatter: str = "p2p"
    sigma_clip: dict = field(default_factory=dict)
    bin: float | None = None
    max_light_loss: float | None = MAX_LIGHT_LOSS
    outlier_guard: dict | None = field(default_factory=lambda: dict(GUARD))
    check: int | tuple[float, float] | None = None  # check star: index, or (x, y) first-frame pixels

    def to_plain(self) -> dict:
        d = {"method": self.method}
        if self.check is not None:
            d["check"] = self.check if isinstance(self.check, int) else {"x": self.check[0], "y": self.check[1]}
        if self.comp_positions is not None and self.comps is None:
            d["comps"] = [{"x": x, "y": y} for x, y in self.comp_positions]
        for name in ("comps", "weights", "aperture", "exclude", "max_comps", "reject"):
            v = getattr(self, name)
            if v is not None and v != ():
                d[name] = list(v) if isinstance(v, tuple) else v
        d.update(scatter=self.scatter, sigma_clip=dict(self.sigma_clip), bin=self.bin,
                 max_light_loss="off" if self.max_light_loss is None else self.max_light_loss,
                 outlier_guard="off" if self.outlier_guard is None else dict(self.outlier_guard))
        return d

    def fluxes_kwargs(self) -> dict:
        """Keyword arguments for ``Fluxes.autodiff`` or ``Fluxes.diff`` (per ``method``)."""
        kw = {"method": self.scatter}
        if self.scatter == "binned":
            kw["dt"] = self.bin
        if self.method == "diff":
            kw.update(comps=list(self.comps or ()), weights=None if self.weights is None else list(self.weights),
                      aperture=self.aperture)
            return kw
        kw["exclude"] = list(self.exclude)
        if self.max_comps is not None:
            kw["max_comps"] = self.max_comps
        if self.reject is not None:
            kw["reject"] = self.reject
        return kw


@dataclass(frozen=True)
class AavsoSpec:
    """The AAVSO extended-format export: the observer code (required by AAVSO), and optionally the
    star identifier (default: the group's OBJECT), chart id and AAVSO filter code (default: from
    the group's filter)."""

    obscode: str
    starid: str | None = None
    chart: str | None = None
    filter: str | None = None

    def to_plain(self) -> dict:
        return {k: v for k, v in (("obscode", self.obscode), ("starid", self.starid),
                                  ("chart", self.chart), ("filter", self.filter)) if v is not None}


@dataclass(frozen=True)
class OutputsSpec:
    """Which files ``reduce run`` writes per group: light-curve CSV (plain), ECSV (with units and
    schema), FITS, PNG figures, provenance, the group's self-contained HTML page (``html``), and
    the exports observers submit: AAVSO extended format (``aavso: {obscode: ...}``) and
    EXOTIC/Exoplanet Watch pre-reduced input (``exotic``); for AstroImageJ users, a DS9 region
    file of the measured stars (``region``) and a plain per-star measurement table (``stars``)."""

    csv: bool = True
    ecsv: bool = True
    fits: bool = True
    plot: bool = True
    provenance: bool = True
    aavso: AavsoSpec | None = None
    exotic: bool = False
    html: bool = True
    region: bool = True
    stars: bool = False

    def to_plain(self) -> dict:
        return {"csv": self.csv, "ecsv": self.ecsv, "fits": self.fits, "plot": self.plot,
                "provenance": self.provenance, "html": self.html,
                "aavso": self.aavso.to_plain() if self.aavso is not None else False,
                "exotic": self.exotic, "region": self.region, "stars": self.stars}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_keys(value: dict, allowed, path, report: Report) -> None:
    for k in value:
        if k not in allowed:
            report(path + (k,), f"unknown key {k!r} in {path[0]!r}", close_match_hint(str(k), allowed)
                   or "expected " + ", ".join(allowed))


# --- reference -------------------------------------------------------------------------------
def parse_reference(value, report: Report, path=("reference",)) -> ReferenceSpec:
    """``first | middle | best | <index>`` or ``{frame: best, sample: 20}``."""
    if value is None:
        return ReferenceSpec()
    if isinstance(value, dict):
        _check_keys(value, ("frame", "sample"), path, report)
        spec = parse_reference(value.get("frame", "best"), report, path + ("frame",))
        sample = value.get("sample", DEFAULT_SAMPLE)
        if not _is_int(sample) or sample < 1:
            report(path + ("sample",), f"reference sample must be a positive integer, got {sample!r}")
            sample = DEFAULT_SAMPLE
        elif spec.method != "best":
            report(path + ("sample",), "reference sample is only used with frame: best")
        return ReferenceSpec(spec.method, spec.index, sample)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if _is_int(value):
        if value < 0:
            report(path, f"reference index must be >= 0, got {value}", "frames are counted from 0")
            return ReferenceSpec()
        return ReferenceSpec("index", value)
    if isinstance(value, str) and value in REFERENCE_METHODS:
        return ReferenceSpec(value)
    hint = close_match_hint(value, REFERENCE_METHODS) or "first, middle, best or a frame index"
    report(path, f"invalid reference {value!r}", hint)
    return ReferenceSpec()


def reference_from_string(text: str) -> ReferenceSpec:
    """A ``--reference`` option value (first | middle | best | N); ValueError when invalid."""
    errors = []
    spec = parse_reference(str(text).strip(), lambda p, m, h=None: errors.append(m + (f" ({h})" if h else "")))
    if errors:
        raise ValueError(errors[0])
    return spec


# --- differential ----------------------------------------------------------------------------
def _indices(value, path, name: str, report: Report):
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        report(path, f"{name} must be a list of star indices (integers >= 0), got {value!r}")
        return None
    if len(set(value)) != len(value):
        report(path, f"{name} lists a star twice")
    return tuple(value)


def _comps(value, path, report: Report):
    """(indices, None) for ``[1, 2, 3]``, (None, positions) for ``[{x: .., y: ..}, ...]``."""
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return _indices(value, path, "comps", report), None
    positions = []
    for i, v in enumerate(value):
        _check_keys(v, ("x", "y"), path + (i,), report)
        x, y = v.get("x"), v.get("y")
        if isinstance(x, bool) or isinstance(y, bool) or not finite(x) or not finite(y):
            report(path + (i,), f"comparison {i} must be a position {{x: .., y: ..}} in pixels, got {v!r}",
                   "0-based pixels of the first frame, as for --target X,Y")
            continue
        positions.append((float(x), float(y)))
    if len(positions) != len(value):
        return None, None
    if len(set(positions)) != len(positions):
        report(path, "comps lists a position twice")
    return None, tuple(positions)


_DIFF_KEYS = ("method", "comps", "weights", "aperture", "exclude", "max_comps", "reject", "scatter",
              "sigma_clip", "max_light_loss", "outlier_guard", "bin", "check")
_ONLY = {"comps": "diff", "weights": "diff", "aperture": "diff", "exclude": "autodiff",
         "max_comps": "autodiff", "reject": "autodiff"}
SCATTER = ("p2p", "binned", "std")


def parse_differential(value, report: Report, path=("differential",)) -> DifferentialSpec:
    """``{method: autodiff | diff, comps, weights, aperture, exclude, max_comps, reject, scatter,
    sigma_clip, max_light_loss, outlier_guard, bin}`` (see :class:`DifferentialSpec`)."""
    if value is None:
        return DifferentialSpec()
    if not isinstance(value, dict):
        report(path, f"'differential' must be a mapping, got {value!r}", "e.g. {method: autodiff}")
        return DifferentialSpec()
    _check_keys(value, _DIFF_KEYS, path, report)
    comps, positions = _comps(value["comps"], path + ("comps",), report) if "comps" in value else (None, None)
    method = value.get("method", "diff" if "comps" in value else "autodiff")
    if method not in ("autodiff", "diff"):
        report(path + ("method",), f"unknown differential method {method!r}",
               close_match_hint(str(method), ("autodiff", "diff")) or "autodiff or diff")
        method = "autodiff"
    if method == "diff" and not comps and not positions and value.get("comps") in (None, []):
        report(path + ("method",), "method: diff needs a non-empty 'comps' list of comparison stars")
    for key, only in _ONLY.items():
        if key in value and method != only:
            report(path + (key,), f"{key!r} is only used with method: {only}",
                   f"remove it or set method: {only}")
    out = {"method": method, "comps": comps, "comp_positions": positions}
    out["exclude"] = _indices(value.get("exclude", []), path + ("exclude",), "exclude", report) or ()
    out["weights"] = _weights(value.get("weights"), comps or positions, path + ("weights",), report)
    out["aperture"] = _optional_int(value.get("aperture"), path + ("aperture",), "aperture", 0, report)
    out["max_comps"] = _optional_int(value.get("max_comps"), path + ("max_comps",), "max_comps", 1, report)
    reject = value.get("reject")
    if reject is not None and (not finite(reject) or reject <= 0):
        report(path + ("reject",), f"reject must be a positive number, got {reject!r}")
        reject = None
    out["reject"] = None if reject is None else float(reject)
    scatter = value.get("scatter", "p2p")
    if scatter not in SCATTER:
        report(path + ("scatter",), f"unknown scatter measure {scatter!r}",
               close_match_hint(str(scatter), SCATTER) or "p2p, binned or std")
        scatter = "p2p"
    out["scatter"] = scatter
    out["sigma_clip"] = _sigma_clip(value.get("sigma_clip"), path, report)
    out["max_light_loss"] = _light_loss(value.get("max_light_loss", MAX_LIGHT_LOSS), path, report)
    out["outlier_guard"] = _guard(value.get("outlier_guard", GUARD), path + ("outlier_guard",), report)
    out["bin"] = _bin(value.get("bin"), path, report)
    out["check"] = _check_star(value.get("check"), comps, path + ("check",), report)
    if scatter == "binned" and out["bin"] is None:
        report(path + ("scatter",), "scatter: binned needs a bin width", "add e.g. bin: 0.005")
    return DifferentialSpec(**out)


def _check_star(value, comps, path, report: Report):
    """The check star (measured like a comparison, never in the ensemble): a star index or
    ``{x: .., y: ..}`` (0-based pixels of the first frame, as for the target); None: chosen at export."""
    if value is None:
        return None
    if _is_int(value) and value >= 0:
        if comps and value in comps:
            report(path, f"the check star {value} is also in comps: a check star is never in the ensemble")
        return value
    if isinstance(value, dict) and set(value) == {"x", "y"} and all(finite(value[k]) for k in "xy"):
        return (float(value["x"]), float(value["y"]))
    report(path, f"check must be a star index or {{x: .., y: ..}} (0-based pixels), got {value!r}",
           "e.g. check: {x: 394.8, y: 321.6}")
    return None


def _optional_int(value, path, name: str, minimum: int, report: Report):
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        report(path, f"{name} must be an integer >= {minimum}, got {value!r}")
        return None
    return value


def _weights(value, comps, path, report: Report):
    if value is None:
        return None
    if not isinstance(value, list) or not all(finite(v) and v >= 0 for v in value) or not any(value):
        report(path, f"weights must be a list of non-negative numbers, not all zero, got {value!r}")
        return None
    if comps is not None and len(value) != len(comps):
        report(path, f"weights has {len(value)} values for {len(comps)} comparison stars")
        return None
    return tuple(float(v) for v in value)


def _sigma_clip(value, path, report: Report) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report(path + ("sigma_clip",), "sigma_clip maps a per-frame quantity to a sigma", "e.g. {sky: 3}")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not finite(v) or v <= 0:
            report(path + ("sigma_clip", k), f"sigma_clip {k!r}: expected a positive number, got {v!r}")
        else:
            out[k] = float(v)
    return out


def _is_off(value) -> bool:
    """``off``/``false``/``none`` (YAML reads a bare off as false)."""
    return value is False or value is None or (isinstance(value, str) and value.strip().lower() in
                                               ("off", "false", "none", "no"))


def _light_loss(value, path, report: Report):
    """``max_light_loss``: a fraction of the comparisons' light in (0, 1), or off."""
    if _is_off(value):
        return None
    if isinstance(value, bool) or not finite(value) or not 0 < value < 1:
        report(path + ("max_light_loss",), f"max_light_loss must be a fraction between 0 and 1 (or off), "
               f"got {value!r}", "e.g. 0.5: frames whose comparisons lost more than half their light")
        return MAX_LIGHT_LOSS
    return float(value)


def _guard(value, path, report: Report):
    """``outlier_guard``: ``{sigma: > 0, window: integer >= 5 frames}``, or off."""
    if _is_off(value):
        return None
    hint = "e.g. outlier_guard: {sigma: 5, window: 15}, or off (flare stars)"
    if value is True:
        return dict(GUARD)
    if not isinstance(value, dict):
        report(path, f"outlier_guard must be a mapping or off, got {value!r}", hint)
        return dict(GUARD)
    _check_keys(value, tuple(GUARD), path, report)
    out = dict(GUARD)
    sigma = value.get("sigma", GUARD["sigma"])
    if isinstance(sigma, bool) or not finite(sigma) or sigma <= 0:
        report(path + ("sigma",), f"outlier_guard sigma must be a positive number, got {sigma!r}", hint)
    else:
        out["sigma"] = float(sigma)
    window = value.get("window", GUARD["window"])
    if not _is_int(window) or window < 5:
        report(path + ("window",), f"outlier_guard window must be an integer >= 5 (frames), got {window!r}", hint)
    else:
        out["window"] = int(window)
    return out


def _bin(value, path, report: Report):
    if value is None:
        return None
    if not finite(value) or value <= 0:
        report(path + ("bin",), f"bin must be a positive width in days, got {value!r}", "0.005 d = 7.2 min")
        return None
    return float(value)


# --- outputs ---------------------------------------------------------------------------------
def parse_outputs(value, report: Report, path=("outputs",)) -> OutputsSpec:
    """``{csv, ecsv, fits, plot, provenance, html, region, stars, exotic: bool, aavso: false | {obscode: ...}}``
    (csv, ecsv, fits, plot, provenance, html, region true by default; stars and the exports off)."""
    if value is None:
        return OutputsSpec()
    if not isinstance(value, dict):
        report(path, f"'outputs' must be a mapping of true/false, got {value!r}")
        return OutputsSpec()
    names = tuple(OutputsSpec().to_plain())
    _check_keys(value, names, path, report)
    out = {}
    for k in names:
        if k not in value:
            continue
        if k == "aavso":
            out[k] = _parse_aavso(value[k], report, path + (k,))
        elif isinstance(value[k], bool):
            out[k] = value[k]
        else:
            report(path + (k,), f"outputs {k} must be true or false, got {value[k]!r}")
    return OutputsSpec(**out)


_AAVSO_KEYS = ("obscode", "starid", "chart", "filter")


def _parse_aavso(value, report: Report, path) -> AavsoSpec | None:
    """``false`` or ``{obscode: ABC, starid: ..., chart: ..., filter: ...}`` (strings)."""
    if value is False or value is None:
        return None
    hint = "e.g. aavso: {obscode: XYZ} (your AAVSO observer code; starid, chart, filter optional)"
    if not isinstance(value, dict):
        report(path, f"outputs aavso must be false or a mapping with your observer code, got {value!r}", hint)
        return None
    _check_keys(value, _AAVSO_KEYS, path, report)
    fields_ = {}
    for k in _AAVSO_KEYS:
        v = value.get(k)
        if v is None:
            continue
        text = str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else None
        if not text or any(c in text for c in ",#\n\r") or not text.isascii():
            report(path + (k,), f"outputs aavso {k} must be a short ASCII text without ',' or '#', got {v!r}")
            continue
        fields_[k] = text
    if "obscode" not in fields_:
        if "obscode" not in value:
            report(path, "outputs aavso needs obscode: the AAVSO observer code", hint)
        return None
    return AavsoSpec(**fields_)
