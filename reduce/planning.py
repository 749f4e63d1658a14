"""Planning a run: the recipe known by a cheap key, the night folders, each night's light groups
with their matched calibration, and the output folders.

Kept apart from :mod:`reduce.runner` (which locks, skips unchanged groups and reduces) so the
planning can be read on its own; ``reduce run --dry-run`` uses it without reducing anything.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .core.errors import UsageError
from .report import GroupPlan

__all__ = ["RecipeSource", "plan_night", "find_nights"]


class RecipeSource:
    """A recipe known by a cheap key (text + overrides) and validated only when work is needed.

    Validating a recipe imports every block (about a second); a re-run with nothing new must not
    pay for it. ``spec`` loads and validates on first use (``RecipeError``: exit 2).
    """

    def __init__(self, path=None, *, target: str | None = None, reference: str | None = None, spec=None):
        self.path = Path(path) if path is not None else None
        self.target, self.reference = target, reference
        self._spec = spec
        if spec is not None:
            text = f"{spec.sha256}|{spec.target!r}|{spec.reference!r}"
        else:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                raise UsageError(f"recipe not found: {path}") from None
            except IsADirectoryError:
                raise UsageError(f"recipe is a folder, not a file: {path}") from None
            except OSError as e:
                raise UsageError(f"cannot read recipe {path}: {e.strerror or e}") from None
            text = f"{hashlib.sha256(raw).hexdigest()}|{target}|{reference}"
        self.key = hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def of(cls, spec) -> "RecipeSource":
        return spec if isinstance(spec, RecipeSource) else cls(spec=spec)

    @property
    def spec(self):
        if self._spec is None:
            from .recipe import load_recipe

            spec = load_recipe(self.path)
            if self.target is not None or self.reference is not None:
                from .recipe.fields import target_from_string

                try:
                    target = target_from_string(self.target) if self.target is not None else None
                    spec = spec.with_overrides(target=target, reference=self.reference)
                except ValueError as e:
                    raise UsageError(str(e)) from None
            self._spec = spec
        return self._spec


def plan_night(night, spec=None, *, config, outdir=None, index=None, depth=None) -> tuple[list[GroupPlan], object]:
    """Scan ``night`` (incrementally) and make one plan per light group."""
    from .index.manager import FitsManager
    from .io.tables import safe_stem

    night = Path(night)
    if not night.exists():
        raise UsageError(f"night folder not found: {night}")
    if not night.is_dir():
        raise UsageError(f"not a folder: {night}")
    fm = FitsManager(night, depth=depth, index=index, config=config)
    outdir = Path(outdir) if outdir else night / "reduced"
    plans = []
    ours = _products_of(night, outdir)
    for group in fm.light_groups():
        frames = [f for f in group.files if not ours(f)]
        if not frames:  # our own products (NIGHT/reduced/*.fits) are not frames of the night
            continue
        cal = fm.calibration_for(group)
        stem = safe_stem(group.night, group.telescope, group.target, group.filter)
        lights = [f for f in fm.files(type="light", telescope=group.telescope, target=group.target)
                  if not ours(f)]
        plans.append(GroupPlan(group=group, frames=frames, calibration=cal, stem=stem, outdir=outdir,
                               night=night, night_lights=lights or None))
    return plans, fm


def _products_of(night: Path, outdir: Path):
    """A predicate: is a path one of our products (inside ``outdir`` or the default NIGHT/reduced)?

    The FITS light-curve tables hold image extensions; they must never be taken for frames.
    """
    roots = tuple({os.path.join(os.path.abspath(d), "") for d in (outdir, Path(night) / "reduced")})

    def inside(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(roots)

    return inside


def find_nights(archive, *, depth: int | None = None) -> list[Path]:
    """Sub-folders of ``archive`` (not hidden) holding at least one FITS frame, sorted by name."""
    from .index.manager import walk

    archive = Path(archive)
    if not archive.is_dir():
        raise UsageError(f"archive folder not found: {archive}")
    nights = []
    for entry in sorted(os.scandir(archive), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if next(iter(walk(entry.path, depth)), None) is not None:
            nights.append(Path(entry.path))
    if not nights:
        raise UsageError(f"no night folders with FITS frames in {archive}")
    return nights


def _outdirs(nights: list[Path], outdir) -> list[Path]:
    """Output folder per night: NIGHT/reduced, OUTDIR for one night, OUTDIR/<night name> for several."""
    if outdir is None:
        return [n / "reduced" for n in nights]
    outdir = Path(outdir)
    if len(nights) == 1:
        return [outdir]
    seen: dict[str, int] = {}
    out = []
    for n in nights:
        name = n.resolve().name or "night"
        seen[name] = seen.get(name, 0) + 1
        out.append(outdir / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return out
