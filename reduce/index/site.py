"""The observing site from a frame's header: latitude, longitude (east-positive; a west-positive
header longitude is detected from the clock's UTC offset) and elevation, values that make no
physical sense set aside with a note."""
from __future__ import annotations

from datetime import timedelta

from ..config import Instrument
from ..model.angles import parse_angle
from .keywords import Notes, first_item, shown

__all__ = ["site_values"]


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


def _site_number(header, inst: Instrument, role: str, bounds, notes: Notes, why: str):
    """The header's value for ``role`` (number or sexagesimal), or None (noted) when it is out of
    ``bounds`` or unreadable: never silently used."""
    key, v = first_item(header, inst.keys(role))
    x = parse_angle(v)[0] if v is not None else None
    if v is not None and (x is None or not bounds[0] <= x <= bounds[1]):
        notes.add(role, f"{key} = {shown(v)} {why}")
        return None
    return x


def site_values(header, inst: Instrument, offset: timedelta | None, notes: Notes):
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
    key, v = first_item(header, inst.keys("longitude"))
    x = parse_angle(v)[0] if v is not None else None
    if v is None:
        return lat, None, elev, None
    if x is None or not -360 <= x <= 360:
        notes.add("longitude", f"{key} = {shown(v)} is not a longitude (-360..360): ignored; set "
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
                  f"{key} = {shown(v)} contradicts the local-time UTC offset {hours:+g} h of the "
                  f"frame's time (a site at {x:g} E keeps UTC{x / 15.0:+.1f} h): taken as "
                  f"west-positive ({abs(x):g} W). To say so, set `site: {{longitude_positive_west: "
                  "true}` for this instrument in the config (false keeps it east-positive)")
        return lat, -x, elev, f"header-west-offset:{key}"
    return lat, x, elev, f"header:{key}"
