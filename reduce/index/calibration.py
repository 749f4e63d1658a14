"""Match calibration frames to a group of frames, saying why each choice was made.

Rules: same telescope and detector size; bias of any exposure; darks of the exposure nearest to
the group's (with the list of available exposures, so the caller can scale a dark); flats of the
same filter; when several nights hold suitable frames, the nearest night wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Sequence

from .groups import Group
from .headers import FrameInfo

__all__ = ["CalibrationMatch", "match_calibration"]


@dataclass
class CalibrationMatch:
    """Calibration files chosen for one group, and the human-readable reasons."""

    bias: list[str] = field(default_factory=list)
    darks: list[str] = field(default_factory=list)
    flats: list[str] = field(default_factory=list)
    dark_exposure: float | None = None
    dark_exposures: list[float] = field(default_factory=list)
    nights: dict[str, str | None] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when bias, darks and flats were all found."""
        return bool(self.bias and self.darks and self.flats)


def _norm(s: str | None) -> str:
    return (s or "").strip().lower()


def _day(night: str | None) -> int | None:
    try:
        return date.fromisoformat(night).toordinal() if night else None
    except ValueError:
        return None


def _nearest_night(frames: Sequence[FrameInfo], night: str | None) -> tuple[list[FrameInfo], str | None]:
    """The frames of the night closest to ``night`` (ties: the earlier night)."""
    by_night: dict[str | None, list[FrameInfo]] = {}
    for f in frames:
        by_night.setdefault(f.night, []).append(f)
    target = _day(night)

    def distance(n):  # dated nights first, nearest first, earlier on ties; undated last
        d = _day(n)
        if d is None:
            return (1, 0, "")
        return (0, abs(d - target) if target is not None else 0, n)

    best = min(by_night, key=distance)
    return sorted(by_night[best], key=lambda f: (f.jd or 0.0, f.path)), best


def _where(n_nights: int, chosen: str | None, night: str | None) -> str:
    if chosen == night:
        return "same night" if chosen else "undated"
    what = f"night {chosen}" if chosen else "undated frames"
    return f"{what} (nearest of {n_nights})" if n_nights > 1 else what


def match_calibration(group: Group, frames: Iterable[FrameInfo]) -> CalibrationMatch:
    """Choose bias, darks and flats for ``group`` among ``frames`` (all indexed frames)."""
    m = CalibrationMatch()
    pool = [f for f in frames if _norm(f.telescope) == _norm(group.telescope)
            and f.width == group.width and f.height == group.height]
    desc = f"telescope '{group.telescope or 'unknown'}', {group.width}x{group.height}"
    kinds = {t: [f for f in pool if f.type == t] for t in ("bias", "dark", "flat")}

    if group.type != "bias":
        _pick_bias(m, kinds["bias"], group, desc)
    if group.type not in ("bias", "dark"):
        _pick_darks(m, kinds["dark"], group, desc)
    if group.type == "light":
        _pick_flats(m, kinds["flat"], group, desc)
    return m


def _pick_bias(m: CalibrationMatch, bias: list[FrameInfo], group: Group, desc: str) -> None:
    if not bias:
        m.reasons.append(f"bias: none for {desc}")
        return
    chosen, night = _nearest_night(bias, group.night)
    m.bias = [f.path for f in chosen]
    m.nights["bias"] = night
    n_nights = len({f.night for f in bias})
    m.reasons.append(f"bias: {len(chosen)} frame(s) from {_where(n_nights, night, group.night)}")


def _pick_darks(m: CalibrationMatch, darks: list[FrameInfo], group: Group, desc: str) -> None:
    darks = [f for f in darks if f.exptime is not None]
    m.dark_exposures = sorted({round(f.exptime, 3) for f in darks})
    if not darks:
        m.reasons.append(f"darks: none for {desc}")
        return
    want = group.exposure if group.exposure is not None else 0.0
    best = min(m.dark_exposures, key=lambda e: (abs(e - want), -e))
    m.dark_exposure = best
    same = [f for f in darks if round(f.exptime, 3) == best]
    chosen, night = _nearest_night(same, group.night)
    m.darks = [f.path for f in chosen]
    m.nights["dark"] = night
    avail = ", ".join(f"{e:g}" for e in m.dark_exposures)
    exact = "same exposure" if abs(best - want) < 1e-3 else f"nearest to {want:g} s, scale by exposure"
    n_nights = len({f.night for f in same})
    m.reasons.append(f"darks: {len(chosen)} frame(s) at {best:g} s ({exact}; available: {avail} s) "
                     f"from {_where(n_nights, night, group.night)}")


def _pick_flats(m: CalibrationMatch, flats: list[FrameInfo], group: Group, desc: str) -> None:
    same = [f for f in flats if _norm(f.filter) == _norm(group.filter)]
    if not same:
        others = sorted({f.filter or "none" for f in flats})
        extra = f" (flats exist for filter(s): {', '.join(others)})" if others else ""
        m.reasons.append(f"flats: none with filter '{group.filter or 'none'}' for {desc}{extra}")
        return
    chosen, night = _nearest_night(same, group.night)
    m.flats = [f.path for f in chosen]
    m.nights["flat"] = night
    n_nights = len({f.night for f in same})
    m.reasons.append(f"flats: {len(chosen)} frame(s) in filter '{group.filter or 'none'}' "
                     f"from {_where(n_nights, night, group.night)}")
