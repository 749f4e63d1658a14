"""Header values as the index reads them: the first of several keywords present, text and numbers
tolerant of what cameras write, and the notes (warnings) a frame's header earns."""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["first_value", "first_item", "text_value", "number_value", "shown", "Notes"]


def first_value(header, keys) -> Any:
    for k in keys:
        v = header.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def text_value(v) -> str:
    if v is None or isinstance(v, bool):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def number_value(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(str(v).strip().replace("D", "E")) if isinstance(v, str) else float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


class Notes(list):
    """Header warnings of one frame: (code, message) pairs, stored as JSON in ``FrameInfo.notes``."""

    def add(self, code: str, message: str) -> None:
        self.append((code, message))

    def dumps(self) -> str | None:
        return json.dumps(self) if self else None


def first_item(header, keys) -> tuple[str | None, Any]:
    """(keyword, value) of the first of ``keys`` present with a non-empty value."""
    for k in keys:
        v = header.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return k, v
    return None, None


def shown(v) -> str:
    """A header value as written in a FITS card (strings quoted)."""
    return f"'{v}'" if isinstance(v, str) else f"{v!r}" if isinstance(v, float) else str(v)
