"""A doughnut split by sep's deblending into its bright spots is one source again; real groups stay apart."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.blocks.detection import PointSourceDetection
from reduce.model.image import Image

from ._doughnut import render_doughnuts
from ._stars import render


def _detect(data):
    image = Image(data=data.astype(np.float32))
    PointSourceDetection(threshold=5).run(image)
    return image.sources.coords


def _nearest(found, truth):
    return np.array([np.hypot(*(found - p).T).min() for p in truth])


@pytest.mark.parametrize("lobes,diameter", [(2, 12.0), (3, 16.0), (4, 20.0)])
def test_lobed_rings_are_one_source_each(lobes, diameter):
    rng = np.random.default_rng(lobes)
    truth = np.column_stack([np.arange(5) * 90 + 50 + rng.uniform(-3, 3, 5), rng.uniform(25, 40, 5)])
    data = render_doughnuts((64, 521), truth, rng.uniform(3e5, 3e6, 5), sky=200, noise=10, rng=rng,
                            diameter=diameter, lobes=lobes, lopsided=0.6)
    found = _detect(data)
    assert len(found) == len(truth)
    assert _nearest(found, truth).max() < 0.6


def test_pairs_and_triangles_of_stars_are_not_merged():
    pair = np.array([[50.0, 50.0], [57.0, 50.0]])
    triangle = np.array([[150.0, 50.0], [158.0, 50.0], [154.0, 56.93]])
    truth = np.concatenate([pair, triangle])
    data = render((100, 200), truth, 3e4, fwhm=3.0, sky=100, noise=3, rng=np.random.default_rng(0))
    found = _detect(data)
    assert len(found) == len(truth)
    assert _nearest(found, truth).max() < 0.3
