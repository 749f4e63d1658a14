"""The ePSF's shape: peaked stars stay peaked, doughnuts and flat tops are recognised, widths are sane."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.algorithms.psf_shape import half_light_radius, psf_shape

from ._doughnut import doughnut_stamp
from ._stars import render


@pytest.mark.parametrize("profile", ["gaussian", "moffat"])
@pytest.mark.parametrize("fwhm", [1.5, 2.1, 3.0, 6.0, 10.0])
def test_focused_undersampled_and_wide_stars_are_peaked(profile, fwhm):
    stamp = render((21, 21), [[10.3, 9.8]], 1.0, fwhm=fwhm, sky=0.0, profile=profile, beta=2.5)
    assert psf_shape(stamp)["kind"] == "peaked"


@pytest.mark.parametrize("diameter,obstruction", [(8, 0.4), (12, 0.3), (12, 0.45), (16, 0.5)])
def test_obstructed_defocused_stars_are_doughnuts(diameter, obstruction):
    shape = psf_shape(doughnut_stamp(21, 0.3, -0.2, diameter=diameter, obstruction=obstruction))
    assert shape["kind"] == "doughnut"
    assert shape["dip"] > 0.4
    assert shape["r_peak"] == pytest.approx(diameter / 2 * (1 + obstruction) / 2, abs=1.0)  # mid-rim


@pytest.mark.parametrize("diameter", [8, 12])
def test_unobstructed_defocused_stars_are_flat_topped(diameter):
    assert psf_shape(doughnut_stamp(21, diameter=diameter, obstruction=0.0))["kind"] == "flat"


def test_lopsided_and_lobed_rings_are_doughnuts():
    for kw in ({"lopsided": 0.5}, {"lopsided": 0.6, "lobes": 3}):
        assert psf_shape(doughnut_stamp(21, 0.2, 0.4, **kw))["kind"] == "doughnut", kw


def test_equivalent_fwhm_is_a_gaussians_fwhm_and_the_ring_lies_inside_it():
    gauss = render((31, 31), [[15.0, 15.0]], 1.0, fwhm=4.0, sky=0.0)
    assert psf_shape(gauss)["fwhm_eq"] == pytest.approx(4.0, rel=0.03)
    ring = psf_shape(doughnut_stamp(25, diameter=12.0, obstruction=0.45, blur=1.0))
    # apertures run 0.5-4 equivalent FWHM: the ring's outer edge (6 px) is at ~0.65 of it
    assert 0.5 * ring["fwhm_eq"] < 6.0 < 1.0 * ring["fwhm_eq"]
    assert ring["r_outer"] > 6.0
    assert half_light_radius(doughnut_stamp(25, diameter=12.0, obstruction=0.0, blur=0.0)) == \
        pytest.approx(6.0 / np.sqrt(2), abs=0.2)


def test_a_star_blended_with_a_brighter_neighbour_is_not_a_doughnut():
    # its centre of light falls between the two, where the profile dips: the rim is lit on one side only
    y, x = np.mgrid[0:21, 0:21]
    epsf = np.exp(-((x - 10) ** 2 + (y - 10) ** 2) / 5) + 1.2 * np.exp(-((x - 19.5) ** 2 + (y - 2.5) ** 2) / 4)
    shape = psf_shape(epsf + 0.03)
    assert shape["dip"] > 0.2 and shape["round"] < 0.2
    assert shape["kind"] == "peaked"
