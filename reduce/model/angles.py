"""Sky angles as observers write them, read the same way by every layer (headers, recipes, CLI).

A number is degrees. A string is degrees (``"187.5"``) or sexagesimal: ``"12:30:00"``,
``"12 30 00"``, ``"12h30m00s"``, ``"-05d20'10\""``. A sexagesimal RA below 24 is hours
(``12:30:00`` = 187.5 deg), from 24 on degrees; a Dec is always degrees. Minutes and seconds must
be below 60.
"""
from __future__ import annotations

import math
import re

__all__ = ["parse_angle", "ra_degrees", "dec_degrees"]

_SEPARATORS = re.compile(r"[:\s hdm°'\"s]+")


def parse_angle(value) -> tuple[float | None, bool]:
    """(value, was_sexagesimal) of a number or an angle string; (None, ...) when unreadable."""
    if isinstance(value, bool):
        return None, False
    if isinstance(value, (int, float)):
        return (float(value) if math.isfinite(value) else None), False
    text = str(value).strip().lower()
    parts = [p for p in _SEPARATORS.split(text.strip(" s\"")) if p]
    if len(parts) == 1:
        return _finite(parts[0]), False
    if not 1 < len(parts) <= 3:
        return None, False
    try:
        numbers = [abs(float(p)) for p in parts]
    except ValueError:
        return None, True
    if any(n >= 60 for n in numbers[1:]) or not all(map(math.isfinite, numbers)):
        return None, True
    angle = numbers[0] + sum(n / 60 ** (i + 1) for i, n in enumerate(numbers[1:]))
    return (-angle if text.startswith("-") else angle), True


def ra_degrees(value) -> float | None:
    """Right ascension in degrees [0, 360), or None (see the module's conventions)."""
    x, sexagesimal = parse_angle(value)
    if x is None:
        return None
    if sexagesimal and x < 24:
        x *= 15.0
    return x if 0 <= x < 360.0001 else None


def dec_degrees(value) -> float | None:
    """Declination in degrees [-90, 90], or None."""
    x, _ = parse_angle(value)
    return x if x is not None and -90 <= x <= 90 else None


def _finite(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None
