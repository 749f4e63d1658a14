"""Turn a validated recipe section into block instances, adding the runner's objects.

The recipe holds only plain parameters; objects that exist only at run time (the matched
calibration frames, the reference image, a loader) are passed as keywords to
:func:`build_blocks` and given to each block that declares them in ``runtime_params`` (or whose
annotation only such an object satisfies). Unused keywords are ignored, so the runner can pass
the same set to every section.
"""
from __future__ import annotations

from ..model.errors import RecipeError
from .coerce import runtime_parameters
from .spec import BLOCK_SECTIONS, RecipeSpec

__all__ = ["build_blocks"]


def build_blocks(spec: RecipeSpec, section, *, registry=None, **runtime) -> list:
    """New block instances for ``section`` (a name, or a sequence of names concatenated in order).

    ``registry`` (name -> Block class) defaults to ``reduce.blocks.registry()``. A block whose
    constructor still refuses its parameters raises :class:`RecipeError` with the recipe line.
    """
    sections = (section,) if isinstance(section, str) else tuple(section)
    for s in sections:
        if s not in BLOCK_SECTIONS:
            raise ValueError(f"unknown recipe section {s!r}; expected one of {', '.join(BLOCK_SECTIONS)}")
    if registry is None:
        from ..blocks import registry as _registry
        registry = _registry()
    blocks, errors = [], []
    for b in spec.blocks(*sections):
        cls = registry.get(b.name)
        if cls is None:
            errors.append(f"{spec.path}:{b.line}: block {b.name!r} is no longer registered")
            continue
        kwargs = dict(b.params)
        for name in runtime_parameters(cls):
            if name in runtime and name not in kwargs:
                kwargs[name] = runtime[name]
        try:
            blocks.append(cls(**kwargs))
        except (ValueError, TypeError) as e:
            errors.append(f"{spec.path}:{b.line}: {b.name}: {e}")
    if errors:
        raise RecipeError(errors)
    return blocks
