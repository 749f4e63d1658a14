"""Describe a frame from its header: type, target, filter, times, site, detector values.

:func:`describe` turns a header into a :class:`FrameInfo`, applying the instrument's keyword roles
and the heuristics for cameras that label frames badly; :func:`frame_info` reads a file's header
(:mod:`reduce.io.fits`, never pixel data) and describes it. The date/time parsing lives
in :mod:`reduce.index.times`.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from ..config import DEFAULT_INSTRUMENT, Config, Instrument
from ..model.angles import dec_degrees, parse_angle, ra_degrees
from ..io.fits import NotAnImage, UnreadableFile, _image_shape, _read_raw, is_fits_name, read_header
from .times import (_number_resolution, _parse_date, _parse_time_of_day, _string_resolution, datetime_from_jd,
                    human_duration, jd_from_datetime, night_of)

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
    latitude: float | None = None
    longitude: float | None = None          # east-positive, as used (after any west correction)
    elevation: float | None = None
    longitude_source: str | None = None     # config, or header[-east|-west] (config says) or
    #                                         header-west-offset|-noon (found), then ':KEYWORD
    time_source: str | None = None          # the keyword(s) the time came from, e.g. 'DATE-OBS'
    time_resolution: float | None = None    # s: one unit of the last digit written in that keyword
    notes: str | None = None                # JSON list of [code, message]: header values set aside

    def to_dict(self) -> dict:
        return asdict(self)

    def note_list(self) -> list[tuple[str, str]]:
        """(code, message) of every header warning recorded for this frame."""
        return [tuple(n) for n in json.loads(self.notes)] if self.notes else []


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


class _Notes(list):
    """Header warnings of one frame: (code, message) pairs, stored as JSON in ``FrameInfo.notes``."""

    def add(self, code: str, message: str) -> None:
        self.append((code, message))

    def dumps(self) -> str | None:
        return json.dumps(self) if self else None


def _first_item(header, keys) -> tuple[str | None, Any]:
    """(keyword, value) of the first of ``keys`` present with a non-empty value."""
    for k in keys:
        v = header.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return k, v
    return None, None


def _shown(v) -> str:
    """A header value as written in a FITS card (strings quoted)."""
    return f"'{v}'" if isinstance(v, str) else f"{v!r}" if isinstance(v, float) else str(v)


@dataclass
class _Time:
    """One way the header gives the exposure time: keyword(s), UTC start (naive), raw value(s)."""

    source: str
    utc: datetime
    resolution: float
    value: str
    offset: timedelta | None = None


def _date_candidate(header, key, inst: Instrument) -> _Time | None:
    """DATE-OBS-like ``key`` as a time: with its own time of day, or with TIME-OBS/UT."""
    v = header.get(key)
    if v is None or not str(v).strip():
        return None
    dt, has_time, offset = _parse_date(v)
    if dt is None:
        return None
    source, value, res = key, _shown(v), _string_resolution(v)
    if not has_time:
        for tkey in inst.keys("time_obs"):
            t = header.get(tkey)
            secs = _parse_time_of_day(t) if t is not None and str(t).strip() else None
            if secs is not None:
                dt, source = dt + timedelta(seconds=secs), f"{key}+{tkey}"
                value, res = f"{_shown(v)} + {tkey} = {_shown(t)}", _string_resolution(t)
                break
        else:
            return None
    if offset is None and inst.timezone_offset_hours is not None:
        offset = timedelta(hours=inst.timezone_offset_hours)
    return _Time(source, dt - offset if offset is not None else dt, res, value, offset)


def _time_candidates(header, inst: Instrument) -> list[_Time]:
    """Every exposure time the header gives, in the default order of preference: DATE-OBS (with
    its time, or + TIME-OBS/UT), full date-times in the time keywords (UT-OBS), JD, MJD-OBS."""
    out = []
    for key in inst.keys("date_obs"):
        if key == "DATE":  # the file's writing time, never the observation's
            continue
        c = _date_candidate(header, key, inst)
        if c is not None:
            out.append(c)
            break
    for tkey in inst.keys("time_obs"):
        v = header.get(tkey)
        if isinstance(v, str) and "-" in v[:10]:
            dt, has_time, offset = _parse_date(v)
            if dt is not None and has_time:
                out.append(_Time(tkey, dt - offset if offset is not None else dt,
                                 _string_resolution(v), _shown(v), offset))
    for role, base in (("jd", 0.0), ("mjd", 2400000.5)):
        key, v = _first_item(header, inst.keys(role))
        x = _number(v)
        if x is not None and x > 0:
            try:
                utc = datetime_from_jd(x + base).replace(tzinfo=None)
            except OverflowError:
                continue
            out.append(_Time(key, utc, _number_resolution(v) * 86400.0, _shown(v)))
    return out


def _choose_time(cands: list[_Time], inst: Instrument, notes: _Notes) -> _Time | None:
    """The configured ``time_keyword``'s candidate, else the first (DATE-OBS before JD, MJD)."""
    if not cands:
        return None
    wanted = (inst.time_keyword or "").strip().upper()
    if wanted:
        for c in cands:
            if wanted in c.source.split("+") or wanted == c.source:
                return c
        notes.add("time_keyword_missing",
                  f"time_keyword {wanted} is not in the header; used {cands[0].source} = "
                  f"{cands[0].value} (keywords found: {', '.join(c.source for c in cands)})")
    return cands[0]


def _check_times(cands: list[_Time], used: _Time, exptime: float | None, notes: _Notes) -> None:
    """Note every time keyword that disagrees with the one used by more than the exposure (plus
    the precision each keyword is written with: MJD-OBS with 3 decimals is good to 86 s only)."""
    for c in cands:
        if c is used:
            continue
        diff = abs((c.utc - used.utc).total_seconds())
        tol = (exptime or 0.0) + c.resolution + used.resolution + 1.0
        if diff > tol:
            exp = f"the {exptime:g} s exposure" if exptime else "their precision"
            notes.add(f"time:{used.source}~{c.source}",
                      f"time keywords disagree: {used.source} = {used.value} and {c.source} = {c.value} "
                      f"are {human_duration(diff)} apart (more than {exp}); used {used.source}. To use "
                      f"{c.source} instead, set `time_keyword: {c.source.split('+')[-1]}` "
                      "for this instrument in the config (see sample_config.yaml)")


def _header_time(header, inst: Instrument, notes: _Notes | None = None,
                 exptime: float | None = None) -> tuple[datetime | None, timedelta | None, _Time | None]:
    """UTC datetime (naive) of the exposure the header gives, the DATE-OBS UTC offset, and the
    time used; time keywords that disagree with it are added to ``notes``."""
    notes = _Notes() if notes is None else notes
    cands = _time_candidates(header, inst)
    used = _choose_time(cands, inst, notes)
    if used is not None:
        _check_times(cands, used, exptime, notes)
        offset = next((c.offset for c in cands if c.offset), None)
        return used.utc, offset, used
    fallback = None
    for key in inst.keys("date_obs"):
        v = header.get(key)
        dt, _, offset = _parse_date(v) if v is not None and str(v).strip() else (None, False, None)
        if dt is None:
            continue
        if key != "DATE":
            fallback = fallback or (dt, key)  # a date without a time of day
            continue
        if fallback is None:
            return (dt - offset if offset is not None else dt), offset, _Time(key, dt, 1.0, _shown(v))
    if fallback is not None:
        return fallback[0], None, _Time(fallback[1], fallback[0], 86400.0, "")
    return None, None, None


def _wrap_hours(h: float) -> float:
    return (h + 12.0) % 24.0 - 12.0


def _west_by_offset(x: float, offset: timedelta | None) -> bool:
    """True when a header longitude ``x`` read east-positive is far from the local clock's UTC
    offset and read west-positive fits it (a UTC offset says where on Earth the clock is)."""
    if offset is None or not offset:
        return False
    hours = offset.total_seconds() / 3600.0
    east, west = abs(_wrap_hours(x / 15.0 - hours)), abs(_wrap_hours(-x / 15.0 - hours))
    return east > 2.5 and west + 2.0 < east


def _site_number(header, inst: Instrument, role: str, bounds, notes: _Notes, why: str):
    """The header's value for ``role`` (number or sexagesimal), or None (noted) when it is out of
    ``bounds`` or unreadable: never silently used."""
    key, v = _first_item(header, inst.keys(role))
    x = parse_angle(v)[0] if v is not None else None
    if v is not None and (x is None or not bounds[0] <= x <= bounds[1]):
        notes.add(role, f"{key} = {_shown(v)} {why}")
        return None
    return x


def _site_values(header, inst: Instrument, offset: timedelta | None, notes: _Notes):
    """(latitude, longitude east-positive, elevation m, longitude source) with values that make no
    physical sense set aside (noted), and a west-positive header longitude detected."""
    lat = inst.latitude if inst.latitude is not None else _site_number(
        header, inst, "latitude", (-90, 90), notes, "is not a latitude (-90..90): ignored; set "
        "`site: {latitude: ...}` for this instrument in the config")
    elev = inst.elevation if inst.elevation is not None else _site_number(
        header, inst, "elevation", (-500, 9000), notes, "is not a site elevation in metres "
        "(-500..9000): ignored")
    if inst.longitude is not None:
        return lat, inst.longitude, elev, "config"
    key, v = _first_item(header, inst.keys("longitude"))
    x = parse_angle(v)[0] if v is not None else None
    if v is None:
        return lat, None, elev, None
    if x is None or not -360 <= x <= 360:
        notes.add("longitude", f"{key} = {_shown(v)} is not a longitude (-360..360): ignored; set "
                  "`site: {longitude: ...}` (east-positive) for this instrument in the config")
        return lat, None, elev, None
    if not -180 <= x <= 180:
        x = (x + 180.0) % 360.0 - 180.0
    if inst.longitude_positive_west:
        return lat, -x, elev, f"header-west:{key}"
    if inst.longitude_positive_west is False:  # said in the config: never corrected
        return lat, x, elev, f"header-east:{key}"
    if inst.longitude_positive_west is None and _west_by_offset(x, offset):
        hours = offset.total_seconds() / 3600.0
        notes.add("longitude_west",
                  f"{key} = {_shown(v)} contradicts the local-time UTC offset {hours:+g} h of the "
                  f"frame's time (a site at {x:g} E keeps UTC{x / 15.0:+.1f} h): taken as "
                  f"west-positive ({abs(x):g} W). To say so, set `site: {{longitude_positive_west: "
                  "true}` for this instrument in the config (false keeps it east-positive)")
        return lat, -x, elev, f"header-west-offset:{key}"
    return lat, x, elev, f"header:{key}"


def site(header, inst: Instrument | None = None) -> tuple[float | None, float | None, float | None]:
    """(latitude, longitude east-positive, elevation m) of the observatory: each value from the
    instrument configuration, else from the header (numbers or sexagesimal strings); values out
    of range are ignored and a west-positive header longitude (contradicting the DATE-OBS UTC
    offset) is corrected."""
    inst = inst or DEFAULT_INSTRUMENT
    _, offset, _ = _header_time(header, inst)
    lat, lon, elev, _ = _site_values(header, inst, offset, _Notes())
    return lat, lon, elev


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


def _checked(header, inst: Instrument, role: str, ok, what: str, notes: _Notes, *,
             parse=_number, fix: str = "") -> float | None:
    """The header's value for ``role`` when it makes physical sense (``ok``), else None with a note
    naming the keyword and value (a value that cannot be right is never silently used)."""
    key, v = _first_item(header, inst.keys(role))
    if v is None:
        return None
    x = parse(v)
    if x is not None and ok(x):
        return x
    notes.add(role, f"{key} = {_shown(v)} is not {what}: ignored" + (f"; {fix}" if fix else ""))
    return None


def _config_fix(role: str) -> str:
    return f"set `{role}: ...` for this instrument in the config to give it"


def describe(header, path, instrument: Instrument | None = None, *, hdu: int = 0,
             shape: tuple[int, int] | None = None) -> FrameInfo:
    """Describe a frame from its header (astropy Header or any mapping with ``get``).

    Configured gain, read noise and saturation override the header's; the telescope is the
    matched instrument's name when one matches, else the header's TELESCOP/INSTRUME/OBSERVAT.
    Header values that make no physical sense (EXPTIME < 0, GAIN <= 0, latitude 95, RA 'garbage',
    ...) are ignored and noted in ``notes``, as are time keywords that disagree.
    """
    inst = instrument or DEFAULT_INSTRUMENT
    path = os.fspath(path)
    if shape is None:
        shape = _image_shape(header) or (0, 0)
    height, width = int(shape[0]), int(shape[1])
    notes = _Notes()
    exptime = _checked(header, inst, "exptime", lambda x: x >= 0, "an exposure time (s, >= 0)", notes,
                       fix="the frame's mid-exposure time is then its header time")
    start, offset, used = _header_time(header, inst, notes, exptime)
    lat, lon, elev, lon_source = _site_values(header, inst, offset, notes)
    jd = date_obs = night = None
    if start is not None:
        half = timedelta(seconds=(exptime or 0.0) / 2)
        if inst.time_reference == "mid":
            start = start - half
        jd = jd_from_datetime(start + half)
        date_obs = start.isoformat(timespec="milliseconds")
        night = night_of(start, longitude=lon, offset=offset)
    telescope = inst.name if inst is not DEFAULT_INSTRUMENT and inst.name != "default" \
        else _text(_first(header, inst.keys("telescope")))
    bitpix = header.get("BITPIX")
    bzero = _number(header.get("BZERO"))
    bitpix = int(bitpix) if isinstance(bitpix, (int, float)) and not isinstance(bitpix, bool) else None
    saturation = inst.saturation if inst.saturation is not None else _checked(
        header, inst, "saturation", lambda x: x > 0, "a saturation level (ADU > 0)", notes,
        fix=_config_fix("saturation"))
    gain = inst.gain if inst.gain is not None else _checked(
        header, inst, "gain", lambda x: x > 0, "a gain (e-/ADU > 0)", notes, fix=_config_fix("gain"))
    read_noise = inst.read_noise if inst.read_noise is not None else _checked(
        header, inst, "read_noise", lambda x: x >= 0, "a read noise (e- >= 0)", notes,
        fix=_config_fix("read_noise"))
    ra = _checked(header, inst, "ra", lambda x: True, "a right ascension (0..360 deg or 0..24 h)",
                  notes, parse=ra_degrees, fix="the group's other frames give the target's position")
    dec = _checked(header, inst, "dec", lambda x: True, "a declination (-90..90 deg)", notes,
                   parse=dec_degrees, fix="the group's other frames give the target's position")
    airmass = _checked(header, inst, "airmass", lambda x: 0.99 <= x <= 100, "an airmass (1..100)", notes,
                       fix="it is computed from the target and site when they are known")
    return FrameInfo(
        path=path, hdu=int(hdu), type=_frame_type(header, path, inst, exptime),
        telescope=telescope, instrument=_text(_first(header, inst.keys("instrument"))),
        filter=_text(_first(header, inst.keys("filter"))),
        target=_text(_first(header, inst.keys("object"))),
        exptime=exptime, date_obs=date_obs, jd=jd, night=night, width=width, height=height,
        ra=ra, dec=dec, airmass=airmass, gain=gain, read_noise=read_noise,
        saturation=saturation if saturation is not None else _default_saturation(bitpix, bzero or 0),
        bitpix=bitpix, bzero=bzero or 0.0, latitude=lat, longitude=lon, elevation=elev,
        longitude_source=lon_source, time_source=used.source if used is not None else None,
        time_resolution=used.resolution if used is not None else None, notes=notes.dumps(),
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
