"""Recipe files: YAML that names blocks and their parameters, validated before anything runs.

Format (version 1)::

    version: 1                      # optional, the only version so far
    description: Classic chain      # optional free text, shown by `reduce validate`
    calibration:                    # every frame, first: bias/dark/flat, trim, ...
      - Calibration                 #   a bare name = default parameters
      - Trim: {margin: 8}           #   Name: {parameter: value, ...}
    detection:                      # every frame: find the stars
      - PointSourceDetection: {threshold: 5}
    psf:                            # every frame: FWHM and shape (the reference's sets the radii)
      - Cutouts: {size: 21}
      - MedianEPSF
      - Moffat2D
    photometry:                     # every frame after the reference: align, centroid, measure
      - AlignReferenceSources
      - CentroidQuadratic
      - AperturePhotometry: {radii: {start: 0.5, stop: 4.0, n: 30}}
      - AnnulusBackground: {inner: 5, outer: 8}
    reference: best                 # first | middle | best | <index> | {frame: best, sample: 20}
    target: 0                       # <index> | {x: 300, y: 300, frame: FILE} (pixels of the first or that frame) | {ra: .., dec: ..} | auto; any with coords: "RA DEC"
    differential:
      method: autodiff              # autodiff | diff (then comps: [1, 2, 3], optional weights: [..])
      exclude: [4]                  # autodiff: never use these stars as comparisons
      max_comps: 20                 # autodiff: at most this many (brightest usable) comparisons
      scatter: p2p                  # aperture chosen by the target's p2p | binned | std scatter
      sigma_clip: {sky: 3}          # reject frames whose per-frame quantity jumps from its local trend
      max_light_loss: 0.8           # reject frames whose comparisons lost > 80 % of their light | off
      outlier_guard: {sigma: 5, window: 15}   # reject a target ratio 5 sigma from its 15 neighbours | off
      bin: 0.005                    # bin width of the plotted light curve, days
    missing_calibration: warn       # warn | fail  when a bias/dark/flat type is missing
    outputs: {csv: true, ecsv: true, fits: true, plot: true, provenance: true, html: true,
              aavso: {obscode: XYZ, chart: X123}, exotic: true}   # the two exports: off by default

Each block section is a list (run in order) of block names, registered by class name (see
``reduce blocks``), each with a mapping of constructor parameters; a mapping ``{Name: {...}}`` is
accepted too. Parameters are checked against the block's ``__init__`` annotations: unknown names,
missing required ones, wrong types and out-of-range values (the constructor's own checks) are all
reported at once as ``file:line: message (hint)``. A list-valued parameter may be written as a range
``{start: A, stop: B, n: N}`` (N evenly spaced values, both ends included). Objects the runner
supplies (master frames, the reference image: a block's ``runtime_params``) cannot be set here.
The reference frame goes through calibration -> detection -> psf; every other frame through
calibration -> detection -> psf -> photometry, then the runner collects fluxes (``GetFluxes``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..model.errors import RecipeError
from ._yaml import Problems, close_match_hint, parse_yaml
from .coerce import CoercionError, EMPTY, coerce, resolve_annotations, runtime_parameters
from .fields import (MISSING_CALIBRATION, DifferentialSpec, OutputsSpec, ReferenceSpec, TargetSpec,
                     parse_differential, parse_outputs, parse_reference, parse_target,
                     reference_from_string, target_from_string)

__all__ = ["BlockSpec", "RecipeSpec", "load_recipe", "loads_recipe", "BLOCK_SECTIONS", "SECTIONS",
           "REFERENCE_SECTIONS"]

BLOCK_SECTIONS = ("calibration", "detection", "psf", "photometry")
REFERENCE_SECTIONS = ("calibration", "detection", "psf")
SECTIONS = ("version", "description", *BLOCK_SECTIONS, "reference", "target", "differential",
            "missing_calibration", "outputs")
VERSION = 1


@dataclass(frozen=True)
class BlockSpec:
    """One block of a section: registered ``name``, coerced ``params``, source ``line``."""

    name: str
    params: dict
    line: int
    section: str

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


def _short(v) -> str:
    if isinstance(v, (list, tuple)) and len(v) > 4:
        return f"[{v[0]:g} .. {v[-1]:g}] ({len(v)})" if all(isinstance(x, (int, float)) for x in v) \
            else f"[{len(v)} items]"
    return repr(v)


@dataclass(frozen=True)
class RecipeSpec:
    """A validated recipe. ``text`` is the file as written, ``raw`` the loaded YAML (both for
    provenance); ``sections`` maps each block section to its ordered :class:`BlockSpec` tuple."""

    path: Path
    text: str
    raw: dict
    version: int = VERSION
    description: str = ""
    sections: dict = field(default_factory=lambda: {s: () for s in BLOCK_SECTIONS})
    reference: ReferenceSpec = ReferenceSpec()
    target: TargetSpec = TargetSpec()
    differential: DifferentialSpec = DifferentialSpec()
    missing_calibration: str = "warn"
    outputs: OutputsSpec = OutputsSpec()

    @property
    def sha256(self) -> str:
        """Checksum of the recipe text (changes whenever the file does)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def blocks(self, *sections: str) -> tuple[BlockSpec, ...]:
        """The block specs of ``sections`` concatenated in order."""
        return tuple(b for s in sections for b in self.sections[s])

    def with_overrides(self, *, target=None, reference=None, coords=None) -> "RecipeSpec":
        """A copy with ``target``/``reference`` replaced (spec objects or command-line strings;
        ValueError for an invalid string) and the target's ``coords`` (``"RA DEC"`` or a pair)."""
        changes = {}
        if target is not None:
            changes["target"] = target if isinstance(target, TargetSpec) else target_from_string(target)
        if coords is not None:
            from .targets import parse_coords

            base = changes.get("target", self.target)
            changes["target"] = base if base.kind == "sky" else base.with_coords(parse_coords(coords))
        if reference is not None:
            changes["reference"] = (reference if isinstance(reference, ReferenceSpec)
                                    else reference_from_string(reference))
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The recipe as run, fully resolved (defaults filled in): YAML/JSON-ready, re-loadable."""
        out = {"version": self.version}
        if self.description:
            out["description"] = self.description
        for s in BLOCK_SECTIONS:
            out[s] = [{b.name: dict(b.params)} for b in self.sections[s]]
        out.update(reference=self.reference.to_plain(), target=self.target.to_plain(),
                   differential=self.differential.to_plain(), missing_calibration=self.missing_calibration,
                   outputs=self.outputs.to_plain())
        return out

    def summary(self) -> list[str]:
        """Short human-readable lines describing the chain (``reduce validate``)."""
        lines = [f"{self.path}: valid recipe (version {self.version})"]
        if self.description:
            lines.append(f"  {self.description}")
        for s in BLOCK_SECTIONS:
            chain = " -> ".join(str(b) for b in self.sections[s]) or "(none)"
            lines.append(f"  {s + ':':15s}{chain}")
        d = self.differential
        if d.method == "autodiff":
            diff = "autodiff" + (f", at most {d.max_comps} comparisons" if d.max_comps else "") \
                + (f", excluding {list(d.exclude)}" if d.exclude else "")
        else:
            diff = f"diff with comparisons {list(d.comps or d.comp_positions or ())}" + (f" weighted {list(d.weights)}"
                                                                     if d.weights else "")
        diff += f", aperture by {d.scatter} scatter" if d.aperture is None else f", aperture #{d.aperture}"
        if d.check is not None:
            diff += f", check star {d.check if isinstance(d.check, int) else tuple(d.check)} (never in the ensemble)"
        if d.sigma_clip:
            diff += ", clip " + ", ".join(f"{k}>{v:g}sigma" for k, v in d.sigma_clip.items())
        if d.max_light_loss is not None:
            diff += f", clouds >{100 * d.max_light_loss:g}% light lost"
        if d.outlier_guard is not None:
            g = d.outlier_guard
            diff += f", outlier guard {g['sigma']:g}sigma/{g['window']} frames"
        if d.bin:
            diff += f", bin {d.bin:g} d"
        outs = ", ".join(k for k, v in self.outputs.to_plain().items() if v) or "nothing"
        lines += [f"  {'reference:':15s}{self.reference}", f"  {'target:':15s}{self.target}",
                  f"  {'differential:':15s}{diff}",
                  f"  {'missing cal.:':15s}{self.missing_calibration}", f"  {'outputs:':15s}{outs}"]
        return lines


def load_recipe(path, *, registry=None, check_chain: bool = True) -> RecipeSpec:
    """Read and validate the recipe at ``path``; :class:`RecipeError` lists every problem.

    ``registry`` (name -> Block class) defaults to ``reduce.blocks.registry()``;
    ``check_chain`` (see :func:`loads_recipe`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{path}: no such recipe file"]) from None
    except IsADirectoryError:
        raise RecipeError([f"{path}: is a directory, expected a recipe .yaml file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError([f"{path}: cannot read the recipe ({e})"]) from None
    return loads_recipe(text, path=path, registry=registry, check_chain=check_chain)


def loads_recipe(text: str, *, path="<recipe>", registry=None, check_chain: bool = True) -> RecipeSpec:
    """Validate recipe ``text`` (reported as coming from ``path``).

    ``check_chain``: also check that the chain the runner builds can make a light curve (every
    block's inputs made by an earlier block; stars detected, frames aligned, fluxes measured);
    turn it off only to validate fragments with a registry of other blocks.
    """
    problems = Problems(str(path))
    data = parse_yaml(text, problems)
    if problems:
        raise RecipeError(problems.messages)
    if data is None:
        raise RecipeError([f"{path}:1: the recipe is empty (expected sections such as 'photometry')"])
    if not isinstance(data, dict):
        raise RecipeError([f"{path}:1: a recipe is a mapping of sections, got {type(data).__name__}"])
    if registry is None:
        from ..blocks import registry as _registry
        registry = _registry()
    spec = _build_spec(data, text, Path(str(path)), registry, problems)
    if check_chain and not problems:
        _check_chain(spec, registry, problems)
    if problems:
        raise RecipeError(problems.messages)
    return spec


# What the runner needs from the chain to make a light curve: (image field, what makes it, section).
_NEEDED = (("sources", "detects the stars", "detection", REFERENCE_SECTIONS),
           ("transform", "aligns each frame on the reference", "photometry", BLOCK_SECTIONS),
           ("aperture", "measures the stars' fluxes in apertures", "photometry", BLOCK_SECTIONS))


def _check_chain(spec: RecipeSpec, registry, problems: Problems) -> None:
    """Report what keeps the runner's chain (calibration -> detection -> psf -> photometry, then
    GetFluxes) from making a light curve: a block whose input no earlier block makes, or a
    missing step, named with the block(s) that provide it."""
    from ..core.sequence import LOADER_FIELDS

    available, missing = set(LOADER_FIELDS), set()
    for b in spec.blocks(*BLOCK_SECTIONS):
        for need in _requires(registry[b.name], b.params):
            if need not in available:
                missing.add(need)
                problems.add((b.section,), f"{b.name} needs {need!r}, which no earlier block makes",
                             _providers(need, registry), line=b.line)
                available.add(need)  # one message per missing input, not one per block using it
        available |= set(getattr(registry[b.name], "provides", ()))
    for need, what, section, sections in _NEEDED:
        made = {f for b in spec.blocks(*sections) for f in getattr(registry[b.name], "provides", ())}
        if need not in made and need not in missing:
            problems.add((section,), f"this recipe cannot make a light curve: no block {what}",
                         _providers(need, registry, section))


def _requires(cls, params: dict) -> tuple:
    """A block's inputs with these parameters (an instance's ``requires`` when it can be built
    without the runner's objects, e.g. AperturePhotometry with scale: pixels needs no fwhm)."""
    if not any(p.default is EMPTY for n, p in cls.parameters().items() if n in runtime_parameters(cls)):
        try:
            return tuple(cls(**params).requires)
        except Exception:
            pass
    return tuple(getattr(cls, "requires", ()))


def _providers(field_name: str, registry, section: str | None = None) -> str:
    names = [n for n, c in registry.items()  # the blocks that make it, not those refining it
             if field_name in getattr(c, "provides", ()) and field_name not in getattr(c, "requires", ())]
    where = f" to {section!r}" if section else " before it"
    return f"add {' or '.join(names)}{where}" if names else f"no known block makes {field_name!r}"


def _build_spec(data: dict, text: str, path: Path, registry, problems: Problems) -> RecipeSpec:
    report = problems.add
    for key in data:
        if key not in SECTIONS:
            report((key,), f"unknown section {key!r}", close_match_hint(str(key), SECTIONS)
                   or "sections are " + ", ".join(SECTIONS))
    version = data.get("version", VERSION)
    if version != VERSION or isinstance(version, bool):
        report(("version",), f"unsupported recipe version {version!r}", f"this reduce reads version {VERSION}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        report(("description",), "description must be text")
        description = str(description)
    missing = data.get("missing_calibration", "warn")
    if missing not in MISSING_CALIBRATION:
        report(("missing_calibration",), f"invalid missing_calibration {missing!r}",
               close_match_hint(str(missing), MISSING_CALIBRATION) or "warn or fail")
        missing = "warn"
    sections = {s: _block_section(data.get(s), s, registry, problems) for s in BLOCK_SECTIONS}
    return RecipeSpec(
        path=path, text=text, raw=data, version=VERSION, description=description, sections=sections,
        reference=parse_reference(data.get("reference"), report),
        target=parse_target(data.get("target"), report),
        differential=parse_differential(data.get("differential"), report),
        missing_calibration=missing, outputs=parse_outputs(data.get("outputs"), report))


def _entries(value, section: str, problems: Problems):
    """(name, params, path) for each block written in a section (list or mapping form)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [(k, v, (section, k)) for k, v in value.items()]
    if not isinstance(value, list):
        problems.add((section,), f"section {section!r} must be a list of blocks, got {value!r}",
                     "write each block on its own line as '- BlockName: {parameter: value}'")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append((item, None, (section, i)))
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            out.append((name, params, (section, i, name)))
        elif isinstance(item, dict):
            names = ", ".join(map(str, item))
            problems.add((section, i), f"one block per list item, found {names}",
                         "indent the parameters under the block name, or start each block with '- '")
        else:
            problems.add((section, i), f"expected a block name, got {item!r}")
    return out


def _block_section(value, section: str, registry, problems: Problems) -> tuple[BlockSpec, ...]:
    specs = []
    for name, params, path in _entries(value, section, problems):
        spec = _block(name, params, path, section, registry, problems)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _block(name, params, path, section, registry, problems: Problems) -> BlockSpec | None:
    """Validate one block entry; report problems and return None when it cannot be built."""
    if not isinstance(name, str) or name not in registry:
        problems.add(path, f"unknown block {name!r} in {section!r}",
                     close_match_hint(name, registry) or "run 'reduce blocks' to list them")
        return None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        problems.add(path, f"parameters of {name} must be a mapping, got {params!r}",
                     f"e.g. '- {name}: {{parameter: value}}'")
        return None
    cls = registry[name]
    n_before = len(problems.items)
    values, complete = _parameters(cls, name, params, path, problems)
    if complete:  # the constructor's own checks, on the values that passed (defaults for the rest)
        _construct(cls, name, values, path, problems)
    return BlockSpec(name, values, problems.line(path), section) if len(problems.items) == n_before else None


def _parameters(cls, name, params: dict, path, problems: Problems) -> tuple[dict, bool]:
    """Coerce each written parameter; report unknown, runtime-only and missing required ones.

    Returns the coerced values and whether every required parameter has one."""
    signature = cls.parameters()
    runtime = set(runtime_parameters(cls))
    hints = resolve_annotations(cls)
    settable = [p for p in signature if p not in runtime]
    values = {}
    for key, value in params.items():
        where = path + (key,)
        if key in runtime:
            problems.add(where, f"{name}: {key!r} is supplied by the runner and cannot be set in a recipe")
        elif key not in signature:
            problems.add(where, f"{name}: unknown parameter {key!r}", close_match_hint(str(key), settable)
                         or ("parameters: " + ", ".join(settable) if settable else f"{name} takes no parameters"))
        else:
            try:
                values[key] = coerce(value, hints.get(key, EMPTY), default=signature[key].default)
            except CoercionError as e:
                problems.add(where, f"{name}.{key}: {e.message}", e.hint)
    complete = True
    for key in settable:
        if signature[key].default is EMPTY and key not in values:
            complete = False
            if key not in params:
                problems.add(path, f"{name}: missing required parameter {key!r}")
    return values, complete


def _construct(cls, name, values: dict, path, problems: Problems) -> None:
    """Run the constructor's own checks (skipped when a required runtime object is missing)."""
    runtime = set(runtime_parameters(cls))
    if any(p.default is EMPTY for n, p in cls.parameters().items() if n in runtime):
        return
    try:
        cls(**values)
    except (ValueError, TypeError) as e:
        problems.add(path, f"{name}: {e}")
    except Exception as e:  # a block whose constructor fails otherwise: still a recipe problem
        problems.add(path, f"{name}: could not be built ({type(e).__name__}: {e})")
