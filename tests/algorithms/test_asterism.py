"""Asterism matching: recovers injected transforms, refuses unrelated fields, stays capped."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.algorithms.asterism import (MatchError, StarSet, apply_transform, fit_affine, match, select_stars,
                                        transform_summary, triangles)
from tests.algorithms._stars import apply, transform_matrix

W = 600


def _inside(p):
    return (p[:, 0] >= 0) & (p[:, 0] < W) & (p[:, 1] >= 0) & (p[:, 1] < W)


def _sky(rng, density=60):
    """A sky larger than any frame, stars brightest first; the reference sees [0, W)^2."""
    n = int(density * (2200 / W) ** 2)
    xy = rng.uniform(-800, 1400, (n, 2))
    order = np.argsort(-rng.pareto(1.5, n))
    return xy[order]


def _frame(rng, sky, t, *, missing=0.2, extra=0.2, noise=0.03):
    """Detections of a frame seeing the sky through ``t``: lost and spurious stars, centroid noise."""
    p = apply(t, sky)
    keep = _inside(p) & (rng.random(len(p)) > missing)
    xy = p[keep] + rng.normal(0, noise, (keep.sum(), 2))
    fake = rng.uniform(0, W, (int(extra * len(xy)), 2))
    rank = np.concatenate([np.arange(len(xy)), rng.uniform(0, len(xy), len(fake))])
    return np.concatenate([xy, fake])[np.argsort(rank, kind="stable")]


CASES = [
    dict(dx=0.4 * W, dy=0.0, angle_deg=0.0),
    dict(dx=-0.4 * W, dy=0.1 * W, angle_deg=1.0),
    dict(dx=0.05 * W, dy=-0.4 * W, angle_deg=-1.0, flip=True),
    dict(dx=0.3 * W, dy=0.3 * W, angle_deg=0.5),
    dict(dx=3.3, dy=-2.7, angle_deg=0.0, scale=1.01),
    dict(dx=-17.2, dy=140.5, angle_deg=180.0),
]


@pytest.mark.parametrize("seed,case", list(enumerate(CASES)))
def test_recovers_injected_transform(seed, case):
    rng = np.random.default_rng(100 + seed)
    sky = _sky(rng)
    ref = sky[_inside(sky)]
    t = transform_matrix(center=(W / 2, W / 2), **case)
    frame = _frame(rng, sky, t)
    m = match(StarSet(ref), frame)
    seen = _inside(apply(t, ref))
    err = apply_transform(m.transform, ref[seen]) - apply(t, ref[seen])
    assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.05
    assert m.n_matched >= 6 and m.rms < 0.2
    assert transform_summary(m.transform)["flip"] == case.get("flip", False)


def test_unrelated_field_is_refused_not_misplaced():
    rng = np.random.default_rng(7)
    ref = StarSet(_sky(rng)[:80] % W)
    for _ in range(20):
        with pytest.raises(MatchError):
            match(ref, rng.uniform(0, W, (80, 2)))


def test_too_few_stars_raise():
    with pytest.raises(MatchError):
        match(np.array([[1.0, 2.0], [30.0, 40.0]]), np.array([[1.0, 2.0], [30.0, 40.0]]))


def test_many_stars_use_a_capped_subset():
    rng = np.random.default_rng(3)
    sky = _sky(rng, density=400)
    ref = sky[_inside(sky)]
    assert len(ref) > 300
    t = transform_matrix(dx=55.5, dy=-80.25, angle_deg=0.7, center=(W / 2, W / 2))
    frame = _frame(rng, sky, t)
    rset = StarSet(ref, n=30)
    assert len(rset.subset) == 30 and len(rset.tri) <= 30 * 20
    m = match(rset, frame)
    assert m.n_matched > 200  # the final fit uses every cross-matched star, not only the capped ones
    err = apply_transform(m.transform, ref) - apply(t, ref)
    assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.02


def test_triangle_invariants_ignore_similarity_and_flip():
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 500, (12, 2))
    t = transform_matrix(dx=20, dy=-9, angle_deg=33, scale=1.05, flip=True)
    tri_a, inv_a = triangles(xy)
    tri_b, inv_b = triangles(apply(t, xy))
    assert np.array_equal(tri_a, tri_b)
    assert np.allclose(inv_a, inv_b, atol=1e-9)


def test_select_stars_keeps_bright_spread_stars():
    xy = np.array([[0, 0], [1, 1], [50, 50], [52, 50], [100, 0]], float)
    assert select_stars(xy, 10, 5.0).tolist() == [0, 2, 4]
    assert select_stars(xy, 2, 5.0).tolist() == [0, 2]


def test_fit_affine_is_exact_on_exact_points():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (10, 2))
    t = transform_matrix(dx=3, dy=4, angle_deg=10, scale=0.98)
    assert np.allclose(fit_affine(src, apply(t, src)), t, atol=1e-10)
