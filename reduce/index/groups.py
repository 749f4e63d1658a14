"""Group indexed frames into observations and render them as a table, CSV or JSON.

A group is one (night, telescope, filter, type, target, size, exposure) combination. Calibration
frames ignore the target (a bias is a bias whatever OBJECT says); lights and flats ignore the
exposure (auto-exposed flats and lights stay one series), whose median the group reports.
A night is never split mid-series (:func:`link_nights`), and each group carries the header
warnings of its frames, once per kind, with the config fix (:func:`group_warnings`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Iterable, Sequence

from .headers import FrameInfo
from .times import datetime_from_jd, human_duration, night_of

__all__ = ["Group", "group_frames", "link_nights", "group_warnings", "NIGHT_GAP_HOURS", "groups_table",
           "groups_csv", "groups_json", "files_table",
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
    warnings: list[dict] = field(default_factory=list)   # {code, message, frames}: see group_warnings
    ra: float | None = None          # pointing of the frames (deg; circular mean), for frames lacking it
    dec: float | None = None
    site: tuple | None = None        # (latitude, longitude east-positive, elevation m) of the frames

    @property
    def label(self) -> str:
        """``<night>_<telescope>_<target>_<filter>`` (calibration groups use their type as target),
        the name of the group's products (:func:`reduce.io.names.safe_stem`: one name everywhere)."""
        from ..io.names import safe_stem

        return safe_stem(self.night, self.telescope, self.target if self.type == "light" else self.type,
                         self.filter)

    def __len__(self) -> int:
        return len(self.files)

    def to_dict(self) -> dict:
        """The JSON form: keys date, telescope, filter, type, target, width, height, exposure, files
        (the count) and warnings (messages)."""
        return {"date": self.night, "telescope": self.telescope or None, "filter": self.filter or None,
                "type": self.type, "target": self.target or None, "width": self.width,
                "height": self.height, "exposure": self.exposure, "files": len(self.files),
                "warnings": [w["message"] for w in self.warnings]}


def _key(f: FrameInfo) -> tuple:
    """The group of a frame; targets equal once made file names ('TOI 700', 'TOI/700') are one: the
    scan shows the one group ``reduce run`` reduces under that name."""
    from ..io.names import name_key

    exposure = round(f.exptime, 3) if f.exptime is not None and f.type in ("bias", "dark") else None
    target = name_key(f.target.strip()) if f.type == "light" else ""
    return (f.night or "", f.telescope.strip().lower(), f.filter.strip().lower(), f.type, target,
            f.width, f.height, exposure)


def _sort_time(f: FrameInfo) -> tuple:
    return (f.jd if f.jd is not None else float("inf"), f.path)


def group_frames(frames: Iterable[FrameInfo]) -> list[Group]:
    """Groups of ``frames``, ordered by night, telescope, type, filter, target, exposure."""
    buckets: dict[tuple, list[FrameInfo]] = {}
    for f in link_nights(frames):
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
            files=[m.path for m in members], exposures=tuple(exps), warnings=group_warnings(members),
            site=_site(members), **_pointing(members)))
    groups.sort(key=lambda g: (g.night or "", g.telescope.lower(), TYPE_ORDER.get(g.type, 9),
                               g.filter.lower(), g.target.lower(),
                               g.exposure if g.exposure is not None else -1))
    return groups


# ---------------------------------------------------------------- nights

#: frames further apart than this start a new night when their local dates say so; closer ones
#: never do (the shortest daytime between two nights' frames is longer below latitude 60)
NIGHT_GAP_HOURS = 6.0


def _series(frames: list[FrameInfo]) -> list[list[int]]:
    """Indices of dated frames, per telescope, in runs without a gap of NIGHT_GAP_HOURS."""
    by_telescope: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        if f.jd is not None and f.night is not None:
            by_telescope.setdefault(f.telescope.strip().lower(), []).append(i)
    runs = []
    for idx in by_telescope.values():
        idx.sort(key=lambda i: frames[i].jd)
        run = [idx[0]]
        for i in idx[1:]:
            if (frames[i].jd - frames[run[-1]].jd) * 24.0 >= NIGHT_GAP_HOURS:
                runs.append(run)
                run = []
            run.append(i)
        runs.append(run)
    return runs


def _start(f: FrameInfo):
    """Naive UTC datetime of the exposure start (what :func:`night_of` takes)."""
    return datetime_from_jd(f.jd - (f.exptime or 0.0) / 172800.0).replace(tzinfo=None)


def _noon_west(frames: list[FrameInfo], run: list[int]) -> float | None:
    """The header longitude of a run when, read east-positive, it puts local noon inside the run
    and read west-positive it does not and centres it on the night (a west-positive LONGITUD
    without a UTC offset to tell)."""
    first, last = frames[run[0]], frames[run[-1]]
    lons = {frames[i].longitude for i in run}
    sources = {frames[i].longitude_source or "" for i in run}
    if len(lons) != 1 or len(sources) != 1 or not sources.pop().startswith("header:"):
        return None
    lon = lons.pop()
    if lon is None or abs(lon) < 15.0 or first.night == last.night:
        return None
    if night_of(_start(first), longitude=-lon) != night_of(_start(last), longitude=-lon):
        return None
    mid = datetime_from_jd((first.jd + last.jd) / 2) + timedelta(hours=-lon / 15.0)
    if 7 < mid.hour + mid.minute / 60 < 17:  # west-positive would make it a daytime series: unclear
        return None
    return lon


def link_nights(frames: Iterable[FrameInfo]) -> list[FrameInfo]:
    """``frames`` with the night of every series set to that of its first frame, so a run of frames
    without a daytime-length gap (NIGHT_GAP_HOURS) is one night, whatever the clock or longitude.

    A header longitude that puts local noon inside a series, where its west-positive reading
    does not, is taken as west-positive for that series (with a note saying the config fix).
    """
    frames = list(frames)
    for run in _series(frames):
        lon = _noon_west(frames, run)
        if lon is not None:
            key = frames[run[0]].longitude_source.partition(":")[2]
            note = ["longitude_west", f"{key} = {lon:g} read east-positive puts local noon inside "
                    f"the night's series of frames: taken as west-positive ({lon:g} W). To say so, set "
                    "`site: {longitude_positive_west: true}` for this instrument in the config "
                    "(false keeps it east-positive)"]
            for i in run:
                f = frames[i]
                notes = json.dumps(json.loads(f.notes or "[]") + [note])
                frames[i] = replace(f, longitude=-lon, longitude_source=f"header-west-noon:{key}",
                                    notes=notes, night=night_of(_start(f), longitude=-lon))
        night = frames[run[0]].night
        for i in run:
            if frames[i].night != night:
                frames[i] = replace(frames[i], night=night)
    return frames


# ---------------------------------------------------------------- group checks

def _site(members: list[FrameInfo]) -> tuple | None:
    """(latitude, longitude, elevation) of the first frame that has a latitude and a longitude."""
    for m in members:
        if m.latitude is not None and m.longitude is not None:
            return (m.latitude, m.longitude, m.elevation)
    return None


def _pointing(members: list[FrameInfo]) -> dict:
    """``{ra, dec}``: circular mean of the frames' header pointing (None when none has one)."""
    xyz = [(math.cos(math.radians(m.dec)) * math.cos(math.radians(m.ra)),
            math.cos(math.radians(m.dec)) * math.sin(math.radians(m.ra)), math.sin(math.radians(m.dec)))
           for m in members if m.ra is not None and m.dec is not None]
    if not xyz:
        return {"ra": None, "dec": None}
    x, y, z = (sum(c) / len(xyz) for c in zip(*xyz))
    return {"ra": math.degrees(math.atan2(y, x)) % 360.0,
            "dec": math.degrees(math.atan2(z, math.hypot(x, y)))}


def _overlaps(members: list[FrameInfo]) -> dict | None:
    """A warning when consecutive exposures overlap (their times cannot all be right)."""
    timed = [m for m in members if m.jd is not None]
    bad = []
    for a, b in zip(timed, timed[1:]):
        end_a = a.jd + (a.exptime or 0.0) / 172800.0
        start_b = b.jd - (b.exptime or 0.0) / 172800.0
        tol = max(a.time_resolution or 1.0, b.time_resolution or 1.0, 1.0)
        if (end_a - start_b) * 86400.0 > tol:
            bad.append((a, b, (end_a - start_b) * 86400.0))
    if not bad:
        return None
    a, b, d = bad[0]
    source = a.time_source or "the header"
    return {"code": "exposures_overlap", "frames": len(bad) + 1, "message":
            f"{len(bad)} of {len(timed) - 1} consecutive exposures overlap (e.g. {Path(a.path).name} "
            f"ends {human_duration(d)} after {Path(b.path).name} starts): the times from {source} "
            "cannot all be right. Check the frames' time keywords (`reduce scan NIGHT --files --format "
            "json` says where each time came from) and choose another with `time_keyword: ...` "
            "(e.g. JD) for this instrument in the config"}


def group_warnings(members: list[FrameInfo]) -> list[dict]:
    """One warning per kind for a group's frames: ``{code, message, frames}`` where ``message``
    names the keywords and values of the first frame concerned (and how many frames), what was
    used and the config fix; consecutive light exposures that overlap are one more."""
    seen: dict[str, list] = {}
    for m in members:
        for code, message in m.note_list():
            entry = seen.setdefault(code, [message, Path(m.path).name, 0])
            entry[2] += 1
    n = len(members)
    out = [{"code": code, "frames": count,
            "message": (f"{count} of {n} frames (e.g. {file}): " if n > 1 else f"{file}: ") + message}
           for code, (message, file, count) in seen.items()]
    if members and members[0].type == "light":
        overlap = _overlaps(members)
        if overlap is not None:
            out.append(overlap)
    return out


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
    """One file's row (the JSON form also says which keyword gave the time and the header warnings)."""
    return {"path": f.path, "date": f.night, "type": f.type, "telescope": f.telescope or None,
            "filter": f.filter or None, "target": f.target or None, "exposure": f.exptime,
            "width": f.width, "height": f.height, "date_obs": f.date_obs, "jd": f.jd,
            "time_source": f.time_source, "warnings": [m for _, m in f.note_list()]}


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
    """JSON list of file objects (with ``time_source`` and ``warnings``)."""
    return json.dumps([_file_dict(f) for f in frames], indent=2)
