"""Group indexed frames into observations and render them as a table, CSV or JSON.

A group is one (night, telescope, filter, type, target, size, exposure) combination. Calibration
frames ignore the target (a bias is a bias whatever OBJECT says); lights and flats ignore the
exposure (auto-exposed flats and lights stay one series), whose median the group reports.
"""
from __future__ import annotations

import csv
import io
import json
import re
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .headers import FrameInfo

__all__ = ["Group", "group_frames", "groups_table", "groups_csv", "groups_json", "files_table",
           "files_csv", "files_json", "render_table"]

TYPE_ORDER = {"bias": 0, "dark": 1, "flat": 2, "light": 3}
GROUP_COLUMNS = ("date", "telescope", "filter", "type", "target", "width", "height", "exposure", "files")
FILE_COLUMNS = ("path", "date", "type", "telescope", "filter", "target", "exposure", "width", "height",
                "date_obs", "jd")


@dataclass
class Group:
    """Frames of one night, telescope, filter, type, target, size (and exposure for bias/darks)."""

    night: str | None
    telescope: str
    filter: str
    type: str
    target: str
    width: int
    height: int
    exposure: float | None
    files: list[str] = field(default_factory=list)
    exposures: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``<night>_<telescope>_<target>_<filter>`` (calibration groups use their type as target),
        safe as a file name."""
        target = self.target if self.type == "light" else self.type
        parts = [self.night or "undated", self.telescope or "unknown", target or "unknown",
                 self.filter or "nofilter"]
        return "_".join(re.sub(r"[^A-Za-z0-9.+\-]+", "-", p).strip("-") or "x" for p in parts)

    def __len__(self) -> int:
        return len(self.files)

    def to_dict(self) -> dict:
        """The JSON form: keys date, telescope, filter, type, target, width, height, exposure, files."""
        return {"date": self.night, "telescope": self.telescope or None, "filter": self.filter or None,
                "type": self.type, "target": self.target or None, "width": self.width,
                "height": self.height, "exposure": self.exposure, "files": len(self.files)}


def _key(f: FrameInfo) -> tuple:
    exposure = round(f.exptime, 3) if f.exptime is not None and f.type in ("bias", "dark") else None
    target = f.target.strip().lower() if f.type == "light" else ""
    return (f.night or "", f.telescope.strip().lower(), f.filter.strip().lower(), f.type, target,
            f.width, f.height, exposure)


def _sort_time(f: FrameInfo) -> tuple:
    return (f.jd if f.jd is not None else float("inf"), f.path)


def group_frames(frames: Iterable[FrameInfo]) -> list[Group]:
    """Groups of ``frames``, ordered by night, telescope, type, filter, target, exposure."""
    buckets: dict[tuple, list[FrameInfo]] = {}
    for f in frames:
        buckets.setdefault(_key(f), []).append(f)
    groups = []
    for key, members in buckets.items():
        members.sort(key=_sort_time)
        first = members[0]
        exps = sorted({round(m.exptime, 3) for m in members if m.exptime is not None})
        values = [m.exptime for m in members if m.exptime is not None]
        groups.append(Group(
            night=first.night, telescope=first.telescope, filter=first.filter, type=first.type,
            target=first.target if first.type == "light" else "", width=first.width,
            height=first.height, exposure=round(statistics.median(values), 3) if values else None,
            files=[m.path for m in members], exposures=tuple(exps)))
    groups.sort(key=lambda g: (g.night or "", g.telescope.lower(), TYPE_ORDER.get(g.type, 9),
                               g.filter.lower(), g.target.lower(),
                               g.exposure if g.exposure is not None else -1))
    return groups


# ---------------------------------------------------------------- rendering

def _fmt_exposure(g: Group) -> str:
    if not g.exposures:
        return "-"
    if len(g.exposures) == 1:
        return f"{g.exposures[0]:g}"
    return f"{g.exposures[0]:g}-{g.exposures[-1]:g}"


def groups_table(groups: Sequence[Group], *, title: str | None = None):
    """A rich Table of groups (date, telescope, filter, type, target, width, height, exposure, files)."""
    from rich.table import Table
    t = Table(title=title, header_style="bold")
    for c in GROUP_COLUMNS:
        t.add_column(c, justify="right" if c in ("width", "height", "exposure", "files") else "left",
                     no_wrap=c in ("date", "type", "width", "height", "exposure", "files"))
    for g in groups:
        t.add_row(g.night or "-", g.telescope or "-", g.filter or "-", g.type, g.target or "-",
                  str(g.width), str(g.height), _fmt_exposure(g), str(len(g.files)))
    return t


def render_table(table, *, width: int = 120) -> str:
    """Plain text of a rich renderable (for ``repr`` and logs)."""
    from rich.console import Console
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(table)
    return buf.getvalue().rstrip("\n")


def _csv(rows: Iterable[Sequence], header: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def groups_csv(groups: Sequence[Group]) -> str:
    """CSV with one row per group (same columns as the table; exposure is the median)."""
    return _csv(([d[c] if d[c] is not None else "" for c in GROUP_COLUMNS]
                 for d in (g.to_dict() for g in groups)), GROUP_COLUMNS)


def groups_json(groups: Sequence[Group]) -> str:
    """JSON list of group objects (missing strings are null, ``files`` is the count)."""
    return json.dumps([g.to_dict() for g in groups], indent=2)


def _file_dict(f: FrameInfo) -> dict:
    return {"path": f.path, "date": f.night, "type": f.type, "telescope": f.telescope or None,
            "filter": f.filter or None, "target": f.target or None, "exposure": f.exptime,
            "width": f.width, "height": f.height, "date_obs": f.date_obs, "jd": f.jd}


def files_table(frames: Sequence[FrameInfo], *, title: str | None = None):
    """A rich Table with one row per file."""
    from rich.table import Table
    t = Table(title=title, header_style="bold")
    for c in FILE_COLUMNS:
        if c != "jd":
            t.add_column(c, overflow="fold")
    for f in frames:
        d = _file_dict(f)
        t.add_row(*("-" if d[c] is None or d[c] == "" else f"{d[c]:g}" if isinstance(d[c], float)
                    else str(d[c]) for c in FILE_COLUMNS if c != "jd"))
    return t


def files_csv(frames: Sequence[FrameInfo]) -> str:
    """CSV with one row per file."""
    return _csv(([("" if d[c] is None else d[c]) for c in FILE_COLUMNS]
                 for d in map(_file_dict, frames)), FILE_COLUMNS)


def files_json(frames: Sequence[FrameInfo]) -> str:
    """JSON list of file objects."""
    return json.dumps([_file_dict(f) for f in frames], indent=2)
