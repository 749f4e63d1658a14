"""Fallback placements for sparse fields: voted translation, one star, cross-correlation.

Each must recover injected shifts, turns and small rotations of strips with a few stars, and refuse
(MatchError) what it cannot place significantly: random lists, pure noise, ambiguous stars.
"""
from __future__ import annotations

import numpy as np
import pytest

from reduce.algorithms.asterism import MatchError, apply_transform, transform_summary
from reduce.algorithms.translation import correlate, false_alarm, refine, single_star, vote_translation
from tests.algorithms._stars import apply, render, transform_matrix

STRIP = (64, 521)          # ny, nx: a binned CCD window
CENTRE = ((STRIP[1] - 1) / 2, (STRIP[0] - 1) / 2)
TOL = 2.25


def _strip_stars(rng, n, shape=STRIP):
    h, w = shape
    xy = np.column_stack([rng.uniform(30, w - 30, n), rng.uniform(8, h - 8, n)])
    flux = np.sort(np.exp(rng.uniform(np.log(2e4), np.log(3e5), n)))[::-1]
    return xy, flux


MOVES = {
    "jitter": dict(dx=-7.6, dy=5.9),
    "jump": dict(dx=12.0, dy=-3.0),
    "meridian flip": dict(dx=2.0, dy=1.0, angle_deg=180.0, center=CENTRE),
    "rotation 1 deg": dict(dx=1.0, dy=0.5, angle_deg=1.0, center=CENTRE),
}


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("move", list(MOVES))
def test_vote_places_sparse_strips(n, move):
    rng = np.random.default_rng(n * 10 + len(move))
    ref, _ = _strip_stars(rng, n)
    t = transform_matrix(**MOVES[move])
    frame = apply(t, ref) + rng.normal(0, 0.03, (n, 2))
    p = vote_translation(ref, frame, tolerance=TOL, shape=STRIP)
    assert np.abs(apply_transform(p.transform, ref) - apply(t, ref)).max() < 0.1
    assert p.n_matched == n and p.score < 0.01
    assert abs(abs(transform_summary(p.transform)["rotation"]) - abs(MOVES[move].get("angle_deg", 0))) < 0.05


def test_vote_finds_drift_and_jump_with_missing_and_extra_stars():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0, 600, (12, 2))
    t = transform_matrix(dx=-300.0 + 12.0, dy=60.0)  # 300 px of drift, then a 12 px jump
    frame = apply(t, ref)
    inside = (frame[:, 0] >= 0) & (frame[:, 0] < 600) & (frame[:, 1] >= 0) & (frame[:, 1] < 600)
    frame = np.vstack([frame[inside][1:], rng.uniform(0, 600, (3, 2))])  # one star lost, 3 spurious
    p = vote_translation(ref, frame, tolerance=2.0, shape=(600, 600))
    assert np.allclose(p.transform, t, atol=1e-6)


def test_vote_refuses_unrelated_lists():
    rng = np.random.default_rng(11)
    placed = 0
    for trial in range(200):
        n, m = (3, 5, 8)[trial % 3], (2, 5, 15, 30)[trial % 4]
        ref, _ = _strip_stars(rng, n)
        frame = np.column_stack([rng.uniform(0, STRIP[1], m), rng.uniform(0, STRIP[0], m)])
        try:
            vote_translation(ref, frame, tolerance=TOL, shape=STRIP)
            placed += 1
        except MatchError:
            pass
    assert placed <= 2  # false-alarm probability 1 % at most, and conservative


def test_vote_needs_two_agreeing_stars():
    with pytest.raises(MatchError, match="too few"):
        vote_translation([[10.0, 10.0]], [[12.0, 11.0]], tolerance=TOL, shape=STRIP)
    with pytest.raises(MatchError, match="two stars"):
        vote_translation([[10.0, 10.0], [100.0, 30.0]], [[12.0, 11.0], [300.0, 50.0]], tolerance=TOL,
                         shape=STRIP)


def test_false_alarm_grows_with_chance_and_shrinks_with_agreement():
    assert false_alarm(10, 5, 1, 0.1) == 1.0
    assert false_alarm(10, 5, 3, 1e-3) < false_alarm(10, 5, 2, 1e-3) < false_alarm(10, 5, 2, 1e-2)
    assert false_alarm(10, 5, 6, 0.5) == 0.0  # more agreeing stars than stars
    assert false_alarm(1, 3, 3, 1.0) == 1.0


def test_single_star_near_the_predicted_place():
    ref = np.array([[250.0, 30.0]])
    p = single_star(ref, [1e5], [[262.0, 27.5]], [7e4], tolerance=TOL, shape=STRIP)
    assert np.allclose(p.transform[:2, 2], [12.0, -2.5]) and p.method == "single star"
    # a faint spurious source beside the star does not matter; a like one does
    p = single_star(ref, [1e5], [[262.0, 27.5], [40.0, 10.0]], [7e4, 2e3], tolerance=TOL, shape=STRIP)
    assert np.allclose(p.transform[:2, 2], [12.0, -2.5])
    with pytest.raises(MatchError, match="dominant"):
        single_star(ref, [1e5], [[262.0, 27.5], [40.0, 10.0]], [7e4, 5e4], tolerance=TOL, shape=STRIP)


@pytest.mark.parametrize("frame_xy,frame_flux,kw,why", [
    ([[262.0, 27.5]], [1e3], {}, "flux"),                                     # noise bump, not the star
    ([[480.0, 50.0]], [1e5], {}, "from any like"),                            # too far to be sure
    ([[262.0, 27.5]], [1e5], dict(ref_size=[1.3], size=[0.3]), "size"),       # a cosmic ray
    ([[262.0, 27.5]], None, {}, "unknown"),
])
def test_single_star_refuses_what_it_cannot_identify(frame_xy, frame_flux, kw, why):
    with pytest.raises(MatchError, match=why):
        single_star([[250.0, 30.0]], [1e5], frame_xy, frame_flux, tolerance=TOL, shape=STRIP, **kw)


def test_single_star_refuses_when_another_bright_star_is_missing():
    ref = np.array([[250.0, 30.0], [100.0, 30.0]])
    with pytest.raises(MatchError, match="nothing is detected"):
        single_star(ref, [1e5, 8e4], [[252.0, 31.0]], [9e4], tolerance=TOL, shape=STRIP)


def _frame(rng, xy, flux, shape=STRIP, sky=300.0, noise=8.0):
    return render(shape, xy, flux, fwhm=3.0, sky=sky, noise=noise, rng=rng)


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("move", ["jitter", "jump", "meridian flip"])
def test_correlation_places_strips(n, move):
    rng = np.random.default_rng(7 * n + len(move))
    ref, flux = _strip_stars(rng, n)
    t = transform_matrix(**MOVES[move])
    data = _frame(rng, apply(t, ref), flux)
    # a sky gradient (twilight) must not pull the peak: the stamps have zero sum
    data += np.linspace(0, 400, STRIP[1])[None, :]
    p = correlate(ref, data, fwhm=3.0, ref_shape=STRIP)
    assert np.abs(apply_transform(p.transform, ref) - apply(t, ref)).max() < 0.3
    assert p.score > 10


def test_correlation_then_refine_recovers_a_small_rotation():
    rng = np.random.default_rng(2)
    ref, flux = _strip_stars(rng, 6)
    t = transform_matrix(**MOVES["rotation 1 deg"])
    p = correlate(ref, _frame(rng, apply(t, ref), flux), fwhm=3.0, ref_shape=STRIP)
    frame = apply(t, ref) + rng.normal(0, 0.03, ref.shape)
    t2, pairs, rms = refine(p.transform, ref, frame, tolerance=5.0)
    assert len(pairs) == 6 and rms < 0.1
    assert np.abs(apply_transform(t2, ref) - apply(t, ref)).max() < 0.1


@pytest.mark.parametrize("shape", [STRIP, (119, 521), (300, 300)])
def test_correlation_refuses_pure_noise(shape):
    rng = np.random.default_rng(shape[0])
    for n in (1, 5, 40):
        ref = np.column_stack([rng.uniform(0, shape[1], n), rng.uniform(0, shape[0], n)])
        with pytest.raises(MatchError, match="no significant"):
            correlate(ref, rng.normal(300, 8, shape), fwhm=3.0, ref_shape=shape)


def test_correlation_refuses_blank_frames():
    with pytest.raises(MatchError, match="flat"):
        correlate([[10.0, 10.0]], np.full(STRIP, 5.0), fwhm=3.0)
    with pytest.raises(MatchError, match="finite"):
        correlate([[10.0, 10.0]], np.full(STRIP, np.nan), fwhm=3.0)
