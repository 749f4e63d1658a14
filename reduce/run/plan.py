"""Planning a run: the recipe known by a cheap key, the night folders, each night's light groups
with their matched calibration, and the output folders.

Kept apart from :mod:`reduce.run.nights` (which locks, skips unchanged groups and reduces) so the
planning can be read on its own; ``reduce run --dry-run`` uses it without reducing anything.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..model.errors import UsageError
from ..index.groups import Group

__all__ = ["GroupPlan", "RecipeSource", "plan_night", "find_nights", "unaccounted", "output_folders", "products_of",
           "default_outdir"]


@dataclass
class GroupPlan:
    """What will be done for one light group: frames, calibration matched, output stem."""

    group: object
    frames: list
    calibration: object
    stem: str
    outdir: Path
    night: Path | None = None
    # light frames of the night folder with the group's telescope and target, by time: a pixel
    # target is given on the first of them (or on one named); None: the group's frames
    night_lights: list | None = None
    #: files of the group that cannot be measured: (path, reason, JD or None); each gets a row
    #: flagged UNREADABLE (unreadable, truncated, cube, table only, wrong size)
    unmeasured: list = field(default_factory=list)
    #: JD (UTC) of the frames and of the unmeasured files whose time is known, for row order
    times: dict = field(default_factory=dict)
    #: earlier product sets of this group under another stem (see reduce.run.state.renamed_sets):
    #: said in the warnings, removed once this run's set is written
    renamed: list = field(default_factory=list)

    @property
    def name(self) -> str:
        """The group label prefixed by its night folder's name (what log lines call the group:
        a run of several nights has the same label in each)."""
        return f"{Path(self.night).name}/{self.group.label}" if self.night else self.group.label

    def describe(self) -> dict:
        cal = self.calibration
        return {
            "group": self.group.label, "frames": len(self.frames), "outputs": str(self.outdir / self.stem),
            "bias": len(cal.bias), "darks": len(cal.darks), "flats": len(cal.flats),
            "reasons": list(getattr(cal, "reasons", [])),
            "unmeasured": [{"file": str(u[0]), "reason": u[1]} for u in self.unmeasured],
        }


class _Sized(Group):
    """A light group named with its frame size (``..._<width>x<height>``): a group of the same
    target, filter and night with bigger frames keeps the plain name."""

    @property
    def label(self) -> str:
        return f"{Group.label.fget(self)}_{self.width}x{self.height}"


class RecipeSource:
    """A recipe known by a cheap key (text + overrides) and validated only when work is needed.

    Validating a recipe imports every block (about a second); a re-run with nothing new must not
    pay for it. ``spec`` loads and validates on first use (``RecipeError``: exit 2).
    """

    def __init__(self, path=None, *, target: str | None = None, reference: str | None = None, spec=None,
                 coords: str | None = None):
        if path is not None:
            from ..recipe.installed import find_recipe

            path = find_recipe(path)  # a file, else a recipe shipped with the package by name
        self.path = Path(path) if path is not None else None
        self.target, self.reference, self.coords = target, reference, coords
        self._spec = spec
        if spec is not None:
            text = f"{spec.sha256}|{spec.target!r}|{spec.reference!r}"
        else:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                from ..recipe.installed import installed_recipes

                shipped = ", ".join(installed_recipes()) or "none"
                raise UsageError(f"recipe not found: {path} (a recipe file, or one of the installed "
                                 f"recipes: {shipped}; see reduce recipes)") from None
            except IsADirectoryError:
                raise UsageError(f"recipe is a folder, not a file: {path}") from None
            except OSError as e:
                raise UsageError(f"cannot read recipe {path}: {e.strerror or e}") from None
            text = f"{hashlib.sha256(raw).hexdigest()}|{target}|{reference}" + (f"|{coords}" if coords else "")
        self.key = hashlib.sha256(text.encode()).hexdigest()

    def validate_early(self) -> None:
        """Validate the recipe now, before any night is scanned (a bad recipe is reported at once,
        exit 2), unless this very recipe text validated before with this version: the no-op re-run
        of a cron job keeps its speed (the keys of valid recipes are kept in the user cache)."""
        if self._spec is not None:
            return
        marker = _valid_marker(self.key)
        if marker is not None and marker.exists():
            return
        self.spec  # noqa: B018 - RecipeError / UsageError: exit 2
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:  # only costs a validation next time
                pass

    @classmethod
    def of(cls, spec) -> "RecipeSource":
        return spec if isinstance(spec, RecipeSource) else cls(spec=spec)

    @property
    def spec(self):
        if self._spec is None:
            from ..recipe import load_recipe

            spec = load_recipe(self.path)
            if self.target is not None or self.reference is not None or self.coords is not None:
                from ..recipe.fields import target_from_string

                try:
                    target = target_from_string(self.target) if self.target is not None else None
                    spec = spec.with_overrides(target=target, reference=self.reference, coords=self.coords)
                except ValueError as e:
                    raise UsageError(str(e)) from None
            self._spec = spec
        return self._spec


def _valid_marker(key: str) -> Path | None:
    """The cache file that says the recipe of ``key`` validated with this version of reduce."""
    try:
        from platformdirs import user_cache_path

        from .. import __version__
    except ImportError:
        return None
    tag = hashlib.sha256(f"{key}|{__version__}".encode()).hexdigest()[:32]
    return user_cache_path("reduce", appauthor=False) / "valid-recipes" / tag


def plan_night(night, spec=None, *, config, outdir=None, index=None, depth=None) -> tuple[list[GroupPlan], object]:
    """Scan ``night`` (incrementally) and make one plan per light group."""
    from ..index.manager import FitsManager
    from ..io.names import safe_stem

    night = Path(night)
    if not night.exists():
        raise UsageError(f"night folder not found: {night}")
    if not night.is_dir():
        raise UsageError(f"not a folder: {night}")
    fm = FitsManager(night, depth=depth, index=index, config=config)
    outdir = Path(outdir) if outdir else default_outdir(night)
    plans = []
    ours = products_of(night, outdir)
    times = {f.path: f.jd for f in fm.frames(type="light")}
    groups, wrong_size = _fold_wrong_sizes(_merge_same_names(fm, safe_stem))
    stray = [(p, r) for p, r in [*fm.unreadable, *fm.skipped] if not ours(p) and not os.path.isdir(p)]
    attached = _attach_unmeasured(groups, stray, fm.config)
    for group, shown, stem in _named_groups(groups, safe_stem):
        frames = [f for f in group.files if not ours(f)]
        if not frames:  # our own products (NIGHT/reduced/*.fits) are not frames of the night
            continue
        cal = fm.calibration_for(group)
        lights = [f for f in fm.files(type="light", telescope=group.telescope, target=group.target)
                  if not ours(f)]
        unmeasured = [(p, r, times.get(p)) for p, r in wrong_size.get(id(group), [])]
        unmeasured += [(p, r, None) for p, r in attached.get(id(group), [])]
        plans.append(GroupPlan(group=shown, frames=frames, calibration=cal, stem=stem, outdir=outdir,
                               night=night, unmeasured=unmeasured, times=times, night_lights=lights or None))
    return plans, fm


def unaccounted(fm, plans, ours) -> list:
    """(path, reason) of the night's unreadable or image-less files (and unlistable folders)
    that no light group accounts for as an unmeasured row; reduce's own products excluded."""
    attached = {str(u[0]) for p in plans for u in p.unmeasured}
    return sorted((f, r) for f, r in [*fm.unreadable, *fm.skipped] if not ours(f) and f not in attached)


#: frames of another size than their group's are "wrong size" when fewer than this fraction
WRONG_SIZE_FRACTION = 0.25


def _fold_wrong_sizes(groups) -> tuple[list, dict]:
    """Light groups with frames of a few odd sizes folded into their main group.

    Frames of one night, telescope, filter and target whose size differs from the group's most
    common size are "wrong size" (a cropped or binned frame among the night's) when they are
    fewer than :data:`WRONG_SIZE_FRACTION` of the main size's frames: they get a flagged row in
    the main group's light curve instead of a group of their own. More frames of another size
    (a change of binning or window mid-night) stay a group of their own.
    Returns (groups kept, {id(main group): [(path, reason)]}).
    """
    from ..io.names import safe_stem

    def key(g):  # the output name: groups that would share it are one target
        return safe_stem(g.night, g.telescope, g.target, g.filter)

    buckets: dict[str, list] = {}
    for g in groups:
        buckets.setdefault(key(g), []).append(g)
    kept, folded = [], {}
    for g in groups:
        members = buckets[key(g)]
        main = max(members, key=lambda m: (len(m.files), m.width * m.height))
        if g is main or len(g.files) >= WRONG_SIZE_FRACTION * len(main.files):
            kept.append(g)
            continue
        reason = (f"wrong size: {g.width}x{g.height} px, the group's frames are "
                  f"{main.width}x{main.height} px")
        folded.setdefault(id(main), []).extend((p, reason) for p in g.files)
    return kept, folded


def _attach_unmeasured(groups, files, config) -> dict:
    """Unreadable and image-less files given to the light group they most likely belong to.

    A file belongs to the light group with frames in the same folder; with several such groups,
    to the one whose frame names share the longest prefix with its name (a tie: to none). A
    file whose name says bias/dark/flat is no light frame. Files given to no group stay in the
    night's list of unreadable files.
    """
    from ..config import DEFAULT_INSTRUMENT
    from ..index.headers import filename_type

    inst = getattr(config, "default", None) or DEFAULT_INSTRUMENT
    by_folder: dict[str, list] = {}
    for g in groups:
        for f in g.files:
            folder = os.path.dirname(f)
            if g not in by_folder.setdefault(folder, []):
                by_folder[folder].append(g)
    out: dict[int, list] = {}
    for path, reason in files:
        folder, name = os.path.split(path)
        candidates = by_folder.get(folder, [])
        if not candidates or filename_type(inst, name) is not None:
            continue
        scores = [max(len(os.path.commonprefix([name, os.path.basename(f)])) for f in g.files)
                  for g in candidates]
        best = max(scores)
        if scores.count(best) == 1:
            out.setdefault(id(candidates[scores.index(best)]), []).append((path, reason))
    return out


def _merge_same_names(fm, safe_stem) -> list:
    """The night's light groups, those whose output names are equal once sanitised merged.

    Outputs are named ``<date>_<telescope>_<target>_<filter>`` after sanitising, so groups the
    index keeps apart can share a name: targets are already one group there ('TOI 700',
    'TOI/700': :func:`reduce.io.names.name_key`), telescopes and filters equal once sanitised
    ('SIM 60', 'SIM/60') are merged here, their frames (of one size) in time order.
    """
    import dataclasses

    jd = {f.path: (f.jd if f.jd is not None else float("inf"), f.path) for f in fm.frames(type="light")}
    merged: dict[tuple, object] = {}
    for g in sorted(fm.light_groups(), key=lambda g: (-len(g.files), g.target, g.telescope, g.filter)):
        key = (safe_stem(g.night, g.telescope, g.target, g.filter), g.width, g.height)
        first = merged.get(key)
        if first is None:
            merged[key] = g
            continue
        files = sorted(first.files + g.files, key=lambda p: jd.get(p, (float("inf"), p)))
        merged[key] = dataclasses.replace(first, files=files,
                                          exposures=tuple(sorted(set(first.exposures) | set(g.exposures))))
    return list(merged.values())


def _named_groups(groups, safe_stem) -> list:
    """(light group, the group as shown, output stem) with one stem per group, the same on every run: frames of
    another size (more than a few, see :func:`_fold_wrong_sizes`) are another group: the largest
    frames keep the plain name, the others get ``_<width>x<height>``."""
    import dataclasses

    merged = {(safe_stem(g.night, g.telescope, g.target, g.filter), g.width, g.height): g for g in groups}
    biggest: dict[str, tuple] = {}
    for stem, w, h in merged:
        biggest[stem] = max(biggest.get(stem, (0, 0, 0)), (w * h, w, h))
    named = []
    for (stem, w, h), g in merged.items():
        shown = g
        if biggest[stem][1:] != (w, h):
            stem += f"_{w}x{h}"
            shown = _Sized(**{f.name: getattr(g, f.name) for f in dataclasses.fields(g)})
        named.append((g, shown, stem))
    named.sort(key=lambda gs: (gs[0].night or "", gs[0].telescope.lower(), gs[0].filter.lower(),
                               gs[0].target.lower(), gs[2]))  # the index's group order
    return named


def products_of(night: Path, outdir: Path):
    """A predicate: is a path one of our products (inside ``outdir`` or the default NIGHT/reduced)?

    The FITS light-curve tables hold image extensions; they must never be taken for frames.
    """
    roots = tuple({os.path.join(os.path.abspath(d), "") for d in (outdir, Path(night) / "reduced")})

    def inside(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(roots)

    return inside


def find_nights(archive, *, depth: int | None = None) -> list[Path]:
    """Sub-folders of ``archive`` (not hidden) holding at least one FITS frame, sorted by name."""
    from ..index.manager import walk

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


def output_folders(nights: list[Path], outdir) -> list[Path]:
    """Output folder per night: NIGHT/reduced, OUTDIR for one night, OUTDIR/<night name> for several.

    A read-only night (a mounted archive) without OUTDIR writes to ``./<night name>_reduced`` in
    the current folder, and the log says so: an archive reduces without a hand-written option."""
    if outdir is None:
        return [default_outdir(n) for n in nights]
    outdir = Path(outdir)
    _check_outdir_holds_no_night(outdir, nights)
    if len(nights) == 1:
        return [outdir]
    seen: dict[str, int] = {}
    out = []
    for n in nights:
        name = n.resolve().name or "night"
        seen[name] = seen.get(name, 0) + 1
        out.append(outdir / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return out


def default_outdir(night: Path) -> Path:
    """NIGHT/reduced, or ./<night name>_reduced when the night folder is read-only."""
    import logging

    from ..index.db import writable_dir

    night = Path(night)
    inside = night / "reduced"
    if inside.is_dir() and writable_dir(inside) or not night.is_dir() or writable_dir(night):
        return inside
    out = Path.cwd() / f"{night.resolve().name or 'night'}_reduced"
    logging.getLogger("reduce").info("%s is read-only: outputs go to %s (-o chooses another folder)",
                                     night, out)
    return out


def _check_outdir_holds_no_night(outdir: Path, nights) -> None:
    """UsageError when the output folder is a night folder or holds one (``-o NIGHT``): everything
    inside the output folder is taken for our products, so its frames would be ignored."""
    root = os.path.join(os.path.realpath(outdir), "")
    for n in nights:
        if os.path.join(os.path.realpath(n), "").startswith(root):
            raise UsageError(f"the output folder {outdir} is (or contains) the night folder {n}: "
                             "outputs must go to a folder of their own (default: NIGHT/reduced; "
                             "-o another folder)")
