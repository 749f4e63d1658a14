"""Instrument and site definitions: built-in defaults plus an optional user YAML file.

An :class:`Instrument` says which header keywords carry which quantity, how frame types are
spelled (in ``IMAGETYP`` and in file names), the detector constants and the site. Unknown
telescopes get :data:`DEFAULT_INSTRUMENT`, whose keyword lists cover the common conventions.
Nothing here writes files; the user file is read only when asked (``--config`` / standard path).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .model.errors import ConfigError

__all__ = ["Instrument", "Config", "DEFAULT_INSTRUMENT", "load_config", "default_config_path"]

FRAME_TYPES = ("bias", "dark", "flat", "light")

DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "telescope": ("TELESCOP", "INSTRUME", "OBSERVAT"),
    "instrument": ("INSTRUME",),
    "imagetyp": ("IMAGETYP", "IMGTYPE", "OBSTYPE", "FRAMETYP", "FRAME"),
    "exptime": ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME"),
    "filter": ("FILTER", "FILTER1", "FILTNAME", "FILT", "FILTERS"),
    "object": ("OBJECT", "FIELD", "TARGET", "OBJNAME"),
    "date_obs": ("DATE-OBS", "DATE_OBS", "DATE"),
    "time_obs": ("TIME-OBS", "UT", "UTSTART", "UTC", "TIME", "UT-OBS"),
    "jd": ("JD", "JD-OBS", "JD_UTC", "JD-START"),
    "mjd": ("MJD-OBS", "MJD", "MJD_OBS"),
    "ra": ("RA", "OBJCTRA", "RA_OBJ", "TELRA", "RA-MNT"),
    "dec": ("DEC", "OBJCTDEC", "DEC_OBJ", "TELDEC", "DEC-MNT"),
    "airmass": ("AIRMASS", "SECZ", "AMASS"),
    "gain": ("GAIN", "EGAIN", "CCDGAIN"),
    "read_noise": ("RDNOISE", "READNOIS", "RON", "READNOISE"),
    "saturation": ("SATURATE", "SATLEVEL"),
    "latitude": ("SITELAT", "LATITUDE", "OBS-LAT", "LAT-OBS"),
    "longitude": ("SITELONG", "LONGITUD", "OBS-LONG", "LONG-OBS"),
    "elevation": ("SITEELEV", "ALTITUDE", "OBS-ELEV", "ALT-OBS"),
}

DEFAULT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "bias": ("bias", "bias frame", "zero", "offset", "masterbias"),
    "dark": ("dark", "dark frame", "dark current"),
    "flat": ("flat", "flat field", "flat frame", "flatfield", "sky flat", "skyflat", "dome flat",
             "domeflat", "twilight flat"),
    "light": ("light", "light frame", "object", "science", "sci", "expose", "target"),
}

DEFAULT_FILENAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "bias": (r"(^|[._\-\s])(bias|biases|zero|offset)([._\-\s\d]|$)",),
    "dark": (r"(^|[._\-\s])(dark|darks)([._\-\s\d]|$)",),
    "flat": (r"(^|[._\-\s])(flat|flats|flatfield|skyflat|domeflat)([._\-\s\d]|$)",),
    "light": (),
}


@dataclass(frozen=True)
class Instrument:
    """One telescope/camera: header conventions, detector constants and site.

    ``match`` lists TELESCOP/INSTRUME values (case-insensitive, exact after stripping) that
    select this definition. ``longitude`` is east-positive in degrees; a header whose longitude
    is west-positive is corrected when ``longitude_positive_west`` is true, kept when false, and
    detected when unset (None: a longitude contradicting the local-time UTC offset, or putting
    local noon inside a night, is taken as west-positive with a warning). ``time_reference``
    says whether the header time marks the ``start`` (default) or the ``mid`` of the exposure;
    ``time_keyword`` names the header keyword the time comes from (default: DATE-OBS, with
    TIME-OBS/UT when it holds only a date, else JD, else MJD-OBS).
    Sections (``overscan``, ``trim``) use FITS 1-based ``[x1:x2,y1:y2]`` syntax.
    ``bias_level`` is the camera's bias pedestal in raw ADU, for nights without bias frames or
    overscan: the CCD equation counts only the sky above it.
    ``bayer`` names the colour-filter pattern at the file's first pixel (``RGGB``, ``BGGR``,
    ``GRBG``, ``GBRG``) of a colour camera whose headers do not (``none``: measure as monochrome
    even when a header names one); ``bayer_channel`` says what is measured on colour frames:
    ``superpixel`` (default, the sum of each 2x2 cell), ``R``, ``G`` (both greens) or ``B``.
    """

    name: str = "default"
    match: tuple[str, ...] = ()
    keywords: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    type_aliases: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_TYPE_ALIASES))
    filename_patterns: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_FILENAME_PATTERNS))
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    overscan: str | None = None
    trim: str | None = None
    bias_level: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    elevation: float | None = None
    longitude_positive_west: bool | None = None
    time_reference: str = "start"
    timezone_offset_hours: float | None = None
    time_keyword: str | None = None
    bayer: str | None = None
    bayer_channel: str | None = None

    def keys(self, role: str) -> tuple[str, ...]:
        """Header keywords to try, in order, for ``role`` (e.g. ``'exptime'``)."""
        return self.keywords.get(role, DEFAULT_KEYWORDS.get(role, ()))

    def type_from_value(self, value: str) -> str | None:
        """Frame type named by an IMAGETYP-like value, or None when unrecognised."""
        v = " ".join(str(value).strip().lower().replace("_", " ").split())
        if not v:
            return None
        for ftype in FRAME_TYPES:
            if v in self.type_aliases.get(ftype, ()):
                return ftype
        for ftype in ("bias", "dark", "flat"):  # 'Master Dark', 'FLAT_V' ...
            if any(alias in v for alias in self.type_aliases.get(ftype, ()) if len(alias) > 3):
                return ftype
        return None

    def type_from_filename(self, name: str) -> str | None:
        """Frame type named by a file name (``.BIAS.FIT``, ``dark_``, ``flat-``), or None."""
        low = Path(name).name.lower()
        for ftype in ("bias", "dark", "flat"):
            for pattern in self.filename_patterns.get(ftype, ()):
                if re.search(pattern, low):
                    return ftype
        return None


DEFAULT_INSTRUMENT = Instrument()


@dataclass(frozen=True)
class Execution:
    """How ``reduce run`` processes frames when neither its options (--executor, --jobs,
    --scheduler) nor their REDUCE_* variables say: the config file's ``execution`` section."""

    executor: str | None = None          # 'local' | 'dask'
    jobs: int | None = None              # local worker processes (default: every core)
    scheduler: str | None = None         # Dask scheduler address; implies executor 'dask'
    groups_at_once: int | None = None    # Dask: groups reduced at the same time (default 2)


@dataclass(frozen=True)
class Config:
    """The instrument definitions in force, how runs execute, and where they came from."""

    instruments: tuple[Instrument, ...] = ()
    source: str | None = None
    default: Instrument = DEFAULT_INSTRUMENT
    execution: Execution = Execution()
    targets: tuple[tuple[str, float, float], ...] = ()   # (name, RA, Dec in degrees): `targets:`

    def coords_for(self, name) -> tuple | None:
        """(name, ra, dec) of the configured target named ``name`` (an OBJECT value), compared
        without case, spaces, dashes or underscores ('HATP-32' is 'HAT-P-32'), else None."""
        key = _target_key(name)
        if not key:
            return None
        return next((t for t in self.targets if _target_key(t[0]) == key), None)

    def instrument_for(self, header: Any) -> Instrument:
        """The definition whose ``match`` names this header's TELESCOP or INSTRUME."""
        values = set()
        for key in ("TELESCOP", "INSTRUME", "OBSERVAT"):
            try:
                v = header.get(key)
            except Exception:
                v = None
            if v is not None and str(v).strip():
                values.add(str(v).strip().lower())
        for inst in self.instruments:
            if any(m.strip().lower() in values for m in inst.match):
                return inst
        return self.default

    def by_name(self, name: str) -> Instrument | None:
        """Definition named ``name`` (or matching it), None when absent."""
        low = str(name).strip().lower()
        for inst in self.instruments:
            if inst.name.lower() == low or low in (m.lower() for m in inst.match):
                return inst
        return None


def _target_key(name) -> str:
    """A target name as compared with OBJECT values: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z+]", "", str(name or "").lower())


def _targets_from_dict(spec: Any, where: str) -> tuple:
    """The ``targets`` section: ``NAME: "RA DEC"`` (or ``[ra, dec]``, ``{ra: .., dec: ..}``),
    degrees or sexagesimal, checked."""
    from .recipe.targets import parse_coords

    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: targets must be a mapping of names to \"RA DEC\"")
    out = []
    for name, value in spec.items():
        try:
            ra, dec = parse_coords(value)
        except ValueError as e:
            raise ConfigError(f"{where}: targets.{name}: {e}") from None
        out.append((str(name), ra, dec))
    return tuple(out)


def default_config_path() -> Path | None:
    """The standard user config: ``$REDUCE_CONFIG``, else ``config.yaml`` in the platform's user
    config folder (``$XDG_CONFIG_HOME/reduce``, by default ``~/.config/reduce``, on Linux)."""
    env = os.environ.get("REDUCE_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_path

    p = user_config_path("reduce", appauthor=False) / "config.yaml"
    return p if p.exists() else None


_FLOAT_FIELDS = {"gain", "read_noise", "saturation", "bias_level", "latitude", "longitude", "elevation",
                 "timezone_offset_hours"}
_STR_FIELDS = {"overscan", "trim", "name"}
# physical ranges of configured values (a typo must not pass as a site or a gain)
_RANGES = {"gain": (0.0, None, "> 0"), "read_noise": (0.0, None, ">= 0"), "saturation": (0.0, None, "> 0"),
           "bias_level": (0.0, None, ">= 0"),
           "latitude": (-90.0, 90.0, "within -90..90"), "longitude": (-360.0, 360.0, "within -360..360")}


def _in_range(key: str, value: float, loc: str) -> float:
    """``value`` when it makes physical sense for ``key``, else a ConfigError saying the range."""
    lo, hi, text = _RANGES.get(key, (None, None, ""))
    strict = key in ("gain", "saturation")
    if lo is not None and (value < lo or (strict and value == lo)) or hi is not None and value > hi:
        raise ConfigError(f"{loc}: {value:g} is out of range (must be {text})")
    return value


def _as_tuple(v: Any, where: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float)) for x in v):
        return tuple(str(x) for x in v)
    raise ConfigError(f"{where}: expected a string or a list of strings, got {v!r}")


def _instrument_from_dict(name: str, spec: dict, where: str) -> Instrument:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: instrument '{name}' must be a mapping")
    known = {f.name for f in fields(Instrument)}
    kwargs: dict[str, Any] = {"name": str(name)}
    for key, value in spec.items():
        k = str(key)
        loc = f"{where}: instruments.{name}.{k}"
        if k == "site" and isinstance(value, dict):
            for sk, sv in value.items():
                if sk not in ("latitude", "longitude", "elevation", "longitude_positive_west"):
                    raise ConfigError(f"{loc}.{sk}: unknown site key")
                try:
                    kwargs[sk] = bool(sv) if sk == "longitude_positive_west" else \
                        _in_range(sk, float(sv), f"{loc}.{sk}")
                except (TypeError, ValueError):
                    raise ConfigError(f"{loc}.{sk}: expected a number, got {sv!r}") from None
            continue
        if k not in known:
            import difflib
            hint = difflib.get_close_matches(k, sorted(known | {"site"}), n=1)
            raise ConfigError(f"{loc}: unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        if k == "match":
            kwargs[k] = _as_tuple(value, loc)
        elif k in ("keywords", "type_aliases", "filename_patterns"):
            if not isinstance(value, dict):
                raise ConfigError(f"{loc}: expected a mapping")
            base = {"keywords": DEFAULT_KEYWORDS, "type_aliases": DEFAULT_TYPE_ALIASES,
                    "filename_patterns": DEFAULT_FILENAME_PATTERNS}[k]
            merged = dict(base)
            for role, v in value.items():
                vals = _as_tuple(v, f"{loc}.{role}")
                if k == "type_aliases":
                    if role not in FRAME_TYPES:
                        raise ConfigError(f"{loc}.{role}: frame type must be one of {FRAME_TYPES}")
                    vals = tuple(x.strip().lower() for x in vals) + base.get(role, ())
                if k == "filename_patterns":
                    for pat in vals:
                        try:
                            re.compile(pat)
                        except re.error as e:
                            raise ConfigError(f"{loc}.{role}: bad regular expression {pat!r}: {e}")
                if k == "keywords":
                    vals = tuple(x.upper() for x in vals)
                merged[role] = vals
            kwargs[k] = merged
        elif k in _FLOAT_FIELDS:
            try:
                kwargs[k] = None if value is None else _in_range(k, float(value), loc)
            except (TypeError, ValueError):
                raise ConfigError(f"{loc}: expected a number, got {value!r}")
        elif k == "longitude_positive_west":
            kwargs[k] = bool(value)
        elif k == "time_keyword":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{loc}: expected a header keyword such as JD, MJD-OBS or DATE-OBS")
            kwargs[k] = None if value is None else value.strip().upper()
        elif k in ("bayer", "bayer_channel"):
            kwargs[k] = _bayer_value(k, value, loc)
        elif k == "time_reference":
            if value not in ("start", "mid"):
                raise ConfigError(f"{loc}: must be 'start' or 'mid'")
            kwargs[k] = value
        else:
            kwargs[k] = None if value is None else str(value)
    inst = Instrument(**kwargs)
    if inst.longitude is not None and inst.longitude_positive_west:
        inst = replace(inst, longitude=-inst.longitude, longitude_positive_west=False)
    return inst


def _bayer_value(key: str, value: Any, loc: str) -> str | None:
    """A checked ``bayer`` (pattern or 'none') or ``bayer_channel`` (superpixel, R, G, B) value."""
    from .algorithms.bayer import CHANNELS, PATTERNS, normalise_pattern

    if value is None:
        return None
    text = str(value).strip()
    if key == "bayer":
        if value is False or text.lower() in ("none", "mono", "false"):
            return "none"
        pattern = normalise_pattern(text)
        if pattern is None:
            raise ConfigError(f"{loc}: expected one of {', '.join(PATTERNS)} or none, got {value!r}")
        return pattern
    if text.lower() == "superpixel":
        return "superpixel"
    if text.upper() not in CHANNELS:
        raise ConfigError(f"{loc}: expected superpixel, R, G or B, got {value!r}")
    return text.upper()


def load_config(path: str | os.PathLike | None = None, *, use_default_location: bool = True) -> Config:
    """Read the instrument definitions from ``path`` (or the standard location when None)."""
    if path is None and use_default_location:
        path = default_config_path()
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    import yaml
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    unknown = set(data) - {"instruments", "default", "version", "execution", "targets"}
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key(s) {sorted(unknown)}; expected 'instruments', "
                          "'default', 'execution', 'targets'")
    instruments = []
    for name, spec in (data.get("instruments") or {}).items():
        instruments.append(_instrument_from_dict(name, spec, str(p)))
    default = DEFAULT_INSTRUMENT
    if data.get("default"):
        default = _instrument_from_dict("default", data["default"], str(p))
    execution = _execution_from_dict(data.get("execution") or {}, str(p))
    targets = _targets_from_dict(data.get("targets") or {}, str(p))
    return Config(instruments=tuple(instruments), source=str(p), default=default, execution=execution,
                  targets=targets)


def _execution_from_dict(spec: Any, where: str) -> Execution:
    """The ``execution`` section, checked (clear errors, like every other key)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: execution must be a mapping")
    known = {f.name for f in fields(Execution)}
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        loc = f"{where}: execution.{key}"
        if key not in known:
            import difflib
            hint = difflib.get_close_matches(str(key), sorted(known), n=1)
            raise ConfigError(f"{loc}: unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        if value is None:
            continue
        if key == "executor":
            if value not in ("local", "dask"):
                raise ConfigError(f"{loc}: must be 'local' or 'dask', not {value!r}")
        elif key in ("jobs", "groups_at_once"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{loc}: expected a positive whole number, got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{loc}: expected an address like tcp://HOST:PORT, got {value!r}")
        kwargs[key] = value.strip() if isinstance(value, str) else value
    return Execution(**kwargs)
