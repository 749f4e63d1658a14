"""Which star is the target: an index in the reference's source list, pixels on a frame of the
night (the first light frame unless one is named), or sky coordinates (degrees or sexagesimal),
from the recipe or from a ``--target`` option.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from ..model.angles import parse_angle
from ._yaml import close_match_hint
from .coerce import finite

__all__ = ["TargetSpec", "parse_target", "target_from_string", "coords_from_string", "parse_coords"]

Report = Callable[..., None]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TargetSpec:
    """Which star is the target: ``kind`` auto | index | pixel | sky.

    index: position in the reference frame's list of measured stars (as labelled in the reference
    figure); pixel: ``x, y`` (0-based pixels of the file) on ``frame`` (a file name or a path
    relative to the night), by default the first light frame by time; the runner maps it onto the
    reference through the alignment and snaps it to the nearest star; sky: ``ra, dec`` in degrees
    (ICRS; placed through a WCS); auto: the runner decides (the target's coordinates, else the
    header RA/DEC, through a WCS of any light frame; else the brightest star near the centre, a
    guess that the run reports and exits 3 for). For the other kinds ``ra, dec`` (when set) are
    the target's coordinates (``--coords``, recipe ``coords:``), used for BJD_TDB, the airmass and
    ``RA_OBJ``/``DEC_OBJ`` (and to place an automatic target through a WCS).
    """

    kind: str = "auto"
    index: int | None = None
    x: float | None = None
    y: float | None = None
    ra: float | None = None
    dec: float | None = None
    frame: str | None = None

    @property
    def coords(self) -> tuple | None:
        """The target's (RA, Dec) in degrees when known (a sky target's, or given with it)."""
        return None if self.ra is None or self.dec is None else (float(self.ra), float(self.dec))

    def __str__(self) -> str:
        at = f" at RA {self.ra:.6f} Dec {self.dec:+.6f} (deg)" if self.coords and self.kind != "sky" else ""
        if self.kind == "index":
            return f"source #{self.index} of the reference" + at
        if self.kind == "pixel":
            return f"pixel ({self.x:g}, {self.y:g}) on " + (self.frame or "the first frame") + at
        if self.kind == "sky":
            return f"RA {self.ra:.6f} Dec {self.dec:+.6f} (deg)"
        return "automatic" + at

    def to_plain(self):
        coords = {"coords": [self.ra, self.dec]} if self.coords and self.kind != "sky" else {}
        if self.kind == "index":
            return {"index": self.index, **coords} if coords else self.index
        if self.kind == "pixel":
            return {"x": self.x, "y": self.y, **({"frame": self.frame} if self.frame else {}), **coords}
        if self.kind == "sky":
            return {"ra": self.ra, "dec": self.dec}
        return coords or "auto"

    def with_coords(self, coords) -> "TargetSpec":
        """This target with the coordinates ``(ra, dec)`` (a sky target is placed by them too)."""
        from dataclasses import replace

        if coords is None:
            return self
        ra, dec = coords
        return replace(self, ra=float(ra), dec=float(dec))


# --- target ----------------------------------------------------------------------------------
def _angle(value, *, ra: bool, name: str) -> float:
    """Degrees from a number or a string (see :mod:`reduce.model.angles`: a sexagesimal RA below
    24 is hours)."""
    x, sexagesimal = parse_angle(value)
    if x is None:
        raise ValueError(f"{name} {value!r} is neither degrees nor " + ("hh:mm:ss" if ra else "dd:mm:ss")
                         + " (minutes and seconds below 60)")
    return x * 15.0 if ra and sexagesimal and x < 24 else x


def _sky(ra, dec) -> TargetSpec:
    ra_deg, dec_deg = _angle(ra, ra=True, name="ra"), _angle(dec, ra=False, name="dec")
    if not 0 <= ra_deg < 360:
        raise ValueError(f"ra must be in [0, 360) degrees, got {ra_deg:g}")
    if not -90 <= dec_deg <= 90:
        raise ValueError(f"dec must be in [-90, 90] degrees, got {dec_deg:g}")
    return TargetSpec("sky", ra=ra_deg, dec=dec_deg)


def parse_target(value, report: Report, path=("target",)) -> TargetSpec:
    """``<index>``, ``{x: .., y: .., frame: ..}``, ``{ra: .., dec: ..}``, a string form, or ``auto``."""
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
            report(path, str(e) if str(e).startswith("target") else f"target: {e}")
    elif isinstance(value, dict):
        return _target_mapping(value, report, path)
    else:
        report(path, f"invalid target {value!r}", "an index, {x: .., y: ..} or {ra: .., dec: ..}")
    return TargetSpec()


def coords_from_string(text) -> tuple:
    """(ra, dec) in degrees from ``"RA DEC"``: degrees or sexagesimal (``"02:04:10.3 +46:41:16"``,
    ``"02 04 10.3 +46 41 16"``, ``"31.0428 46.6878"``); ValueError saying what is expected."""
    tokens = str(text).replace(",", " ").split()
    if len(tokens) == 6:
        tokens = [":".join(tokens[:3]), ":".join(tokens[3:])]
    if len(tokens) != 2:
        raise ValueError(f"coordinates {text!r}: expected \"RA DEC\", in degrees or sexagesimal "
                         "(e.g. \"02:04:10.3 +46:41:16\" or \"31.0428 46.6878\")")
    sky = _sky(*tokens)
    return sky.ra, sky.dec


def parse_coords(value) -> tuple:
    """(ra, dec) in degrees from ``"RA DEC"``, ``[ra, dec]`` or ``{ra: .., dec: ..}``."""
    if isinstance(value, dict) and set(value) == {"ra", "dec"}:
        sky = _sky(value["ra"], value["dec"])
        return sky.ra, sky.dec
    if isinstance(value, (list, tuple)) and len(value) == 2:
        sky = _sky(*value)
        return sky.ra, sky.dec
    if isinstance(value, str):
        return coords_from_string(value)
    raise ValueError(f"coordinates {value!r}: expected \"RA DEC\", [ra, dec] or {{ra: .., dec: ..}}")


def _target_mapping(value: dict, report: Report, path) -> TargetSpec:
    if "coords" in value:
        rest = {k: v for k, v in value.items() if k != "coords"}
        try:
            coords = parse_coords(value["coords"])
        except ValueError as e:
            report(path + ("coords",), f"invalid target coords: {e}")
            coords = None
        if set(rest) == {"index"}:
            base = parse_target(rest["index"], report, path + ("index",))
        elif not rest or set(rest) == {"auto"}:
            base = TargetSpec()
        elif set(rest) == {"ra", "dec"}:
            report(path, "target has both coords and ra/dec", "give the star by x/y, index or "
                   "ra/dec, and its coordinates by coords (or ra/dec alone)")
            return TargetSpec()
        else:
            base = _target_mapping(rest, report, path)
        return base.with_coords(coords)
    keys = set(value)
    if keys in ({"x", "y"}, {"x", "y", "frame"}):
        bad = [k for k in ("x", "y") if not finite(value[k]) or value[k] < 0]
        for k in bad:
            report(path + (k,), f"target {k} must be a pixel coordinate >= 0, got {value[k]!r}")
        frame = value.get("frame")
        if "frame" in keys and (not isinstance(frame, str) or not frame.strip()):
            report(path + ("frame",), f"target frame must be a file name, got {frame!r}",
                   "the name of a light frame, or its path relative to the night folder")
            bad.append("frame")
        return TargetSpec() if bad else TargetSpec("pixel", x=float(value["x"]), y=float(value["y"]),
                                                   frame=frame.strip() if frame else None)
    if keys == {"ra", "dec"}:
        try:
            return _sky(value["ra"], value["dec"])
        except ValueError as e:
            report(path, f"invalid target: {e}")
            return TargetSpec()
    unknown = sorted(str(k) for k in keys - {"x", "y", "frame", "ra", "dec"})
    if unknown:
        report(path + (unknown[0],), f"unknown key {unknown[0]!r} in 'target'",
               close_match_hint(unknown[0], ("x", "y", "frame", "ra", "dec", "coords", "index"))
               or "use {x, y}, {x, y, frame} or {ra, dec}")
    else:
        report(path, "target needs both x and y, or both ra and dec", f"got {', '.join(sorted(map(str, keys)))}")
    return TargetSpec()


def target_from_string(text: str) -> TargetSpec:
    """``N`` (index), ``X,Y`` (pixels on the first frame), ``X,Y@FILE`` (pixels on that frame),
    ``"RA DEC"`` (degrees or sexagesimal), or ``auto``."""
    s = str(text).strip()
    if s in ("", "auto"):
        return TargetSpec()
    if re.fullmatch(r"\d+", s):
        return TargetSpec("index", index=int(s))
    frame = None
    if "@" in s:
        s, frame = (p.strip() for p in s.split("@", 1))
        if not frame or "," not in s:
            raise ValueError(f"target {text!r}: expected X,Y@FILE (pixels on the light frame FILE)")
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        try:
            x, y = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"target {text!r}: expected X,Y pixel coordinates") from None
        if not (math.isfinite(x) and math.isfinite(y) and x >= 0 and y >= 0):
            raise ValueError(f"target {text!r}: pixel coordinates must be finite and >= 0")
        return TargetSpec("pixel", x=x, y=y, frame=frame)
    tokens = s.split()
    if len(tokens) == 6:
        tokens = [":".join(tokens[:3]), ":".join(tokens[3:])]
    if len(tokens) == 2:
        return _sky(*tokens)
    raise ValueError(f"target {text!r}: expected an index N, pixels X,Y or sky coordinates 'RA DEC'")
