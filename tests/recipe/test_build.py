"""Building blocks from a validated recipe, with the runner's objects."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.model.errors import RecipeError
from reduce.model.image import Image
from reduce.recipe import build_blocks, loads_recipe

from ._blocks import REGISTRY, Model, Needs, Scale

TEXT = """\
calibration:
  - Scale: {factor: 2}
  - Needs: {size: 5}
psf:
  - Model: {sigma: 2}
photometry:
  - Scale: {radii: {start: 1, stop: 2, n: 3}, mode: add}
"""


@pytest.fixture
def spec():
    return loads_recipe(TEXT, path="b.yaml", registry=REGISTRY, check_chain=False)


def test_blocks_get_recipe_params_and_their_runtime_objects(spec):
    frames, reference, model = ["a.fits"], object(), object()
    blocks = build_blocks(spec, "calibration", registry=REGISTRY, frames=frames, reference=reference,
                          model=model, unused=1)
    assert [type(b) for b in blocks] == [Scale, Needs]
    assert blocks[0].factor == 2.0 and blocks[1].size == 5
    assert blocks[1].frames is frames and blocks[1].reference is reference
    (m,) = build_blocks(spec, "psf", registry=REGISTRY, model=model)
    assert isinstance(m, Model) and m.model is model and m.sigma == 2.0


def test_sections_are_concatenated_in_order_and_blocks_are_new(spec):
    chain = build_blocks(spec, ("calibration", "psf", "photometry"), registry=REGISTRY)
    assert [b.name for b in chain] == ["Scale", "Needs", "Model", "Scale"]
    assert chain[-1].radii == [1.0, 1.5, 2.0] and chain[-1].mode == "add"
    again = build_blocks(spec, "calibration", registry=REGISTRY)
    assert again[0] is not chain[0]


def test_built_blocks_run_on_an_image(spec):
    (scale, _) = build_blocks(spec, "calibration", registry=REGISTRY)
    im = Image(data=np.ones((4, 4)))
    assert scale(im).data.sum() == pytest.approx(32.0)


def test_unknown_section_and_constructor_failure(spec):
    with pytest.raises(ValueError, match="unknown recipe section 'phot'"):
        build_blocks(spec, "phot", registry=REGISTRY)

    class Fussy(Scale):
        register = False
        runtime_params = ("frames",)

        def __init__(self, *, factor: float = 1.0, frames=None):
            if frames is not None:
                raise ValueError("frames must be None here")
            super().__init__(factor=factor)

    fussy = loads_recipe("detection:\n  - Fussy: {factor: 3}\n", path="f.yaml", registry={"Fussy": Fussy},
                         check_chain=False)
    with pytest.raises(RecipeError) as info:
        build_blocks(fussy, "detection", registry={"Fussy": Fussy}, frames=[1])
    assert info.value.messages == ["f.yaml:2: Fussy: frames must be None here"]
