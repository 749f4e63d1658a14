"""Describe a frame from its header: type, target, filter, times, site, detector values.

:func:`describe` turns a header into a :class:`FrameInfo`, applying the instrument's keyword roles
and the heuristics for cameras that label frames badly; :func:`frame_info` reads a file's header
(:mod:`reduce.io.fits`, never pixel data) and describes it. The date/time parsing lives
in :mod:`reduce.index.times`.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from ..config import DEFAULT_INSTRUMENT, Config, Instrument
from ..model.angles import dec_degrees, ra_degrees
from ..io.fits import NotAnImage, UnreadableFile, image_shape, read_raw, is_fits_name, read_header
from .keywords import Notes, first_item, first_value, number_value, shown, text_value
from .site import site_values
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
    source, value, res = key, shown(v), _string_resolution(v)
    if not has_time:
        for tkey in inst.keys("time_obs"):
            t = header.get(tkey)
            secs = _parse_time_of_day(t) if t is not None and str(t).strip() else None
            if secs is not None:
                dt, source = dt + timedelta(seconds=secs), f"{key}+{tkey}"
                value, res = f"{shown(v)} + {tkey} = {shown(t)}", _string_resolution(t)
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
                                 _string_resolution(v), shown(v), offset))
    for role, base in (("jd", 0.0), ("mjd", 2400000.5)):
        key, v = first_item(header, inst.keys(role))
        x = number_value(v)
        if x is not None and x > 0:
            try:
                utc = datetime_from_jd(x + base).replace(tzinfo=None)
            except OverflowError:
                continue
            out.append(_Time(key, utc, _number_resolution(v) * 86400.0, shown(v)))
    return out


def _choose_time(cands: list[_Time], inst: Instrument, notes: Notes) -> _Time | None:
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


def _check_times(cands: list[_Time], used: _Time, exptime: float | None, notes: Notes) -> None:
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


def _header_time(header, inst: Instrument, notes: Notes | None = None,
                 exptime: float | None = None) -> tuple[datetime | None, timedelta | None, _Time | None]:
    """UTC datetime (naive) of the exposure the header gives, the DATE-OBS UTC offset, and the
    time used; time keywords that disagree with it are added to ``notes``."""
    notes = Notes() if notes is None else notes
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
            return (dt - offset if offset is not None else dt), offset, _Time(key, dt, 1.0, shown(v))
    if fallback is not None:
        return fallback[0], None, _Time(fallback[1], fallback[0], 86400.0, "")
    return None, None, None


_PATTERNS: dict[int, tuple] = {}


def site(header, inst: Instrument | None = None) -> tuple[float | None, float | None, float | None]:
    """(latitude, longitude east-positive, elevation m) of the observatory: each value from the
    instrument configuration, else from the header (numbers or sexagesimal strings); values out
    of range are ignored and a west-positive header longitude (contradicting the DATE-OBS UTC
    offset) is corrected."""
    inst = inst or DEFAULT_INSTRUMENT
    _, offset, _ = _header_time(header, inst)
    lat, lon, elev, _ = site_values(header, inst, offset, Notes())
    return lat, lon, elev


def filename_type(inst: Instrument, name: str) -> str | None:
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
    v = first_value(header, inst.keys("imagetyp"))
    if v is not None:
        declared = inst.type_from_value(str(v))
    if declared in (None, "light"):
        folder, name = os.path.split(path)
        named = filename_type(inst, name) or filename_type(inst, os.path.basename(folder))
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


def _checked(header, inst: Instrument, role: str, ok, what: str, notes: Notes, *,
             parse=number_value, fix: str = "") -> float | None:
    """The header's value for ``role`` when it makes physical sense (``ok``), else None with a note
    naming the keyword and value (a value that cannot be right is never silently used)."""
    key, v = first_item(header, inst.keys(role))
    if v is None:
        return None
    x = parse(v)
    if x is not None and ok(x):
        return x
    notes.add(role, f"{key} = {shown(v)} is not {what}: ignored" + (f"; {fix}" if fix else ""))
    return None


def _config_fix(role: str) -> str:
    return f"set `{role}: ...` for this instrument in the config to give it"


def describe(header, path, instrument: Instrument | None = None, *, hdu: int = 0,
             shape: tuple[int, int] | None = None) -> FrameInfo:
    """Describe a frame from its header (astropy Header or any mapping with ``get``).

    Configured gain, read noise and saturation override the header's; the telescope is the
    header's TELESCOP/INSTRUME/OBSERVAT (a config's instrument name only selects the instrument:
    product names must not move when a config is added), the instrument's name only when the
    header names no telescope.
    Header values that make no physical sense (EXPTIME < 0, GAIN <= 0, latitude 95, RA 'garbage',
    ...) are ignored and noted in ``notes``, as are time keywords that disagree.
    """
    inst = instrument or DEFAULT_INSTRUMENT
    path = os.fspath(path)
    if shape is None:
        shape = image_shape(header) or (0, 0)
    height, width = int(shape[0]), int(shape[1])
    notes = Notes()
    exptime = _checked(header, inst, "exptime", lambda x: x >= 0, "an exposure time (s, >= 0)", notes,
                       fix="the frame's mid-exposure time is then its header time")
    start, offset, used = _header_time(header, inst, notes, exptime)
    lat, lon, elev, lon_source = site_values(header, inst, offset, notes)
    jd = date_obs = night = None
    if start is not None:
        half = timedelta(seconds=(exptime or 0.0) / 2)
        if inst.time_reference == "mid":
            start = start - half
        jd = jd_from_datetime(start + half)
        date_obs = start.isoformat(timespec="milliseconds")
        night = night_of(start, longitude=lon, offset=offset)
    telescope = text_value(first_value(header, inst.keys("telescope")))
    if not telescope and inst is not DEFAULT_INSTRUMENT and inst.name != "default":
        telescope = inst.name
    bitpix = header.get("BITPIX")
    bzero = number_value(header.get("BZERO"))
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
        telescope=telescope, instrument=text_value(first_value(header, inst.keys("instrument"))),
        filter=text_value(first_value(header, inst.keys("filter"))),
        target=text_value(first_value(header, inst.keys("object"))),
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
    cards, hdu, shape, _ = read_raw(path)
    inst = (config or Config()).instrument_for(cards)
    try:
        return describe(cards, path, inst, hdu=hdu, shape=shape)
    except (ValueError, TypeError, OverflowError) as e:
        raise UnreadableFile(f"unusable header: {e}") from None
