"""Flag reasons grouped by kind, for the summary, the log, --summary-json and the provenance.

Frames flagged for the same kind of reason ("sky outlier: 3.1 sigma from its trend (> 3)", "...
5.7 sigma ...") make one entry: the reason with every number that differs between them given as
its range ("sky outlier: 3.1-5.7 sigma from its trend (> 3)"), and the count of frames.
"""
from __future__ import annotations

import re

__all__ = ["group_reasons"]

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def group_reasons(flagged) -> list[dict]:
    """``(file, flag, reason)`` entries grouped by reason kind (the reason without its numbers):
    ``{"reason", "frames", "flag", "range"}`` by decreasing count, ``reason`` with each differing
    number as its range, ``flag`` the OR of the frames' flags, ``range`` the first differing
    number's [low, high] (None when none differs)."""
    groups: dict[tuple, list] = {}
    for _file, flag, reason in flagged:
        parts = _NUMBER.split(str(reason))
        groups.setdefault(tuple(parts[0::2]), []).append((int(flag), parts[1::2]))
    out = []
    for text, members in groups.items():
        merged, first = _merge(text, [m[1] for m in members])
        flag = 0
        for f, _ in members:
            flag |= f
        out.append({"reason": merged, "frames": len(members), "flag": flag, "range": first})
    return sorted(out, key=lambda g: -g["frames"])


def _merge(text: tuple, numbers: list) -> tuple[str, list | None]:
    """The reason's text with each number position written as its value or its low-high range."""
    pieces, first = [text[0]], None
    for k in range(len(text) - 1):
        values = [n[k] for n in numbers]
        lo, hi = min(values, key=float), max(values, key=float)
        if float(lo) == float(hi):
            pieces.append(values[0])
        else:
            pieces.append(f"{lo}-{hi}")
            first = first or [float(lo), float(hi)]
        pieces.append(text[k + 1])
    return "".join(pieces), first
