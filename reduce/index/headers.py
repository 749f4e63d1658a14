"""Describe a frame from its header: type, target, filter, times, site, detector values.

:func:`describe` turns a header into a :class:`FrameInfo`, applying the instrument's keyword roles
and the heuristics for cameras that label frames badly; :func:`frame_info` reads a file's header
(:mod:`reduce.index.fitsheader`, never pixel data) and describes it. The date/time parsing lives
in :mod:`reduce.index.times`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from ..config import DEFAULT_INSTRUMENT, Config, Instrument
from .fitsheader import NotAnImage, UnreadableFile, _image_shape, _read_raw, is_fits_name, read_header
from .times import _parse_date, _parse_time_of_day, datetime_from_jd, jd_from_datetime, night_of

__all__ = ["UnreadableFile", "NotAnImage", "FrameInfo", "read_header", "describe", "frame_info", "site", "is_fits_name",
           "jd_from_datetime", "datetime_from_jd"]


@dataclass
class FrameInfo:
    """What the index knows about one frame (from its header and file name).

    ``jd`` is the JD (UTC) at mid-exposure; ``date_obs`` the ISO UTC exposure start; ``night`` the
    local date at which the night began (frames between two local noons share one night).
    """

    path: str
    hdu: int
    type: str
    telescope: str
    instrument: str
    filter: str
    target: str
    exptime: float | None
    date_obs: str | None
    jd: float | None
    night: str | None
    width: int
    height: int
    ra: float | None = None
    dec: float | None = None
    airmass: float | None = None
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    bitpix: int | None = None
    bzero: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


FRAME_FIELDS = tuple(f.name for f in fields(FrameInfo))


def _first(header, keys) -> Any:
    for k in keys:
        v = header.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def _text(v) -> str:
    if v is None or isinstance(v, bool):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def _number(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(str(v).strip().replace("D", "E")) if isinstance(v, str) else float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _sexagesimal(v) -> tuple[float | None, bool]:
    """(value, was_sexagesimal) of a number or a 'dd:mm:ss' / 'dd mm ss' / '12h30m' string."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _number(v), False
    s = str(v).strip().lower()
    if not s:
        return None, False
    parts = re.split(r"[:\s hdm°'\"s]+", s.strip(" s\""))
    parts = [p for p in parts if p]
    if len(parts) == 1:
        return _number(parts[0]), False
    try:
        nums = [abs(float(p)) for p in parts[:3]]
    except ValueError:
        return None, False
    value = nums[0] + sum(n / 60 ** (i + 1) for i, n in enumerate(nums[1:]))
    return (-value if s.startswith("-") else value), True


def _ra_deg(v) -> float | None:
    x, sexa = _sexagesimal(v)
    if x is None:
        return None
    if sexa and x < 24:
        x *= 15.0
    return x if 0 <= x < 360.0001 else None


def _dec_deg(v) -> float | None:
    x, _ = _sexagesimal(v)
    return x if x is not None and -90 <= x <= 90 else None


def _header_time(header, inst: Instrument) -> tuple[datetime | None, timedelta | None]:
    """UTC datetime (naive) that the header's time keywords give, and the DATE-OBS UTC offset."""
    date_keys = [k for k in inst.keys("date_obs") if k != "DATE"]
    fallback_date = None
    for key in date_keys:
        v = header.get(key)
        if v is None or not str(v).strip():
            continue
        dt, has_time, offset = _parse_date(v)
        if dt is None:
            continue
        if not has_time:
            t = _first(header, inst.keys("time_obs"))
            secs = _parse_time_of_day(t) if t is not None else None
            if secs is None:
                fallback_date = fallback_date or dt
                continue
            dt = dt + timedelta(seconds=secs)
        if offset is None and inst.timezone_offset_hours is not None:
            offset = timedelta(hours=inst.timezone_offset_hours)
        return (dt - offset if offset is not None else dt), offset
    for role, base in (("jd", 0.0), ("mjd", 2400000.5)):
        x = _number(_first(header, inst.keys(role)))
        if x is not None and x > 0:
            return datetime_from_jd(x + base).replace(tzinfo=None), None
    if "DATE" in inst.keys("date_obs") and fallback_date is None:
        v = header.get("DATE")
        dt, _, offset = _parse_date(v) if v is not None else (None, False, None)
        if dt is not None:
            return (dt - offset if offset is not None else dt), offset
    return fallback_date, None


def _longitude(header, inst: Instrument) -> float | None:
    """Site longitude, east-positive degrees: the instrument's, else the header's."""
    if inst.longitude is not None:
        return inst.longitude
    v = _first(header, inst.keys("longitude"))
    x, _ = _sexagesimal(v) if v is not None else (None, False)
    if x is None or not -360 <= x <= 360:
        return None
    return -x if inst.longitude_positive_west else x


def site(header, inst: Instrument | None = None) -> tuple[float | None, float | None, float | None]:
    """(latitude, longitude east-positive, elevation m) of the observatory: each value from the
    instrument configuration, else from the header (numbers or sexagesimal strings)."""
    inst = inst or DEFAULT_INSTRUMENT

    def value(role, configured):
        if configured is not None:
            return configured
        v = _first(header, inst.keys(role))
        return _sexagesimal(v)[0] if v is not None else None

    return (value("latitude", inst.latitude), _longitude(header, inst),
            value("elevation", inst.elevation))


_PATTERNS: dict[int, tuple] = {}


def _filename_type(inst: Instrument, name: str) -> str | None:
    """Frame type named by a file or folder name (the instrument's compiled patterns, cached)."""
    entry = _PATTERNS.get(id(inst))
    if entry is None or entry[0] is not inst:
        compiled = [(t, re.compile(p)) for t in ("bias", "dark", "flat")
                    for p in inst.filename_patterns.get(t, ())]
        entry = _PATTERNS[id(inst)] = (inst, compiled)
    low = name.lower()
    for ftype, rx in entry[1]:
        if rx.search(low):
            return ftype
    return None


def _frame_type(header, path: str, inst: Instrument, exptime: float | None) -> str:
    """bias/dark/flat/light from IMAGETYP, the file (or folder) name and the exposure time.

    A calibration type in IMAGETYP is trusted; 'light' or no IMAGETYP yields to a file name (then
    folder name) that says bias/dark/flat; a zero-second dark or light is a bias.
    """
    declared = None
    v = _first(header, inst.keys("imagetyp"))
    if v is not None:
        declared = inst.type_from_value(str(v))
    if declared in (None, "light"):
        folder, name = os.path.split(path)
        named = _filename_type(inst, name) or _filename_type(inst, os.path.basename(folder))
        if named is not None:
            declared = named
    ftype = declared or "light"
    if ftype in ("light", "dark") and exptime is not None and exptime == 0:
        ftype = "bias"
    return ftype


def _default_saturation(bitpix, bzero) -> float | None:
    if bitpix == 8:
        return 255.0
    if bitpix == 16:
        return 65535.0 if bzero == 32768 else 32767.0
    if bitpix == 32:
        return 4294967295.0 if bzero == 2147483648 else 2147483647.0
    return None


def describe(header, path, instrument: Instrument | None = None, *, hdu: int = 0,
             shape: tuple[int, int] | None = None) -> FrameInfo:
    """Describe a frame from its header (astropy Header or any mapping with ``get``).

    Configured gain, read noise and saturation override the header's; the telescope is the
    matched instrument's name when one matches, else the header's TELESCOP/INSTRUME/OBSERVAT.
    """
    inst = instrument or DEFAULT_INSTRUMENT
    path = os.fspath(path)
    if shape is None:
        shape = _image_shape(header) or (0, 0)
    height, width = int(shape[0]), int(shape[1])
    exptime = _number(_first(header, inst.keys("exptime")))
    start, offset = _header_time(header, inst)
    jd = date_obs = night = None
    if start is not None:
        half = timedelta(seconds=(exptime or 0.0) / 2)
        if inst.time_reference == "mid":
            start = start - half
        jd = jd_from_datetime(start + half)
        date_obs = start.isoformat(timespec="milliseconds")
        if offset is None and inst.timezone_offset_hours is not None:
            offset = timedelta(hours=inst.timezone_offset_hours)
        night = night_of(start, longitude=_longitude(header, inst), offset=offset)
    telescope = inst.name if inst is not DEFAULT_INSTRUMENT and inst.name != "default" \
        else _text(_first(header, inst.keys("telescope")))
    bitpix = header.get("BITPIX")
    bzero = _number(header.get("BZERO"))
    bitpix = int(bitpix) if isinstance(bitpix, (int, float)) and not isinstance(bitpix, bool) else None
    saturation = inst.saturation if inst.saturation is not None else _number(
        _first(header, inst.keys("saturation")))
    return FrameInfo(
        path=path, hdu=int(hdu), type=_frame_type(header, path, inst, exptime),
        telescope=telescope, instrument=_text(_first(header, inst.keys("instrument"))),
        filter=_text(_first(header, inst.keys("filter"))),
        target=_text(_first(header, inst.keys("object"))),
        exptime=exptime, date_obs=date_obs, jd=jd, night=night, width=width, height=height,
        ra=_ra_deg(_first(header, inst.keys("ra"))), dec=_dec_deg(_first(header, inst.keys("dec"))),
        airmass=_number(_first(header, inst.keys("airmass"))),
        gain=inst.gain if inst.gain is not None else _number(_first(header, inst.keys("gain"))),
        read_noise=inst.read_noise if inst.read_noise is not None else _number(
            _first(header, inst.keys("read_noise"))),
        saturation=saturation if saturation is not None else _default_saturation(bitpix, bzero or 0),
        bitpix=bitpix, bzero=bzero or 0.0,
    )


def frame_info(path, config: Config | None = None) -> FrameInfo:
    """Read one file's header (fast path) and describe it; raises :class:`UnreadableFile`."""
    path = os.fspath(path)
    cards, hdu, shape, _ = _read_raw(path)
    inst = (config or Config()).instrument_for(cards)
    try:
        return describe(cards, path, inst, hdu=hdu, shape=shape)
    except (ValueError, TypeError, OverflowError) as e:
        raise UnreadableFile(f"unusable header: {e}") from None
