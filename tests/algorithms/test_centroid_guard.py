"""The centroid guard's tolerance follows the frame's residual spread, not fixed pixels."""
from __future__ import annotations

import numpy as np

from reduce.algorithms.centroid_guard import guard, residual_spread


def _frame(spread, n=30, seed=0, offset=(0.4, -0.3)):
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0, 500, (n, 2))
    measured = predicted + np.asarray(offset) + rng.normal(0, spread, (n, 2))
    return predicted, measured


def test_spread_is_the_per_axis_sigma_and_offset_the_common_shift():
    predicted, measured = _frame(0.2, n=2000)
    offset, sigma = residual_spread(measured - predicted)
    assert np.allclose(offset, [0.4, -0.3], atol=0.02)
    assert abs(sigma - 0.2) < 0.01


def test_a_jump_is_replaced_by_the_corrected_prediction():
    predicted, measured = _frame(0.02)
    measured[3] += [0.0, 10.0]  # the brightest spot of a doughnut's rim, a cosmic ray...
    out, rejected, tol = guard(predicted, measured, np.ones(len(predicted), bool))
    assert rejected.tolist() == [i == 3 for i in range(len(predicted))]
    assert 0.05 < tol < 0.2
    assert np.allclose(out[3], predicted[3] + [0.4, -0.3], atol=0.03)
    assert np.array_equal(np.delete(out, 3, axis=0), np.delete(measured, 3, axis=0))


def test_the_same_offset_is_accepted_on_a_noisy_frame_and_rejected_on_a_sharp_one():
    for spread, expect in ((0.5, False), (0.02, True)):
        predicted, measured = _frame(spread, seed=2)
        measured[0] = predicted[0] + [0.4, -0.3] + [1.0, 0.0]
        _, rejected, _ = guard(predicted, measured, np.ones(len(predicted), bool))
        assert rejected[0] == expect, spread


def test_nan_centroids_take_the_prediction_and_unusable_stars_are_left_alone():
    predicted, measured = _frame(0.05)
    measured[1] = np.nan
    usable = np.ones(len(predicted), bool)
    usable[2] = False
    measured[2] += 50.0
    out, rejected, _ = guard(predicted, measured, usable)
    assert rejected[1] and np.isfinite(out[1]).all()
    assert not rejected[2] and np.array_equal(out[2], measured[2])


def test_too_few_stars_are_not_judged():
    predicted, measured = _frame(0.05, n=4)
    out, rejected, tol = guard(predicted, measured, np.ones(4, bool))
    assert rejected is None and np.isnan(tol) and out is measured
