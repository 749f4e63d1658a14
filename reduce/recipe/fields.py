"""The recipe's non-block sections: reference frame, target, differential photometry, outputs.

Each ``parse_*`` takes the YAML value and a ``report(path, message, hint)`` callback, reports every
problem it finds and returns a (frozen) spec with defaults filled in. ``target_from_string`` and
``reference_from_string`` read the command-line override forms (``--target 300,310``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

from ._yaml import close_match_hint
from .coerce import finite

__all__ = [
    "ReferenceSpec", "TargetSpec", "DifferentialSpec", "OutputsSpec",
    "parse_reference", "parse_target", "parse_differential", "parse_outputs",
    "target_from_string", "reference_from_string", "REFERENCE_METHODS", "MISSING_CALIBRATION",
]

Report = Callable[..., None]
REFERENCE_METHODS = ("first", "middle", "best")
MISSING_CALIBRATION = ("warn", "fail")
DEFAULT_SAMPLE = 15


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
class TargetSpec:
    """Which star is the target: ``kind`` auto | index | pixel | sky.

    index: position in the reference frame's source list; pixel: ``x, y`` (0-based pixels on the
    reference frame); sky: ``ra, dec`` in degrees (ICRS; needs a WCS); auto: the runner decides
    (header RA/DEC when the frames have a WCS, else the source nearest the frame centre).
    """

    kind: str = "auto"
    index: int | None = None
    x: float | None = None
    y: float | None = None
    ra: float | None = None
    dec: float | None = None

    def __str__(self) -> str:
        return {"auto": "automatic", "index": f"source #{self.index} of the reference",
                "pixel": f"pixel ({self.x:g}, {self.y:g}) on the reference",
                "sky": f"RA {self.ra:.6f} Dec {self.dec:+.6f} (deg)"}[self.kind]

    def to_plain(self):
        return {"auto": "auto", "index": self.index, "pixel": {"x": self.x, "y": self.y},
                "sky": {"ra": self.ra, "dec": self.dec}}[self.kind]


@dataclass(frozen=True)
class DifferentialSpec:
    """Differential photometry: ``autodiff`` (Broeg-style weighted ensemble, best aperture, stars in
    ``exclude`` never used) or ``diff`` with explicit ``comps``; frames whose per-frame quantity
    (``sigma_clip`` name -> sigma) is an outlier are rejected; ``bin`` is the plotted bin width in
    days (None: no binning)."""

    method: str = "autodiff"
    comps: tuple[int, ...] | None = None
    exclude: tuple[int, ...] = ()
    sigma_clip: dict = field(default_factory=dict)
    bin: float | None = None

    def to_plain(self) -> dict:
        d = {"method": self.method}
        if self.comps is not None:
            d["comps"] = list(self.comps)
        if self.exclude:
            d["exclude"] = list(self.exclude)
        d["sigma_clip"] = dict(self.sigma_clip)
        d["bin"] = self.bin
        return d


@dataclass(frozen=True)
class OutputsSpec:
    """Which files ``reduce run`` writes per group (light-curve CSV and FITS, PNG figures, provenance)."""

    csv: bool = True
    fits: bool = True
    plot: bool = True
    provenance: bool = True

    def to_plain(self) -> dict:
        return {"csv": self.csv, "fits": self.fits, "plot": self.plot, "provenance": self.provenance}


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


# --- target ----------------------------------------------------------------------------------
_SEXA = re.compile(r"^([+-])?\s*(\d+(?:\.\d*)?)[:hd\s°]\s*(\d+(?:\.\d*)?)(?:[:m'\s]\s*(\d+(?:\.\d*)?)[s\"]?)?$")


def _angle(value, *, hours: bool, name: str) -> float:
    """Degrees from a number (degrees) or a sexagesimal string (RA in hours, Dec in degrees)."""
    if finite(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return float(text)
        except ValueError:
            pass
        m = _SEXA.match(text)
        if m:
            sign, a, b, c = m.groups()
            b, c = float(b), float(c or 0)
            if b >= 60 or c >= 60:
                raise ValueError(f"{name} {value!r}: minutes and seconds must be below 60")
            deg = float(a) + b / 60 + c / 3600
            deg *= 15.0 if hours else 1.0
            return -deg if sign == "-" else deg
    raise ValueError(f"{name} {value!r} is neither degrees nor " + ("hh:mm:ss" if hours else "dd:mm:ss"))


def _sky(ra, dec) -> TargetSpec:
    ra_deg, dec_deg = _angle(ra, hours=True, name="ra"), _angle(dec, hours=False, name="dec")
    if not 0 <= ra_deg < 360:
        raise ValueError(f"ra must be in [0, 360) degrees, got {ra_deg:g}")
    if not -90 <= dec_deg <= 90:
        raise ValueError(f"dec must be in [-90, 90] degrees, got {dec_deg:g}")
    return TargetSpec("sky", ra=ra_deg, dec=dec_deg)


def parse_target(value, report: Report, path=("target",)) -> TargetSpec:
    """``<index>``, ``{x: .., y: ..}``, ``{ra: .., dec: ..}``, a string form, or ``auto``."""
    if value is None or value == "auto":
        return TargetSpec()
    if isinstance(value, bool):
        report(path, f"invalid target {value!r}", "an index, {x: .., y: ..} or {ra: .., dec: ..}")
    elif _is_int(value):
        if value >= 0:
            return TargetSpec("index", index=value)
        report(path, f"target index must be >= 0, got {value}")
    elif isinstance(value, str):
        try:
            return target_from_string(value)
        except ValueError as e:
            report(path, str(e))
    elif isinstance(value, dict):
        return _target_mapping(value, report, path)
    else:
        report(path, f"invalid target {value!r}", "an index, {x: .., y: ..} or {ra: .., dec: ..}")
    return TargetSpec()


def _target_mapping(value: dict, report: Report, path) -> TargetSpec:
    keys = set(value)
    if keys == {"x", "y"}:
        bad = [k for k in ("x", "y") if not finite(value[k]) or value[k] < 0]
        for k in bad:
            report(path + (k,), f"target {k} must be a pixel coordinate >= 0, got {value[k]!r}")
        return TargetSpec() if bad else TargetSpec("pixel", x=float(value["x"]), y=float(value["y"]))
    if keys == {"ra", "dec"}:
        try:
            return _sky(value["ra"], value["dec"])
        except ValueError as e:
            report(path, f"invalid target: {e}")
            return TargetSpec()
    unknown = sorted(str(k) for k in keys - {"x", "y", "ra", "dec"})
    if unknown:
        report(path + (unknown[0],), f"unknown key {unknown[0]!r} in 'target'",
               close_match_hint(unknown[0], ("x", "y", "ra", "dec")) or "use {x, y} or {ra, dec}")
    else:
        report(path, "target needs both x and y, or both ra and dec", f"got {', '.join(sorted(map(str, keys)))}")
    return TargetSpec()


def target_from_string(text: str) -> TargetSpec:
    """``N`` (index), ``X,Y`` (pixels), ``"RA DEC"`` (degrees or sexagesimal), or ``auto``."""
    s = str(text).strip()
    if s in ("", "auto"):
        return TargetSpec()
    if re.fullmatch(r"\d+", s):
        return TargetSpec("index", index=int(s))
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        try:
            x, y = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"target {text!r}: expected X,Y pixel coordinates") from None
        if not (math.isfinite(x) and math.isfinite(y) and x >= 0 and y >= 0):
            raise ValueError(f"target {text!r}: pixel coordinates must be finite and >= 0")
        return TargetSpec("pixel", x=x, y=y)
    tokens = s.split()
    if len(tokens) == 6:
        tokens = [":".join(tokens[:3]), ":".join(tokens[3:])]
    if len(tokens) == 2:
        return _sky(*tokens)
    raise ValueError(f"target {text!r}: expected an index N, pixels X,Y or sky coordinates 'RA DEC'")


# --- differential ----------------------------------------------------------------------------
def _indices(value, path, name: str, report: Report):
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        report(path, f"{name} must be a list of star indices (integers >= 0), got {value!r}")
        return None
    if len(set(value)) != len(value):
        report(path, f"{name} lists a star twice")
    return tuple(value)


def parse_differential(value, report: Report, path=("differential",)) -> DifferentialSpec:
    """``{method: autodiff | diff, comps: [..], exclude: [..], sigma_clip: {name: sigma}, bin: days}``."""
    if value is None:
        return DifferentialSpec()
    if not isinstance(value, dict):
        report(path, f"'differential' must be a mapping, got {value!r}", "e.g. {method: autodiff}")
        return DifferentialSpec()
    _check_keys(value, ("method", "comps", "exclude", "sigma_clip", "bin"), path, report)
    comps = _indices(value["comps"], path + ("comps",), "comps", report) if "comps" in value else None
    exclude = _indices(value.get("exclude", []), path + ("exclude",), "exclude", report) or ()
    method = value.get("method", "diff" if comps else "autodiff")
    if method not in ("autodiff", "diff"):
        report(path + ("method",), f"unknown differential method {method!r}",
               close_match_hint(str(method), ("autodiff", "diff")) or "autodiff or diff")
        method = "autodiff"
    if method == "diff" and not comps:
        report(path + ("method",), "method: diff needs a non-empty 'comps' list of comparison stars")
    if method == "autodiff" and comps:
        report(path + ("comps",), "'comps' is only used with method: diff", "remove it or set method: diff")
    return DifferentialSpec(method, comps, exclude, _sigma_clip(value.get("sigma_clip"), path, report),
                            _bin(value.get("bin"), path, report))


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


def _bin(value, path, report: Report):
    if value is None:
        return None
    if not finite(value) or value <= 0:
        report(path + ("bin",), f"bin must be a positive width in days, got {value!r}", "0.005 d = 7.2 min")
        return None
    return float(value)


# --- outputs ---------------------------------------------------------------------------------
def parse_outputs(value, report: Report, path=("outputs",)) -> OutputsSpec:
    """``{csv: bool, fits: bool, plot: bool, provenance: bool}`` (all true by default)."""
    if value is None:
        return OutputsSpec()
    if not isinstance(value, dict):
        report(path, f"'outputs' must be a mapping of true/false, got {value!r}")
        return OutputsSpec()
    names = tuple(OutputsSpec().to_plain())
    _check_keys(value, names, path, report)
    out = {}
    for k in names:
        if k in value:
            if isinstance(value[k], bool):
                out[k] = value[k]
            else:
                report(path + (k,), f"outputs {k} must be true or false, got {value[k]!r}")
    return OutputsSpec(**out)
