"""Dates and times of FITS headers: JD <-> datetime, DATE-OBS / TIME-OBS parsing, night of a frame.

Kept apart from :mod:`reduce.index.headers` (which applies the instrument's keyword roles) so the
calendar arithmetic can be read and tested on its own; standard library only.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["jd_from_datetime", "datetime_from_jd", "night_of", "human_duration"]

_JD_J2000 = 2451545.0
_J2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)


def jd_from_datetime(dt: datetime) -> float:
    """JD (UTC) of an aware or naive-UTC datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _JD_J2000 + (dt - _J2000).total_seconds() / 86400.0


def datetime_from_jd(jd: float) -> datetime:
    """Aware UTC datetime of a JD (UTC)."""
    return _J2000 + timedelta(days=jd - _JD_J2000)


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                  r"\s*(Z|UTC?|[+-]\d{2}(?::?\d{2})?)?$", re.I)
_OLD = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")  # pre-2000 FITS 'DD/MM/YY'
_HMS = re.compile(r"^(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?$")


def _parse_date(value) -> tuple[datetime | None, bool, timedelta | None]:
    """(naive datetime, has_time, UTC offset or None) of a DATE-OBS-like value."""
    s = str(value).strip()
    m = _ISO.match(s)
    if m:
        y, mo, d, hh, mm, ss, frac, tz = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d))
        except ValueError:
            return None, False, None
        if hh is None:
            return dt, False, None
        secs = int(hh) * 3600 + int(mm) * 60 + int(ss or 0) + (float("0." + frac) if frac else 0.0)
        offset = None
        if tz and tz.upper() not in ("Z", "UT", "UTC"):
            digits = tz[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
            offset = timedelta(minutes=minutes if tz[0] == "+" else -minutes)
        elif tz:
            offset = timedelta(0)
        return dt + timedelta(seconds=secs), True, offset
    m = _OLD.match(s)
    if m:
        d, mo, y = (int(x) for x in m.groups())
        try:
            return datetime(1900 + y, mo, d), False, None
        except ValueError:
            return None, False, None
    return None, False, None


def _parse_time_of_day(value) -> float | None:
    """Seconds after midnight from 'hh:mm:ss[.fff]' or decimal hours."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 3600 if 0 <= value < 24 else None
    m = _HMS.match(str(value).strip())
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    return int(hh) * 3600 + int(mm) * 60 + int(ss or 0) + (float("0." + frac) if frac else 0.0)


def night_of(utc: datetime, *, longitude: float | None = None, offset: timedelta | None = None) -> str:
    """Local date at which the night containing ``utc`` began (the day before local noon)."""
    if longitude is not None:
        local = utc + timedelta(hours=((longitude + 180) % 360 - 180) / 15.0)
    elif offset is not None:
        local = utc + offset
    else:
        local = utc
    return (local - timedelta(hours=12)).date().isoformat()


def _string_resolution(value) -> float:
    """Seconds of one unit of the last digit of a date-time or time-of-day string ('...:43.317'
    is good to 1 ms, '...:43' to 1 s, '18:33' to 1 min); the precision a comparison must allow."""
    s = str(value).strip()
    m = re.search(r"\d{1,2}:\d{2}(:\d{2}(\.(\d+))?)?", s)
    if m is None:
        return 60.0 if isinstance(value, (int, float)) else 86400.0
    if m.group(1) is None:
        return 60.0
    return 10.0 ** -len(m.group(3)) if m.group(3) else 1.0


def _number_resolution(value) -> float:
    """One unit of the last decimal a number was written with (58107.065 -> 0.001); the shortest
    repr of a float never shows more decimals than were written, so this never underestimates."""
    text = repr(float(value)) if not isinstance(value, str) else value.strip()
    text = text.lower().replace("d", "e")
    mantissa, _, exp = text.partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exp) if exp else 0))


def human_duration(seconds: float) -> str:
    """'7.0 s', '12.3 min', '5.2 h', '3.1 days', '31.0 years'."""
    s = abs(seconds)
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.1f} s"
