"""File names of a group's products: one safe stem per (date, telescope, target, filter)."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["safe_stem", "name_key"]

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def _part(value, max_length: int = 64) -> str:
    """One name component: ASCII letters, digits, ``. + -``; others become ``_``; no leading dots."""
    if value is None:
        return "unknown"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"_{2,}", "_", text)
    text = text.strip("._-+")[:max_length].strip("._-+")
    return text or "unknown"


def safe_stem(date, telescope, target, filter) -> str:
    """``<date>_<telescope>_<target>_<filter>`` made safe as a single file name.

    Separators, spaces and other characters become ``_`` (``HAT-P-32/b`` -> ``HAT-P-32_b``,
    ``KIC 8462852`` -> ``KIC_8462852``), ``..`` cannot survive and no part starts with a dot, so the
    name never leaves the output folder or hides itself.
    """
    return "_".join(_part(v) for v in (date, telescope, target, filter))


def name_key(value) -> str:
    """How a name (e.g. an OBJECT) compares with others: its file-name form, case folded. 'TOI 700',
    'TOI/700' and 'toi_700' are one target, as their products have one name."""
    return _part(value).lower()
