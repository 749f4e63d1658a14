"""Differential photometry maths on synthetic nights with a known truth (reduce.lightcurve: ensemble,
aperture_choice, binning, stats)."""
from __future__ import annotations

import numpy as np
import pytest

from reduce.lightcurve.aperture_choice import best_aperture, seeing_trend
from reduce.lightcurve.binning import binned
from reduce.lightcurve.ensemble import (differential, flat_residual, select_comparisons, single_frame_jumps,
                                       usable_frames, weights_broeg)
from reduce.lightcurve.stats import p2p_scatter
from reduce import Fluxes

RADII = np.array([2.0, 3.0, 4.0, 6.0, 8.0])
ENCLOSED = np.array([0.55, 0.80, 0.92, 0.98, 0.995])
SKY_VAR = 400.0  # ADU^2 per pixel (sky + read noise)


def synthetic(seed=1, *, n_frames=600, n_stars=14, signal="transit", variables=(4, 7),
              saturated=1, sky_var=SKY_VAR, radii=RADII, enclosed=ENCLOSED):
    """A night of aperture fluxes with known truth.

    Star 0 is the target (transit of 1 % or sine of 0.8 %), star ``saturated`` is the brightest
    and compressed by non-linearity (peak above saturation), ``variables`` carry a 3 % sine / a 5 % drift
    signals. Every star shares a transparency signal; noise is photon + sky per aperture.
    Returns (Fluxes, truth dict).
    """
    rng = np.random.default_rng(seed)
    t = 2460000.3 + np.linspace(0, 0.25, n_frames)
    phase = (t - t[0]) / 0.25
    base = np.geomspace(4e5, 2e4, n_stars)
    base[0] = 8e4
    rng.shuffle(base[2:])
    base[saturated] = 8e5
    transp = 1 + 0.04 * np.sin(2 * np.pi * phase * 1.3) - 0.05 * phase
    transp *= 1 + np.cumsum(rng.normal(0, 1e-3, n_frames))
    if signal == "transit":
        truth = 1 - 0.01 * ((phase > 0.4) & (phase < 0.6))
    else:
        truth = 1 + 0.008 * np.sin(2 * np.pi * phase * 2)
    intrinsic = np.ones((n_stars, n_frames))
    intrinsic[0] = truth
    if len(variables) > 0:
        intrinsic[variables[0]] = 1 + 0.03 * np.sin(2 * np.pi * phase * 1.7 + 1)
    if len(variables) > 1:
        intrinsic[variables[1]] = 1 + 0.05 * phase ** 2
    true = base[None, :, None] * enclosed[:, None, None] * intrinsic[None] * transp[None, None]
    area = np.pi * radii ** 2
    var = true + area[:, None, None] * sky_var
    flux = true + rng.normal(size=true.shape) * np.sqrt(var)
    sat_level = 60000.0
    peak = base[:, None] * transp[None] * intrinsic * 0.02
    peak[saturated] = np.maximum(peak[saturated], 1.05 * sat_level)
    flux[:, saturated] *= 1 - 0.08 * (true[:, saturated] / true[:, saturated].max())
    data = {"peak": peak, "fwhm": 3 + 0.3 * np.sin(phase * 5) + rng.normal(0, 0.05, n_frames),
            "sky": 200 + 20 * phase + rng.normal(0, 1, n_frames),
            "airmass": 1.1 + 0.5 * (phase - 0.3) ** 2, "dx": rng.normal(0, 0.5, n_frames),
            "dy": rng.normal(0, 0.5, n_frames),
            "x": np.tile(rng.uniform(20, 580, n_stars)[:, None], n_frames),
            "y": np.tile(rng.uniform(20, 580, n_stars)[:, None], n_frames)}
    fl = Fluxes(t, flux, np.sqrt(var), radii, target=0, data=data,
                files=[f"frame{i:04d}.fits" for i in range(n_frames)],
                meta={"saturation": sat_level})
    rel = np.sqrt(var) / true  # relative noise per aperture, star, frame
    return fl, {"truth": truth, "rel": rel, "variables": list(variables), "saturated": saturated}


def floor(rel, comps, target=0):
    """Per-aperture theoretical noise of target / optimal ensemble of ``comps`` (A,)."""
    v = np.mean(rel ** 2, axis=-1)
    ens = 1.0 / np.sum(1.0 / v[:, comps], axis=1)
    return np.sqrt(v[:, target] + ens)


def test_weights_broeg_downweights_variables_and_follows_inverse_variance():
    fl, truth = synthetic(2)
    frames = usable_frames(fl.fluxes, 0)
    comps = select_comparisons(fl.fluxes, target=0, frames=frames, peak=fl.data["peak"],
                                        saturation=fl.meta["saturation"], max_comps=20)
    assert not comps[:, 0].any() and not comps[:, truth["saturated"]].any()
    w, info = weights_broeg(fl.fluxes, fl.errors, comps=comps, frames=frames)
    assert np.allclose(w.sum(axis=1), 1)
    for v in truth["variables"]:
        assert np.all(w[:, v] == 0) and info["rejected"][:, v].all()
    good = [i for i in range(fl.shape[1]) if comps[0, i] and i not in truth["variables"]]
    # Broeg weights: inverse variance of star / ensemble of the others (own noise + that ensemble's)
    inv_var = 1 / np.mean(truth["rel"][:, good] ** 2, axis=-1)
    others = 1 / (inv_var.sum(axis=1, keepdims=True) - inv_var)
    expected = 1 / (1 / inv_var + others)
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(w[:, good], expected, rtol=0.15)  # weights from noisy estimates


def test_weights_without_errors_still_reject_variables():
    fl, truth = synthetic(3)
    frames = usable_frames(fl.fluxes, 0)
    comps = select_comparisons(fl.fluxes, target=0, frames=frames, peak=fl.data["peak"],
                                        saturation=fl.meta["saturation"])
    w, info = weights_broeg(fl.fluxes, None, comps=comps, frames=frames)
    assert np.all(w[:, truth["variables"]] == 0)
    assert np.count_nonzero(w[2]) >= 8


def test_differential_propagates_errors_and_leaves_comps_out():
    rng = np.random.default_rng(0)
    f = np.full((1, 3, 400), 1000.0) * (1 + rng.normal(0, 0.01, (1, 3, 400)))
    e = np.full_like(f, 10.0)
    w = np.array([0.0, 0.5, 0.5])
    d, de = differential(f, e, w)
    # target relative error 1 %, ensemble of two 1 % stars: 0.71 % -> 1.22 %
    assert np.allclose(np.median(de[0, 0] / d[0, 0]), np.sqrt(1e-4 + 0.5e-4), rtol=0.03)
    assert np.isclose(np.median(d[0, 0]), 1.0)
    # a comparison against the other one only: the ratio of two stars
    ratio = (f[0, 1] / np.median(f[0, 1])) / (f[0, 2] / np.median(f[0, 2]))
    assert np.allclose(d[0, 1], ratio / np.median(ratio))
    assert np.allclose(de[0, 1] / d[0, 1], np.sqrt(2) * 0.01 * np.ones(400), rtol=0.05)


def test_differential_rejects_bad_weights():
    with pytest.raises(ValueError, match="non-negative"):
        differential(np.ones((1, 2, 5)), None, np.array([0.0, -1.0]))


def test_best_aperture_prefers_lowest_white_noise_and_ignores_trends():
    rng = np.random.default_rng(4)
    time = np.linspace(0, 0.2, 500)
    trend = 0.02 * np.sin(time * 30)
    noise = np.array([0.004, 0.001, 0.002])
    curves = 1 + trend + rng.normal(size=(3, 500)) * noise[:, None]
    idx, metric = best_aperture(curves, time=time)
    assert idx == 1
    assert np.allclose(metric, noise, rtol=0.15)
    idx_b, _ = best_aperture(curves, time=time, method="binned", dt=0.01)
    assert idx_b in (1, 2)
    with pytest.raises(ValueError, match="unknown method"):
        best_aperture(curves, method="nope")


def _short_night(seed=3, n=20):
    """20 frames: a 1 % sine of one night's period and a seeing that improves over the night."""
    rng = np.random.default_rng(seed)
    time = np.linspace(0, 0.016, n)
    signal = 1 + 0.01 * np.sin(2 * np.pi * time / 0.016)
    seeing = 4.2 - 40 * time + rng.normal(0, 0.03, n)
    return rng, time, signal, seeing


def test_best_aperture_sees_a_seeing_trend_that_p2p_misses():
    # a wide aperture in a crowded field: the comparisons gain their neighbours' light as the seeing
    # grows, a slow trend p2p does not see (and which here eats part of the target's signal)
    rng, time, signal, seeing = _short_night()
    z = (seeing - seeing.mean()) / seeing.std()
    noise = np.array([0.002, 0.0015, 0.0003])
    curves = signal * (1 + rng.normal(size=(3, time.size)) * noise[:, None])
    curves[2] *= 1 - 0.005 * z
    idx, _ = best_aperture(curves, time=time)
    assert idx == 2  # p2p alone: the lowest white noise wins
    idx, metric = best_aperture(curves, time=time, seeing=seeing, anchor=0)
    assert idx == 1
    assert metric[2] > 0.004  # the trend (0.005 rms) is counted
    # by default the anchor is the smallest aperture as good as the best by p2p (here 1)
    assert best_aperture(curves, time=time, seeing=seeing)[0] == 1


def test_best_aperture_seeing_penalty_ignores_the_targets_own_signal():
    # the signal follows the seeing by chance, the same in every aperture: no aperture pays for it
    rng, time, _, seeing = _short_night(seed=5)
    signal = 1 + 0.005 * (seeing - seeing.mean()) / seeing.std()
    noise = np.array([0.003, 0.001, 0.002])
    curves = signal * (1 + rng.normal(size=(3, time.size)) * noise[:, None])
    plain_idx, plain = best_aperture(curves, time=time)
    idx, metric = best_aperture(curves, time=time, seeing=seeing, anchor=0)
    assert idx == plain_idx == 1
    assert np.all(metric <= 1.2 * plain)  # white noise in the ratio is not taken for a trend


def test_seeing_trend_is_the_rms_of_the_fitted_line():
    seeing = np.array([3.0, 3.5, 4.0, 4.5, 5.0, np.nan])
    curve = 1 + 0.01 * (np.nan_to_num(seeing) - 4.0)
    assert np.isclose(seeing_trend(curve[None, :5], seeing[:5])[0], 0.01 * np.std(seeing[:5]))
    assert seeing_trend(np.ones((1, 6)), np.full(6, 4.0))[0] == 0.0  # no seeing change


def test_binned_known_values():
    time = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 2.5])
    values = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 10.0])
    errors = np.array([0.1, 0.1, 0.1, 0.3, 0.4, 0.5])
    tb, m, e, n = binned(time, values, 1.0, error=errors, estimate_error=True)
    assert np.allclose(tb, [0.1, 1.05, 2.5])
    assert np.allclose(m, [2.0, 5.0, 10.0]) and n.tolist() == [3, 2, 1]
    assert np.allclose(e, [1.0 / np.sqrt(3), np.sqrt(2) / np.sqrt(2), 0.5])  # n==1: propagated
    _, _, e2, _ = binned(time, values, 1.0, error=errors, estimate_error=False)
    assert np.allclose(e2, [np.sqrt(0.03) / 3, 0.5 / 2, 0.5])
    with pytest.raises(ValueError, match="dt must be > 0"):
        binned(time, values, 0)


def test_binned_ignores_nans_and_unsorted_time():
    time = np.array([0.3, 0.0, 0.1, 0.2])
    values = np.array([[4.0, 1.0, np.nan, 3.0]])
    tb, m, e, n = binned(time, values, 0.25)
    assert np.allclose(tb, [0.1, 0.3]) and np.allclose(m, [[2.0, 4.0]]) and n.tolist() == [[2, 1]]


def test_p2p_scatter_is_robust_to_outliers():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 0.01, 2000)
    x[::100] += 1.0
    assert abs(p2p_scatter(x) - 0.01) < 0.001


def test_weights_ignore_a_candidate_missing_in_a_frame():
    fl, _ = synthetic(6, n_frames=200, variables=())
    comps = np.ones(fl.shape[:2], bool)
    comps[:, [0, 1]] = False
    fl.fluxes[:, 3, 50] = np.nan
    w, _ = weights_broeg(fl.fluxes, fl.errors, comps=comps)
    assert np.all(w[:, 3] == 0) and np.all(np.isfinite(w)) and np.allclose(w.sum(axis=1), 1)


def test_few_frames_fall_back_to_expected_noise_weights():
    fl, truth = synthetic(8, n_frames=6)
    comps = np.zeros(fl.shape[:2], bool)
    comps[:, [2, 3, 5]] = True
    w, info = weights_broeg(fl.fluxes, fl.errors, comps=comps)
    inv = 1 / np.median((fl.errors / fl.fluxes)[:, [2, 3, 5]], axis=-1) ** 2
    assert np.allclose(w[:, [2, 3, 5]], inv / inv.sum(axis=1, keepdims=True))
    assert info["iterations"] == 0 and not info["rejected"].any()


def test_aperture_choice_skips_radii_that_do_not_fit_and_flags_the_chosen_ones_gaps():
    from reduce.algorithms.apertures import EDGE, MASKED
    from reduce.model.flags import Flag

    fl, _ = synthetic(30, n_frames=300, variables=(), saturated=1)
    cube, errors = fl.fluxes, fl.errors
    n_ap = fl.shape[0]
    bits = np.zeros((n_ap, fl.shape[1], 300), np.uint8)
    flux = cube.copy()
    # the two largest radii leave the frame on 10 % of the frames: they would be the least noisy
    flux[3:, 0, ::10] = np.nan
    bits[3:, 0, ::10] = EDGE
    flux[3:, 0] = cube[1, 0] * ENCLOSED[3:, None] / ENCLOSED[1]  # noiseless there
    flux[3:, 0, ::10] = np.nan
    # radius 4 (the best of the rest: nearly noiseless) misses one frame: a dead column there
    flux[2, 0] = cube[1, 0] * ENCLOSED[2] / ENCLOSED[1]
    flux[2, 0, 77] = np.nan
    bits[2, 0, 77] = MASKED
    f = Fluxes(fl.time, flux, errors, fl.apertures, data=dict(fl.data, aperture_flags=bits), files=fl.files,
               meta=fl.meta)
    d = f.autodiff()
    assert d.aperture == 2 and np.isinf(d.meta["scatter"][3:]).all()
    assert d.flags[77] == Flag.TARGET_MASKED and np.count_nonzero(d.flags) == 1
    assert np.isnan(d.diff_flux[77]) and np.isfinite(np.delete(d.diff_flux, 77)).all()
    assert d.meta["aperture_issues"] == [{"index": 77, "file": "frame0077.fits",
                                          "reason": "the chosen target aperture (r=4.0 px) overlaps masked "
                                                    "pixels (unilluminated or NaN)"}]


def test_raw_saturated_flags_decide_over_calibrated_peaks():
    fl, truth = synthetic(31, n_frames=100, variables=())
    frames = usable_frames(fl.fluxes, 0)
    flags = np.zeros(fl.shape[1:], bool)
    flags[5, 40] = True  # clipped in one raw frame, although its calibrated peak looks fine
    comps = select_comparisons(fl.fluxes, target=0, frames=frames, peak=fl.data["peak"],
                                        saturation=fl.meta["saturation"], saturated=flags)
    assert not comps[:, 5].any() and comps[:, truth["saturated"]].all()  # flags are the authority
    fl.data["saturated"] = flags
    assert 5 not in fl.autodiff().comparisons


def _sky_series(minutes, seed=0):
    """Twilight at the start of a night: the sky falls from 24,700 to 300 ADU in 30 minutes
    (a strongly curved, exponential decline to the dark-sky level), then stays dark."""
    rng = np.random.default_rng(seed)
    tau = 30 / np.log(24700 / 300)
    sky = (300 + 24400 * np.exp(-minutes / tau)) * (1 + rng.normal(0, 0.003, minutes.size))
    return Fluxes(2460000.5 + minutes / 1440, np.ones((1, 3, minutes.size)), data={"sky": sky})


def test_sky_clip_keeps_a_twilight_decline_sampled_every_4_minutes():
    fl = _sky_series(np.arange(0, 240, 4.0), seed=1)  # 45 % per frame at first: one frame per step
    assert fl.sigma_clipping_data(bkg=3).meta.get("rejected", []) == []


@pytest.mark.parametrize("cadence", [0.5, 1.0, 2.0])
def test_sky_clip_keeps_a_twilight_decline_and_rejects_single_frame_jumps(cadence):
    minutes = np.arange(0, 240, cadence)
    fl = _sky_series(minutes)
    assert fl.sigma_clipping_data(bkg=3).meta.get("rejected", []) == []
    for minute in (0.0, 6.0, 12.0, 24.0, 90.0, 239.0):  # at the start, in the decline, at night, last
        i = int(round(minute / cadence)) if minute < 239 else minutes.size - 1
        jumped = _sky_series(minutes)
        jumped.data["sky"][i] *= 1.6
        out = jumped.sigma_clipping_data(bkg=3)
        assert [r["index"] for r in out.meta["rejected"]] == [i], minute
        assert out.meta["rejected"][0]["reason"].startswith("bkg outlier")


def test_nanmedian_is_numpys_without_warnings():
    """Bit for bit np.nanmedian (the products depend on it), NaN for all-NaN or empty slices."""
    import warnings

    from reduce.lightcurve.stats import nanmedian

    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 5, 40)) * 10.0 ** rng.uniform(-5, 5, size=(6, 5, 1))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = [np.nanmedian(a, axis=k) for k in (0, 1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in (0, 1, 2):
            assert nanmedian(a, axis=k).tobytes() == expected[k].tobytes()
        assert np.isnan(nanmedian(np.empty((3, 0)))).all() and nanmedian(np.empty((3, 0))).shape == (3,)


def test_one_or_two_frames_take_the_aperture_of_best_signal_to_noise():
    """No scatter on 2 frames: with errors, the aperture of least median relative error is chosen
    among those measuring the target on both (a radius missing a frame is skipped); without
    errors the choice says why it cannot be made."""
    from reduce.lightcurve.aperture_choice import best_aperture

    diff = np.array([[1.0, 1.01], [0.99, 1.0], [1.0, np.nan], [1.0, 1.0]])
    errors = np.array([[0.02, 0.02], [0.008, 0.009], [0.001, 0.001], [0.012, 0.011]])
    index, metric = best_aperture(diff, errors=errors)
    assert index == 1 and np.isinf(metric[2]) and metric[1] == pytest.approx(np.median([0.008 / 0.99, 0.009]))
    with pytest.raises(ValueError, match="at least 3"):
        best_aperture(diff)
    three = np.c_[diff, diff[:, :1]]
    with_errors, by_scatter = best_aperture(three, errors=np.c_[errors, errors[:, :1]]), best_aperture(three)
    assert with_errors[0] == by_scatter[0] and np.array_equal(with_errors[1], by_scatter[1])  # 3 frames: by scatter


def test_differential_renormalises_a_frame_missing_a_comparison():
    rng = np.random.default_rng(4)
    base = np.array([1e5, 2e5, 1.5e5, 3e5])
    transp = 1 + 0.05 * np.sin(np.linspace(0, 6, 50))
    flux = (base[:, None] * transp * (1 + 1e-3 * rng.standard_normal((4, 50))))[None]
    flux[0, 1, :] *= 1.02  # comparisons at different levels: the ensemble is a weighted mean
    w = np.array([0.0, 0.5, 0.3, 0.2])
    full, _ = differential(flux, None, w)
    hit = flux.copy()
    hit[0, 2, 20] = np.nan  # comparison 2 hit on frame 20: it leaves that frame's ensemble only
    d, _ = differential(hit, None, w)
    assert np.all(np.isfinite(d[0, 0])) and np.isnan(d[0, 2, 20])
    # every frame: the target over the weighted ensemble of the comparisons measured there
    n = hit[0] / np.nanmedian(hit[0], axis=-1, keepdims=True)
    use = np.isfinite(n) & (w[:, None] > 0)
    ens = np.where(use, w[:, None] * np.nan_to_num(n), 0).sum(axis=0) / (w[:, None] * use).sum(axis=0)
    expected = hit[0, 0] / ens
    assert np.allclose(d[0, 0], expected / np.median(expected), rtol=1e-12)
    assert abs(d[0, 0, 20] / full[0, 0, 20] - 1) < 5e-3  # close to the full ensemble's value


def test_a_hit_frame_does_not_drop_a_comparison_for_the_night():
    fl, _ = synthetic(6, n_frames=200, variables=())
    frames = usable_frames(fl.fluxes, 0)
    fl.fluxes[:, 3, 50] = np.nan
    excused = np.zeros(fl.fluxes.shape, bool)
    excused[:, 3, 50] = True
    kw = dict(target=0, frames=frames, max_comps=20, saturated=np.zeros(fl.fluxes.shape[1:], bool))
    assert not select_comparisons(fl.fluxes, **kw)[:, 3].any()
    comps = select_comparisons(fl.fluxes, excused=excused, **kw)
    assert comps[:, 3].all()
    w, _ = weights_broeg(fl.fluxes, fl.errors, comps=comps, frames=frames, excused=excused)
    assert np.all(w[:, 3] > 0) and np.allclose(w.sum(axis=1), 1)
    d, _ = differential(fl.fluxes, fl.errors, w, frames=frames)
    assert np.isfinite(d[:, 0, 50]).all()


def test_a_comparison_jump_on_one_frame_leaves_that_frame_s_ensemble_only():
    """Light a hit left in a comparison's aperture (no NaN) must not reach the target's ratio;
    slow trends and ordinary noise keep every comparison in."""
    rng = np.random.default_rng(8)
    n = 60
    base = np.array([3e5, 1e5, 2e5, 1.5e5, 3e5])
    transp = 1 + 0.05 * np.sin(np.linspace(0, 6, n))
    flux = (base[:, None] * transp * (1 + 1e-3 * rng.standard_normal((5, n))))[None]
    flux[0, 2] *= np.linspace(0.99, 1.01, n)  # a slow colour trend: no jump
    w = np.array([0.0, 0.25, 0.25, 0.25, 0.25])
    clean, _ = differential(flux, None, w)
    hit = flux.copy()
    hit[0, 3, 30] *= 1.01  # 10 of its sigmas on one frame
    d, _ = differential(hit, None, w)
    kept, _ = differential(hit, None, w, hits=0)  # the test off: the target's ratio drops 2.5 ppt
    assert abs(kept[0, 0, 30] / clean[0, 0, 30] - 1) > 2e-3
    assert abs(d[0, 0, 30] / clean[0, 0, 30] - 1) < 1.2e-3  # the frame's ensemble of the 3 others
    others = np.delete(np.arange(n), 30)
    assert np.allclose(d[0, 0, others], clean[0, 0, others], rtol=1e-4)
    assert np.array_equal(differential(flux, None, w, hits=0)[0], clean)  # no jump: nothing left out


def _field(seed, n_stars=10, n_frames=60, noise=0.003):
    """(1, n_stars, n_frames) fluxes of constant stars under a shared transparency, star 0 a 1 %
    sine (the target), with ``noise`` relative scatter."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(2e4, 5e5, n_stars)
    t = np.linspace(0, 1, n_frames)
    trans = 1.0 - 0.05 * t + 0.02 * np.sin(9 * t)
    f = level[:, None] * trans[None, :] * (1 + noise * rng.standard_normal((n_stars, n_frames)))
    f[0] *= 1 + 0.01 * np.sin(2 * np.pi * t)
    return f[None]


def test_single_frame_jumps_finds_hits_on_comparisons_only():
    f = _field(3)
    clean = single_frame_jumps(f, target=0, frames=np.ones((1, f.shape[-1]), bool))
    assert not clean.any()  # no false hits on a clean field (small: a star is not its own field)
    hit = f.copy()
    hit[0, 4, 17] *= 1.05   # a cosmic ray on a comparison's core: +5 % on one frame
    hit[0, 6, 40] *= 1.03
    hit[0, 0, 30] *= 1.2    # the target is never touched here (the outlier guard judges it)
    found = single_frame_jumps(hit, target=0, frames=np.ones((1, f.shape[-1]), bool))
    assert set(zip(*np.nonzero(found[0]))) == {(4, 17), (6, 40)}


def test_a_variable_comparison_is_not_a_jump():
    f = _field(4)
    f[0, 5] *= 1 + 0.05 * np.sin(np.linspace(0, 6, f.shape[-1]))  # smooth: the running median follows it
    assert not single_frame_jumps(f, target=0, frames=np.ones((1, f.shape[-1]), bool)).any()


def test_flat_residual_takes_out_vignetting_seen_through_a_jump():
    rng = np.random.default_rng(5)
    n_stars, n_frames = 12, 60
    x0, y0 = rng.uniform(20, 280, n_stars), rng.uniform(20, 280, n_stars)
    dx = np.where(np.arange(n_frames) >= 30, 14.0, 0.0) + rng.normal(0, 0.3, n_frames)
    dy = np.where(np.arange(n_frames) >= 30, -29.0, 0.0) + rng.normal(0, 0.3, n_frames)
    x, y = x0[:, None] + dx, y0[:, None] + dy
    vignetting = 1 - 0.08 * ((x - 140) ** 2 + (y - 150) ** 2) / 212.0 ** 2  # no flat taken
    f = _field(6, n_stars, n_frames, noise=0.002)
    frames = np.ones((1, n_frames), bool)
    found = flat_residual(f * vignetting, x, y, target=0, frames=frames)
    assert found is not None
    factor, chi2 = found
    fixed = f * vignetting / factor
    # each star's step at the jump is gone (the common part is the ensemble's, and cancels)
    step = lambda a: np.log(a[:, 30:].mean(1) / a[:, :30].mean(1))
    before, after = step((f * vignetting)[0] / f[0]), step(fixed[0] / f[0])
    assert np.ptp(before) > 0.005 and np.ptp(after) < 0.1 * np.ptp(before)
    # nothing to correct when the stars do not move
    assert flat_residual(f, np.repeat(x0[:, None], n_frames, 1), np.repeat(y0[:, None], n_frames, 1),
                         target=0, frames=frames) is None
