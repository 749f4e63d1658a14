"""The recipes shipped in recipes/ validate and build against the real block registry."""
from __future__ import annotations

from pathlib import Path

import pytest

from reduce.blocks import registry
from reduce.recipe import BLOCK_SECTIONS, build_blocks, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_recipes_are_shipped():
    names = {p.name for p in RECIPES}
    assert {"default.yaml", "defocused_transit.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_is_valid_and_builds(path):
    spec = load_recipe(path)
    blocks = build_blocks(spec, BLOCK_SECTIONS)
    assert blocks and all(b.name in registry() for b in blocks)
    assert spec.description


def test_default_recipe_is_the_classic_chain():
    spec = load_recipe(next(p for p in RECIPES if p.name == "default.yaml"))
    names = [b.name for b in spec.blocks(*BLOCK_SECTIONS)]
    assert names == ["Calibration", "Trim", "PointSourceDetection", "Cutouts", "MedianEPSF", "Moffat2D",
                     "AlignReferenceSources", "CosmicRays", "CentroidQuadratic", "AperturePhotometry",
                     "AnnulusBackground"]
    (ap,) = [b for b in spec.sections["photometry"] if b.name == "AperturePhotometry"]
    assert len(ap.params["radii"]) == 30 and ap.params["scale"] == "fwhm"
    assert spec.differential.method == "autodiff" and spec.reference.method == "best"
