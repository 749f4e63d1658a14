"""Centroid blocks: accurate refinement and the runaway guard."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.blocks import CentroidCOM, CentroidGaussian2D, CentroidQuadratic
from reduce.core.errors import Flag
from reduce.image import Image, Sources
from tests.algorithms._stars import render

FWHM = 3.0


def _image(xy, flux, seed=0):
    rng = np.random.default_rng(seed)
    data = render((200, 200), xy, flux, fwhm=FWHM, sky=100, noise=3, rng=rng).astype(np.float32)
    return Image(data=data, fwhm=FWHM)


@pytest.mark.parametrize("block", [CentroidQuadratic(), CentroidCOM(), CentroidGaussian2D()])
def test_refines_predicted_positions(block):
    rng = np.random.default_rng(1)
    truth = np.array([[40.3, 50.7], [120.45, 80.1], [160.9, 160.2], [70.0, 150.55]])
    im = _image(truth, 3e4)
    im.sources = Sources(truth + rng.uniform(-1, 1, truth.shape))
    block.run(im)
    assert np.hypot(*(im.sources.coords - truth).T).max() < 0.08
    assert not im.computed["centroid_ran_away"].any() and im.flags == 0


def test_runaway_keeps_prediction_and_flags_target_only():
    # star 0 (target) is faint next to a bright neighbour 6 px away; star 1 is in an empty box
    truth = np.array([[100.0, 100.0], [150.0, 50.0], [106.0, 100.0]])
    im = _image(truth, [300.0, 0.0, 1e6])
    predicted = np.array([[100.2, 100.1], [150.0, 50.0], [106.0, 100.0]])
    im.sources = Sources(predicted)
    CentroidQuadratic(limit=2.0).run(im)
    ran = im.computed["centroid_ran_away"]
    assert ran[0] and not ran[2]
    assert np.array_equal(im.sources.coords[0], predicted[0])  # predicted position kept
    assert im.flags & Flag.CENTROID_RAN_AWAY
    assert im.issues[-1][0] == "CentroidQuadratic"

    im2 = _image(truth, [300.0, 0.0, 1e6])
    im2.sources = Sources(predicted)
    CentroidQuadratic(limit=2.0, target=2).run(im2)
    assert im2.computed["centroid_ran_away"][0] and im2.flags == 0


def test_sources_off_the_frame_are_left_alone():
    im = _image(np.array([[50.0, 50.0]]), 3e4)
    im.sources = Sources(np.array([[50.4, 49.6], [-30.0, 20.0], [np.nan, np.nan]]))
    CentroidCOM().run(im)
    assert np.allclose(im.sources.coords[0], [50, 50], atol=0.05)
    assert im.sources.coords[1].tolist() == [-30.0, 20.0]
    assert not im.computed["centroid_ran_away"].any()


def test_bad_parameters():
    with pytest.raises(ValueError):
        CentroidQuadratic(cutout=20)
    with pytest.raises(ValueError):
        CentroidQuadratic(fit_box=4)
    with pytest.raises(ValueError):
        CentroidCOM(limit=-1)
    assert CentroidQuadratic(cutout=15).params() == {"cutout": 15, "limit": None, "target": 0, "fit_box": None}
