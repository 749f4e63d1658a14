"""Recipes: YAML files naming blocks and parameters, validated into a spec, built into blocks.

``load_recipe(path)`` returns a :class:`RecipeSpec` (or raises ``RecipeError`` listing every
``file:line: message (hint)``); ``build_blocks(spec, section, **runtime)`` makes the block instances.
The file format is documented in :mod:`reduce.recipe.spec`.
"""
from __future__ import annotations

from .build import build_blocks
from .fields import DifferentialSpec, OutputsSpec, ReferenceSpec, reference_from_string
from .targets import TargetSpec, target_from_string
from .spec import (BLOCK_SECTIONS, REFERENCE_SECTIONS, BlockSpec, RecipeSpec, load_recipe,
                   loads_recipe)

__all__ = [
    "load_recipe", "loads_recipe", "build_blocks", "RecipeSpec", "BlockSpec", "ReferenceSpec", "TargetSpec",
    "DifferentialSpec", "OutputsSpec", "target_from_string", "reference_from_string",
    "BLOCK_SECTIONS", "REFERENCE_SECTIONS",
]
