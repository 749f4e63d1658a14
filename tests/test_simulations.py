"""The simulator writes the night its truth.json describes: files, headers, stars, calibration."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits

from reduce.simulations import (enclosed_fraction, illumination, load_truth, noise_floor,
                                simulate_night, simulate_observation, sky_plane, target_signal)
from reduce.simulations.truth import positions


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A small drifting night with calibration frames (read-only for the tests)."""
    dest = tmp_path_factory.mktemp("sim") / "night"
    truth = simulate_night(dest, seed=3, n_images=5, size=128, shift=10.0, signal="transit")
    return dest, truth


def _data(dest, name):
    return fits.getdata(dest / name).astype(float)


def _positions(truth, i):
    st, fr = truth["stars"], truth["frames"]
    return np.array(st["x"]) + fr["dx"][i], np.array(st["y"]) + fr["dy"][i]


def test_files_and_truth_json(night):
    dest, truth = night
    names = sorted(p.name for p in (dest / "light").iterdir())
    assert names == [f"SIM-1_V_000{i}.fits" for i in range(1, 6)]
    cal = truth["calibration"]
    assert len(cal["bias"]) == len(cal["dark"]) == 5 and len(cal["flat"]) == 15
    assert all((dest / f).is_file() for f in cal["bias"] + cal["dark"] + cal["flat"])
    assert not list(dest.rglob(".*.tmp"))
    on_disk = load_truth(dest)
    assert on_disk == json.loads(json.dumps(truth))
    n = len(truth["time"])
    for key, values in truth["frames"].items():
        assert len(values) == n, key
    assert np.all(np.diff(truth["time"]) > 0)
    np.testing.assert_allclose(truth["dflux"], target_signal("transit", truth["time"]))
    assert min(truth["dflux"]) < 0.995  # the transit is in the night


def test_light_headers_and_times(night):
    dest, truth = night
    for i, name in enumerate(truth["frames"]["file"]):
        h = fits.getheader(dest / name)
        assert h["IMAGETYP"] == "Light Frame" and h["FILTER"] == "V" and h["OBJECT"] == "SIM-1"
        for key in ("TELESCOP", "RA", "DEC", "GAIN", "RDNOISE", "SITELAT", "SITELONG", "SITEELEV"):
            assert key in h, key
        start = datetime.fromisoformat(h["DATE-OBS"])
        mid = start + timedelta(seconds=h["EXPTIME"] / 2)
        jd_mid = 2451545.0 + (mid - datetime(2000, 1, 1, 12)) / timedelta(days=1)
        assert abs(jd_mid - truth["time"][i]) * 86400 < 1e-3
        assert abs(h["JD"] + h["EXPTIME"] / 2 / 86400 - truth["time"][i]) * 86400 < 2e-3
        assert h["AIRMASS"] == pytest.approx(truth["frames"]["airmass"][i], rel=1e-4)
        assert 1.0 <= h["AIRMASS"] < 3.0


def test_calibration_headers(night):
    dest, truth = night
    types = {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field"}
    first_light = fits.getheader(dest / truth["frames"]["file"][0])["DATE-OBS"]
    for kind, value in types.items():
        h = fits.getheader(dest / truth["calibration"][kind][0])
        assert h["IMAGETYP"] == value
        assert "OBJECT" not in h
        assert h["DATE-OBS"] < first_light
    assert fits.getheader(dest / truth["calibration"]["bias"][0])["EXPTIME"] == 0
    dark = fits.getheader(dest / truth["calibration"]["dark"][0])
    assert dark["EXPTIME"] == truth["parameters"]["exptime"]


def test_uint16_written_with_bzero(night):
    dest, truth = night
    with fits.open(dest / truth["frames"]["file"][0], do_not_scale_image_data=True) as hdul:
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768
    assert fits.getdata(dest / truth["frames"]["file"][0]).dtype == np.uint16


def test_target_is_the_brightest_star_and_nothing_saturates(night):
    """As in prose, star 0 (the brightest) is the target, and no star reaches saturation."""
    dest, truth = night
    st, t = truth["stars"], truth["target"]
    sat = truth["parameters"]["saturation"]
    assert t == 0 and not any(st["saturated"])
    assert st["flux"][0] > max(st["flux"][1:])
    assert max(st["peak_adu"]) < 0.7 * sat  # a margin: noise and seeing never reach saturation
    data = _data(dest, truth["frames"]["file"][0])
    assert data.max() < sat
    # the target is the brightest star in the pixels too (3-FWHM box sums)
    xs, ys = _positions(truth, 0)
    sky = np.median(data)
    h = int(3 * truth["frames"]["fwhm"][0])
    sums = {k: (data[int(ys[k]) - h:int(ys[k]) + h, int(xs[k]) - h:int(xs[k]) + h] - sky).sum()
            for k in range(len(xs))}
    assert max(sums, key=sums.get) == t


@pytest.mark.parametrize("seed,size", [(0, 600), (1, 300), (7, 200), (11, 400)])
def test_detection_puts_the_target_first(tmp_path, seed, size):
    """The brightest detected star, index 0 of the reference's sources, is the simulated target."""
    from reduce import FITSImage, Sequence, blocks

    truth = simulate_night(tmp_path / "n", seed=seed, n_images=1, size=size, calibration=False)
    image = FITSImage(tmp_path / "n" / truth["frames"]["file"][0])
    Sequence([blocks.Trim(), blocks.PointSourceDetection()]).run(image, show_progress=False)
    t = truth["target"]
    x0, y0 = image.sources.coords[0]
    assert np.hypot(x0 - truth["stars"]["x"][t], y0 - truth["stars"]["y"][t]) < 1.0
    assert not image.sources.saturated.any()


def test_stars_are_where_truth_says_after_drift(night):
    dest, truth = night
    i = len(truth["time"]) - 1
    assert np.hypot(truth["frames"]["dx"][i], truth["frames"]["dy"][i]) > 5  # drift applied
    data = _data(dest, truth["frames"]["file"][i])
    xs, ys = _positions(truth, i)
    st = truth["stars"]
    checked = 0
    for k in np.argsort(st["flux"])[::-1]:
        if st["saturated"][k] or st["flux"][k] < 0.1 * st["flux"][truth["target"]]:
            continue
        ix, iy = int(round(xs[k])), int(round(ys[k]))
        cut = data[iy - 4:iy + 5, ix - 4:ix + 5]
        cut = cut - np.median(data[iy - 12:iy + 13, ix - 12:ix + 13])
        cut = np.clip(cut, 0, None)
        yy, xx = np.mgrid[iy - 4:iy + 5, ix - 4:ix + 5]
        cx, cy = (cut * xx).sum() / cut.sum(), (cut * yy).sum() / cut.sum()
        assert abs(cx - xs[k]) < 0.35 and abs(cy - ys[k]) < 0.35, (k, cx - xs[k], cy - ys[k])
        checked += 1
    assert checked >= 3


def test_bias_and_dark_levels(night):
    dest, truth = night
    p = truth["parameters"]
    bias = np.median([_data(dest, f) for f in truth["calibration"]["bias"]], axis=0)
    dark = np.median([_data(dest, f) for f in truth["calibration"]["dark"]], axis=0)
    assert abs(np.median(bias) - p["bias_level"]) < 3
    assert np.std(np.median(bias, axis=0)) > 1.0  # fixed column structure
    expected = p["dark_current"] * p["exptime"] / p["gain"]
    assert np.median(dark - bias) == pytest.approx(expected, abs=0.5)
    hot = max(p["hot_pixels"], key=lambda h: h[2])
    assert dark[hot[1], hot[0]] - bias[hot[1], hot[0]] > 5 * expected


def test_flat_response(night):
    dest, truth = night
    flat_p = truth["parameters"]["flat"]
    bias = np.median([_data(dest, f) for f in truth["calibration"]["bias"]], axis=0)
    master = np.mean([_data(dest, f) - bias for f in truth["calibration"]["flat"]], axis=0)
    level = np.median(master)
    assert level == pytest.approx(flat_p["level_adu"], rel=0.1)
    n = master.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    model = illumination(xx, yy, flat_p)
    ratio = master / model
    ratio /= np.median(ratio)
    assert np.std(model) > 0.01  # vignetting is there...
    assert abs(np.median(ratio[:16, :16]) - 1) < 0.005  # ...and follows the truth's model
    prnu = np.std(ratio)
    assert flat_p["prnu"] * 0.9 < prnu < flat_p["prnu"] * 1.3


def test_uncalibrated_lights_are_visibly_worse(night):
    """Calibrated with the night's own frames, the sky matches the truth's model; raw it does not."""
    dest, truth = night
    ld = lambda names: np.median([_data(dest, f) for f in names], axis=0)  # noqa: E731
    bias, dark = ld(truth["calibration"]["bias"]), ld(truth["calibration"]["dark"])
    flat = ld(truth["calibration"]["flat"]) - bias
    flat /= np.median(flat)
    raw = _data(dest, truth["frames"]["file"][0])
    p, t = truth["parameters"], truth["target"]
    n = raw.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    xs, ys = _positions(truth, 0)
    plane = sky_plane(xx, yy, n, p["sky_gradient"]) / sky_plane(xs[t], ys[t], n, p["sky_gradient"])
    model = truth["frames"]["sky"][0] * plane  # ADU, no camera signature
    stars = np.zeros_like(raw, dtype=bool)
    for x, y, saturated in zip(xs, ys, truth["stars"]["saturated"]):
        stars |= np.hypot(xx - x, yy - y) < (12 if saturated else 5) * truth["frames"]["fwhm"][0]

    def deviation(img):  # mean |block median / model - 1| over star-free 32x32 blocks
        r = img / model - 1
        blocks = [np.median(r[y:y + 32, x:x + 32][~stars[y:y + 32, x:x + 32]])
                  for y in range(0, n, 32) for x in range(0, n, 32)
                  if (~stars[y:y + 32, x:x + 32]).sum() >= 100]
        assert len(blocks) >= 8
        return np.mean(np.abs(blocks))

    calibrated = (raw - dark) / flat / p["flat"]["median_response"]
    assert deviation(calibrated) < 0.01
    assert deviation(raw - p["bias_level"]) > 3 * deviation(calibrated)


def test_reproducible_by_seed(tmp_path):
    a = simulate_night(tmp_path / "a", seed=7, n_images=2, size=64, n_stars=6)
    b = simulate_night(tmp_path / "b", seed=7, n_images=2, size=64, n_stars=6)
    c = simulate_night(tmp_path / "c", seed=8, n_images=2, size=64, n_stars=6)
    for name in a["frames"]["file"] + a["calibration"]["flat"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "truth.json").read_bytes() == (tmp_path / "b" / "truth.json").read_bytes()
    assert not np.array_equal(fits.getdata(tmp_path / "a" / a["frames"]["file"][0]),
                              fits.getdata(tmp_path / "c" / c["frames"]["file"][0]))
    assert a["stars"]["x"] != c["stars"]["x"]


def test_float32_without_calibration(tmp_path):
    truth = simulate_night(tmp_path / "n", n_images=2, size=64, n_stars=5, dtype="float32",
                           calibration=False)
    assert truth["calibration"] == {"bias": [], "dark": [], "flat": []}
    assert not list((tmp_path / "n" / "calibration").iterdir())
    with fits.open(tmp_path / "n" / truth["frames"]["file"][0]) as hdul:
        assert hdul[0].header["BITPIX"] == -32 and "BZERO" not in hdul[0].header
        data = hdul[0].data
    sky = truth["frames"]["sky"][0]
    assert np.median(data) == pytest.approx(sky, rel=0.1)  # no bias pedestal, no flat


def test_variable_comparisons_and_signals(night):
    _, truth = night
    st = truth["stars"]
    sig = np.array(st["signal"])
    t = truth["target"]
    np.testing.assert_allclose(sig[t], truth["dflux"])
    for k, var in enumerate(st["variable"]):
        if k == t:
            continue
        if var:
            assert 0.01 <= st["amplitude"][k] <= 0.03 and np.ptp(sig[k]) > 0
        else:
            assert np.all(sig[k] == 1.0)
    assert 1 <= sum(st["variable"]) < len(st["variable"]) - 3
    tr = np.array(truth["frames"]["transparency"])
    assert np.all((tr > 0.9) & (tr <= 1.0))
    assert np.all((np.array(truth["frames"]["fwhm"]) >= 3) & (np.array(truth["frames"]["fwhm"]) <= 5))


def test_simulate_observation_follows_given_curve(tmp_path):
    time = 2460400.6 + np.arange(4) * 120 / 86400
    dflux = np.array([1.0, 0.99, 0.98, 1.0])
    truth = simulate_observation(time, dflux, tmp_path / "obs", size=64, n_stars=5, exptime=30.0,
                                 calibration=False)
    np.testing.assert_allclose(truth["time"], time, atol=1e-3 / 86400)
    np.testing.assert_allclose(truth["dflux"], dflux)
    assert len(list((tmp_path / "obs" / "light").iterdir())) == 4


@pytest.mark.parametrize("args, message", [
    (dict(time=[1.0, 2.0], dflux=[1, 1]), "Julian dates"),
    (dict(time=[2460400.5, 2460400.6], dflux=[1]), "one length"),
    (dict(time=[2460400.5, 2460400.5001], dflux=[1, 1]), "exptime"),
    (dict(time=[2460400.5], dflux=[-1]), "positive"),
])
def test_simulate_observation_rejects_bad_input(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        simulate_observation(args["time"], args["dflux"], tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=32), "size"), (dict(n_images=0), "n_images"), (dict(n_stars=2), "n_stars"),
    (dict(size=64, n_stars=50), "too many"), (dict(size=128, shift=100), "too large"),
    (dict(dtype="int8"), "dtype"), (dict(signal="boom"), "signal"), (dict(exptime=0), "exptime"),
    (dict(seed=-1), "seed"), (dict(shift=float("nan")), "shift"),
])
def test_simulate_night_rejects_bad_options(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_night(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_non_empty_destination_needs_overwrite(tmp_path):
    dest = tmp_path / "n"
    simulate_night(dest, n_images=4, size=64, n_stars=5, n_bias=1, n_darks=1, n_flats=1)
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        simulate_night(dest, n_images=2, size=64, n_stars=5)
    truth = simulate_night(dest, n_images=2, size=64, n_stars=5, calibration=False, overwrite=True)
    names = sorted(p.name for p in (dest / "light").iterdir())
    assert names == ["SIM-1_V_0001.fits", "SIM-1_V_0002.fits"]
    assert not list((dest / "calibration").iterdir())
    assert (dest / "notes.txt").read_text() == "mine"
    assert load_truth(dest / "truth.json")["parameters"]["n_images"] == len(truth["time"]) == 2


def test_dark_exposures_and_progress(tmp_path, caplog):
    caplog.set_level("INFO", logger="reduce")
    truth = simulate_night(tmp_path / "n", n_images=1, size=64, n_stars=5, n_bias=1, n_darks=2,
                           n_flats=1, dark_exptimes=[10, 60], show_progress=True)
    exps = sorted(fits.getheader(tmp_path / "n" / f)["EXPTIME"] for f in truth["calibration"]["dark"])
    assert exps == [10, 10, 60, 60]
    assert "Simulating night" in caplog.text


def _measured_rms(dest, truth, r, sky_weights=None, superpixel=1):
    """RMS of the target's differential light curve by exact aperture photometry (radius ``r``)
    at the true positions, on frames without camera signature minus the truth's sky model (times
    ``sky_weights``, a per-pixel map, if given), optionally on ``superpixel`` x ``superpixel``
    sums; the ensemble is weighted by each comparison's own scatter (Broeg 2005)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    st, fr, t = truth["stars"], truth["frames"], truth["target"]
    n = truth["parameters"]["size"]
    grad = truth["parameters"]["sky_gradient"]
    yy, xx = np.mgrid[0:n, 0:n]
    x, y = positions(truth)
    flux = np.zeros((len(st["x"]), len(fr["file"])))
    for i, name in enumerate(fr["file"]):
        data = _data(dest, name)
        at_target = sky_plane(x[t, i], y[t, i], n, grad)
        sky = fr["sky"][i] * sky_plane(xx, yy, n, grad) / at_target
        data = data - (sky if sky_weights is None else sky * sky_weights)
        k = superpixel
        if k > 1:
            data = data.reshape(n // k, k, n // k, k).sum(axis=(1, 3))
        xy = np.c_[(x[:, i] - (k - 1) / 2) / k, (y[:, i] - (k - 1) / 2) / k]
        flux[:, i] = aperture_photometry(data, CircularAperture(xy, r))["aperture_sum"]
    rel = flux / np.array(st["signal"])
    comps = [k for k in range(len(st["x"])) if k != t and not st["variable"][k] and not st["saturated"][k]]
    rel_c = rel[comps] / rel[comps].mean(axis=1, keepdims=True)
    ensemble = np.median(rel_c, axis=0)
    for _ in range(3):
        w = 1 / np.var(rel_c / ensemble, axis=1)
        ensemble = w @ rel_c / w.sum()
    lc = rel[t] / ensemble
    return float(np.std(lc / lc.mean())), comps


def test_noise_floor_matches_measured_scatter(tmp_path):
    """Exact aperture photometry at the true positions reaches the floor (within sampling error)."""
    truth = simulate_night(tmp_path / "n", seed=5, n_images=40, size=160, n_stars=16,
                           calibration=False, signal="sine", shift=6)
    t = truth["target"]
    r = 2.0 * float(np.median(truth["frames"]["fwhm"]))
    rms, comps = _measured_rms(tmp_path / "n", truth, r)
    floor = noise_floor(truth, r)
    assert 0.7 < rms / floor < 1.35, (rms, floor)
    # fewer comparisons, higher floor; a larger aperture adds sky noise to the target
    assert noise_floor(truth, r, comparisons=[comps[-1]]) > floor
    assert noise_floor(truth, 4 * r) > floor
    assert noise_floor(tmp_path / "n", r, annulus_px=200) > floor
    with pytest.raises(ValueError, match="target"):
        noise_floor(truth, r, comparisons=[t])


def test_noise_floor_of_a_doughnut_night_matches_measured_scatter(tmp_path):
    truth = simulate_night(tmp_path / "n", seed=5, n_images=40, size=160, n_stars=12,
                           calibration=False, psf="doughnut", fwhm=10.0)
    # inside the central hole, and around the ring (an aperture edge across the steep ring adds
    # the partial-pixel error of aperture photometry, ~2x the floor at 4 px: not noise)
    for r in (3.0, 8.0):
        rms, _ = _measured_rms(tmp_path / "n", truth, r)
        assert 0.7 < rms / noise_floor(truth, r) < 1.35, (r, rms, noise_floor(truth, r))


def test_enclosed_fraction():
    assert enclosed_fraction(1e6, 4.0, 3.0) == pytest.approx(1.0)
    # at the half-width at half-maximum, (r/alpha)^2 = 2^(1/beta) - 1 exactly
    assert enclosed_fraction(2.0, 4.0, 3.0) == pytest.approx(1 - 2 ** (-2 / 3))


# ---- issue 18's real-camera conditions: each is checked on the frames written ----

def _hot_excess(frame, x, y):
    """A pixel's excess over the median of its 5x5 neighbourhood, and its 8 neighbours' largest."""
    cut = frame[y - 2:y + 3, x - 2:x + 3]
    ring = np.delete(frame[y - 1:y + 2, x - 1:x + 2].ravel(), 4)
    base = np.median(cut)
    return frame[y, x] - base, ring.max() - base


def test_uncalibrated_night_with_hot_pixels(tmp_path):
    """No calibration frame; the lights carry bias, dark and sharp hot pixels where truth says."""
    truth = simulate_night(tmp_path / "n", seed=2, n_images=3, size=128, n_stars=8,
                           uncalibrated=True, hot_pixels=3e-3)
    p = truth["parameters"]
    assert truth["calibration"] == {"bias": [], "dark": [], "flat": []}
    assert not list((tmp_path / "n" / "calibration").iterdir())
    assert p["calibration"] is False and p["uncalibrated"] is True
    assert p["conditions"] == {"uncalibrated": True, "hot_pixels": 3e-3}
    assert 300 <= p["bias_level"] <= 1000 and p["dark_current"] > 0
    assert p["flat"]["prnu"] == 0 and p["flat"]["donuts"] == [] and p["flat"]["vignetting"] > 0
    hot = p["hot_pixels"]
    assert len(hot) == round(3e-3 * 128 * 128) and len({(h[0], h[1]) for h in hot}) == len(hot)
    adu = np.array([h[2] for h in hot]) * p["exptime"] / p["gain"]
    assert adu.min() >= 50 and adu.max() <= p["saturation"]
    x, y = (np.asarray(v) for v in positions(truth))
    far = [h for h in hot if 3 <= h[0] < 125 and 3 <= h[1] < 125
           and np.hypot(x[:, 0] - h[0], y[:, 0] - h[1]).min() > 15
           and sum(max(abs(g[0] - h[0]), abs(g[1] - h[1])) <= 2 for g in hot) == 1]  # isolated
    assert len(far) >= 15
    for name in truth["frames"]["file"]:
        frame = _data(tmp_path / "n", name)
        expected = p["bias_level"] + truth["frames"]["sky"][0] * np.median(
            illumination(*np.mgrid[0:128, 0:128][::-1], p["flat"])) + p["dark_current"] * p["exptime"] / p["gain"]
        assert abs(np.median(frame) - expected) < 0.05 * truth["frames"]["sky"][0] + 5
        for hx, hy, rate in far:
            excess, neighbours = _hot_excess(frame, hx, hy)
            want = min(rate * p["exptime"] / p["gain"], p["saturation"] - np.median(frame))
            sigma = np.sqrt((want + truth["frames"]["sky"][0]) * p["gain"]) / p["gain"]
            assert excess == pytest.approx(want, abs=6 * sigma + 5), (hx, hy)  # photon noise
            assert neighbours < 0.2 * excess + 60  # sharp: one pixel, not a star
    assert noise_floor(truth, 6.0) > 0


def test_hot_pixels_are_in_darks_too(tmp_path):
    truth = simulate_night(tmp_path / "n", seed=4, n_images=1, size=96, n_stars=5, hot_pixels=2e-3,
                           n_bias=1, n_darks=1, n_flats=1)
    p = truth["parameters"]
    assert p["calibration"] is True and "uncalibrated" not in p
    dark = _data(tmp_path / "n", truth["calibration"]["dark"][0])
    bias = _data(tmp_path / "n", truth["calibration"]["bias"][0])
    for hx, hy, rate in p["hot_pixels"]:
        want = min(rate * p["exptime"] / p["gain"], p["saturation"] - p["bias_level"])
        sigma = np.sqrt(want * p["gain"]) / p["gain"] + 5
        assert dark[hy, hx] - bias[hy, hx] == pytest.approx(want, abs=6 * sigma)


def test_new_conditions_are_checked(tmp_path):
    for options, message in [(dict(uncalibrated=True, calibration=False), "one or the other"),
                             (dict(uncalibrated=1), "True or False"),
                             (dict(hot_pixels=0.5), "fraction of hot pixels"),
                             (dict(cosmic_rays=-1), "cosmic_rays"), (dict(psf="airy"), "psf must be"),
                             (dict(psf="doughnut", fwhm=5.0), "outer diameter"),
                             (dict(obstruction=0.3), "applies to psf='doughnut' only"),
                             (dict(psf="doughnut", obstruction=0.9), "obstruction must"),
                             (dict(clouds=1.5), "clouds"), (dict(clouds=50), "at most 20"),
                             (dict(bayer="RGBG"), "bayer must be")]:
        with pytest.raises(ValueError, match=message):
            simulate_night(tmp_path / "x", n_images=2, size=64, **options)
        assert not (tmp_path / "x").exists()


def test_cosmic_rays_in_lights_darks_and_flats(tmp_path):
    """Each light has the hits truth lists (sharp, up to saturation); darks and flats get hits
    at the lights' rate per second, rounded up; bias frames none."""
    truth = simulate_night(tmp_path / "n", seed=6, n_images=4, size=128, n_stars=6, exptime=30.0,
                           cosmic_rays=40, n_bias=2, n_darks=2, n_flats=2, dark_exptimes=[30, 120])
    p, fr = truth["parameters"], truth["frames"]
    assert p["cosmic_rays"] == 40 and p["conditions"] == {"cosmic_rays": 40}
    assert len(fr["cosmic_rays"]) == 4 and all(len(h) == 40 for h in fr["cosmic_rays"])
    assert fr["cosmic_rays"][0] != fr["cosmic_rays"][1]
    sat = p["saturation"]
    for name, hits in zip(fr["file"], fr["cosmic_rays"]):
        frame = _data(tmp_path / "n", name)
        sky = np.median(frame)
        peaks = np.array([max(frame[y, x] for x, y in hit) for hit in hits]) - sky
        assert np.mean(peaks > 60) > 0.9  # hits are there (100 ADU to 2x saturation deposits)
        assert np.sum(frame >= sat) >= 5 and frame.max() == sat  # a third reach the ceiling
    ld = lambda name: _data(tmp_path / "n", name)  # noqa: E731
    bias = np.median([ld(f) for f in truth["calibration"]["bias"]], axis=0)
    for name in truth["calibration"]["bias"]:
        assert np.sum(ld(name) - bias > 80) < 3  # no hits in a 0 s bias
    counts = {}
    for name in truth["calibration"]["dark"] + truth["calibration"]["flat"]:
        frame = ld(name)
        level = np.median(frame)
        noise = 1.4826 * np.median(np.abs(frame - level))
        counts[name] = int(np.sum(frame - level > max(80, 8 * noise)))
    d30 = [counts[f] for f in truth["calibration"]["dark"] if "_30s_" in f]
    d120 = [counts[f] for f in truth["calibration"]["dark"] if "_120s_" in f]
    assert all(20 <= c for c in d30) and all(c > 2.5 * max(d30) for c in d120)  # ~40 and ~160 hits
    assert all(c >= 1 for f, c in counts.items() if "flat" in f)  # 2 s: ceil(40 x 2 / 30) = 3 hits


def test_cosmic_rays_do_not_change_the_rest_of_the_night(tmp_path):
    """The hits come from their own random stream: without them, the pixels are identical."""
    a = simulate_night(tmp_path / "a", seed=1, n_images=2, size=64, n_stars=5, n_bias=1,
                       n_darks=1, n_flats=1)
    b = simulate_night(tmp_path / "b", seed=1, n_images=2, size=64, n_stars=5, n_bias=1,
                       n_darks=1, n_flats=1, cosmic_rays=10)
    for name, hits in zip(a["frames"]["file"], b["frames"]["cosmic_rays"]):
        da, db = _data(tmp_path / "a", name), _data(tmp_path / "b", name)
        hit = np.zeros(da.shape, bool)
        for h in hits:
            hit[tuple(np.array(h)[:, ::-1].T)] = True
        assert np.array_equal(da[~hit], db[~hit]) and np.all(db[hit] >= da[hit])


def test_doughnut_stars_have_a_dark_centre_and_the_truth_flux(tmp_path):
    """A defocused star through an obstructed pupil: a ring of the requested outer diameter,
    dark in the middle, whose aperture sums follow the doughnut's enclosed fraction (the floor's)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    from reduce.simulations.profiles import doughnut_enclosed, doughnut_profile

    truth = simulate_night(tmp_path / "n", seed=3, n_images=3, size=200, n_stars=6,
                           calibration=False, psf="doughnut", fwhm=14.0, obstruction=0.4)
    p, fr, st = truth["parameters"], truth["frames"], truth["stars"]
    assert p["psf"] == {"kind": "doughnut", "diameter": 14.0, "obstruction": 0.4}
    assert p["conditions"] == {"fwhm": 14.0, "psf": "doughnut"}
    assert fr["fwhm"] == [14.0] * 3 and all(2.5 <= s <= 3.0 for s in fr["seeing"])
    assert not any(st["saturated"]) and 0.3 * p["saturation"] < max(st["peak_adu"]) < 0.7 * p["saturation"]
    x, y = positions(truth)
    t = truth["target"]
    for i, name in enumerate(fr["file"]):
        frame = _data(tmp_path / "n", name) - fr["sky"][i]
        ix, iy = int(round(x[t, i])), int(round(y[t, i]))
        cut = frame[iy - 9:iy + 10, ix - 9:ix + 10]
        yy, xx = np.mgrid[-9:10, -9:10] + np.array([iy - y[t, i], ix - x[t, i]])[:, None, None]
        r = np.hypot(xx, yy)
        centre, ring = cut[r < 1.0].mean(), cut[(r > 4.5) & (r < 6.0)].mean()
        assert centre < 0.5 * ring  # a clearly dark centre
        assert cut[r > 7.0 + 3].max() < 0.1 * ring  # nothing beyond the ring and its blur
        expected = st["flux"][t] * st["signal"][t][i] * fr["transparency"][i] * fr["extinction"][i]
        for radius in (5.0, 7.0, 12.0):
            got = aperture_photometry(frame, CircularAperture((x[t, i], y[t, i]), radius))["aperture_sum"][0]
            frac = doughnut_enclosed(radius, 14.0, 0.4, fr["seeing"][i])
            assert got * p["gain"] == pytest.approx(expected * frac, rel=0.02), radius
    # the profile is normalised, and the floor uses its enclosed fraction, not a Moffat's
    rr = np.linspace(0, 20, 2001)
    assert np.trapezoid(2 * np.pi * rr * doughnut_profile(rr, 14.0, 0.4, 2.7), rr) == pytest.approx(1, abs=1e-3)
    moffat = dict(truth, parameters={k: v for k, v in p.items() if k != "psf"})
    # a 14 px ring puts more light within 5 px than a Moffat of FWHM 14 px does: the floor knows
    assert noise_floor(truth, 5.0) < 0.8 * noise_floor(moffat, 5.0)
    assert noise_floor(truth, 12.0) == pytest.approx(noise_floor(moffat, 12.0), rel=0.2)


def test_passing_clouds_dim_the_stars_and_raise_the_sky(tmp_path):
    """Transparency dips with the sky rising, as truth says, measured on the frames; the floor
    (per-frame transparency and sky) still matches the measured scatter."""
    from photutils.aperture import CircularAperture, aperture_photometry

    truth = simulate_night(tmp_path / "n", seed=8, n_images=40, size=160, n_stars=16,
                           calibration=False, clouds=2)
    p, fr, st, t = truth["parameters"], truth["frames"], truth["stars"], truth["target"]
    assert p["conditions"] == {"clouds": 2} and len(p["clouds"]) == 2
    for c in p["clouds"]:
        assert 10 <= c["duration_min"] <= 25 and 0.3 <= c["transparency"] <= 0.8
        assert 1.5 <= c["sky_factor"] <= 4 and truth["time"][0] <= c["time"] <= truth["time"][-1]
    dim, bright = np.array(fr["cloud_transparency"]), np.array(fr["cloud_sky"])
    assert dim.min() < 0.85 and bright.max() > 1.3 and np.all(dim <= 1) and np.all(bright >= 1)
    assert np.all(np.abs(np.diff(dim)) < 0.35)  # smooth: no jump from one frame to the next
    clear, cloudy = int(np.argmax(dim)), int(np.argmin(dim))
    x, y = positions(truth)
    r = 2.5 * float(np.median(fr["fwhm"]))
    measured = {}
    for i in (clear, cloudy):
        frame = _data(tmp_path / "n", fr["file"][i])
        sky = np.median(frame)
        assert sky == pytest.approx(fr["sky"][i], rel=0.05)
        measured[i] = aperture_photometry(frame - sky, CircularAperture((x[t, i], y[t, i]), r))["aperture_sum"][0]
        measured[i] /= st["signal"][t][i] * fr["extinction"][i]
    ratio = measured[cloudy] / measured[clear]
    assert ratio == pytest.approx(fr["transparency"][cloudy] / fr["transparency"][clear], rel=0.03)
    assert fr["sky"][cloudy] / fr["sky"][clear] == pytest.approx(bright[cloudy] / bright[clear], rel=0.15)
    rms, _ = _measured_rms(tmp_path / "n", truth, r)
    assert 0.7 < rms / noise_floor(truth, r) < 1.35


def _lattice_medians(frame, pattern):
    """Median of each channel's pixels {'R', 'G1', 'G2', 'B'} of a raw colour frame."""
    out, greens = {}, iter(("G1", "G2"))
    for k, c in enumerate(pattern):
        out[c if c != "G" else next(greens)] = np.median(frame[k // 2::2, k % 2::2])
    return out


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_bayer_mosaic_sub_lattices_differ_as_truth_says(tmp_path, pattern):
    """Sky, flats and each star are seen through the pattern's channels with truth's weights."""
    truth = simulate_night(tmp_path / "n", seed=2, n_images=1, size=128, n_stars=6, bayer=pattern,
                           n_bias=1, n_darks=1, n_flats=1)
    p, st = truth["parameters"], truth["stars"]
    b = p["bayer"]
    assert b["pattern"] == pattern and p["conditions"] == {"bayer": pattern}
    for name in truth["frames"]["file"] + truth["calibration"]["flat"]:
        h = fits.getheader(tmp_path / "n" / name)
        assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == (pattern, 0, 0)
    bias = _data(tmp_path / "n", truth["calibration"]["bias"][0])
    for name, w in ((truth["frames"]["file"][0], b["sky_weights"]),
                    (truth["calibration"]["flat"][0], b["flat_weights"])):
        m = _lattice_medians(_data(tmp_path / "n", name) - bias, pattern)
        assert m["G1"] == pytest.approx(m["G2"], rel=0.03)
        assert m["R"] / m["G1"] == pytest.approx(w[0] / w[1], rel=0.05), name
        assert m["B"] / m["G1"] == pytest.approx(w[2] / w[1], rel=0.05), name
    weights = np.array(st["channel_weights"])
    assert weights.shape == (6, 3) and np.all(weights[:, 1] == 1.0) and np.ptp(weights[:, 0]) > 0.05
    frame = _data(tmp_path / "n", truth["frames"]["file"][0])
    x, y = positions(truth)
    for k in np.argsort(st["flux"])[::-1][:3]:  # the brightest stars' channel sums
        ix, iy = int(round(x[k, 0])), int(round(y[k, 0]))
        lo_x, lo_y = ix - ix % 2 - 10, iy - iy % 2 - 10  # whole 2x2 cells
        cut = frame[lo_y:lo_y + 22, lo_x:lo_x + 22]
        ring = frame[lo_y - 10:lo_y + 32, lo_x - 10:lo_x + 32]
        sky = _lattice_medians(ring, pattern)
        sums = {}
        for c, key in zip(pattern, ("0", "1", "2", "3")):
            j = int(key)
            name = c if c != "G" else ("G1" if "G1" not in sums else "G2")
            sums[name] = (cut[j // 2::2, j % 2::2] - sky[name]).sum()
        g = (sums["G1"] + sums["G2"]) / 2
        assert sums["R"] / g == pytest.approx(weights[k, 0], rel=0.05), k
        assert sums["B"] / g == pytest.approx(weights[k, 2], rel=0.05), k


def test_noise_floor_on_2x2_superpixels_of_a_colour_night(tmp_path):
    """Measured on 2x2 superpixels (or raw pixels) of a mosaic night, the scatter is the floor's."""
    truth = simulate_night(tmp_path / "n", seed=5, n_images=40, size=160, n_stars=16,
                           calibration=False, bayer="GRBG")
    b = truth["parameters"]["bayer"]
    cfa = np.array(["RGB".index(c) for c in b["pattern"]]).reshape(2, 2)
    sky_w = np.array(b["sky_weights"])[np.tile(cfa, (80, 80))]
    r_sp = float(np.median(truth["frames"]["fwhm"]))  # 2 FWHM in raw pixels
    rms, _ = _measured_rms(tmp_path / "n", truth, r_sp, sky_weights=sky_w, superpixel=2)
    floor = noise_floor(truth, r_sp, superpixel=2)
    assert 0.7 < rms / floor < 1.35, (rms, floor)
    assert floor == pytest.approx(noise_floor(truth, 2 * r_sp))
    assert noise_floor(truth, r_sp, superpixel=2, annulus_px=50) == pytest.approx(
        noise_floor(truth, 2 * r_sp, annulus_px=200))
    rms_raw, _ = _measured_rms(tmp_path / "n", truth, 2 * r_sp, sky_weights=sky_w)
    assert 0.7 < rms_raw / noise_floor(truth, 2 * r_sp) < 1.35
    mono = dict(truth, parameters={k: v for k, v in truth["parameters"].items() if k != "bayer"})
    assert floor > 1.1 * noise_floor(mono, r_sp, superpixel=2)  # the filters cost light
    with pytest.raises(ValueError, match="superpixel"):
        noise_floor(truth, 3.0, superpixel=0)


def test_conditions_combine_into_a_smart_telescope_night(tmp_path):
    """Uncalibrated colour CMOS with hot pixels, hits and an alt-az re-centring jump of 30 px."""
    truth = simulate_night(tmp_path / "n", seed=4, n_images=4, size=240, n_stars=10, exptime=10.0,
                           uncalibrated=True, hot_pixels=1e-3, cosmic_rays=20, bayer="GRBG", jump=30.0)
    p, fr = truth["parameters"], truth["frames"]
    assert p["conditions"] == {"jump": 30.0, "uncalibrated": True, "hot_pixels": 1e-3,
                               "cosmic_rays": 20, "bayer": "GRBG"}
    assert not list((tmp_path / "n" / "calibration").iterdir())
    assert np.hypot(fr["dx"][2] - fr["dx"][1], fr["dy"][2] - fr["dy"][1]) > 25
    frame = _data(tmp_path / "n", fr["file"][3])
    assert fits.getheader(tmp_path / "n" / fr["file"][3])["BAYERPAT"] == "GRBG"
    hx, hy, rate = max(p["hot_pixels"], key=lambda h: h[2])
    assert frame[hy, hx] > p["bias_level"] + 0.5 * rate * p["exptime"] / p["gain"]
    peaks = np.array([max(frame[yy, xx] for xx, yy in hit) for hit in fr["cosmic_rays"][3]])
    assert len(peaks) == 20 and np.mean(peaks > np.median(frame) + 40) >= 0.9
    assert noise_floor(truth, 3.0, superpixel=2) > 0


def test_doughnut_clouds_and_hits_in_a_ccd_window(tmp_path):
    """12 px rings in a 521x64 CCD window (the issue's defocused night), with a cloud and hits,
    from simulate_observation too."""
    time = 2460385.55 + np.arange(6) * 20 / 86400
    truth = simulate_observation(time, np.ones(6), tmp_path / "n", seed=1, size=(521, 64),
                                 n_stars=3, exptime=10.0, psf="doughnut", clouds=1, cosmic_rays=10,
                                 n_bias=1, n_darks=1, n_flats=1)
    p = truth["parameters"]
    assert p["psf"]["kind"] == "doughnut" and len(p["clouds"]) == 1 and p["cosmic_rays"] == 10
    x, y = positions(truth)
    assert np.all((y > 12) & (y < 51)) and not any(truth["stars"]["saturated"])
    d = np.hypot(x[:, None, 0] - x[None, :, 0], y[:, None, 0] - y[None, :, 0])
    assert np.sort(d, axis=1)[:, 1].min() > 20  # the rings stay apart
    assert 0 < noise_floor(truth, 9.0) < 0.01


def test_cli_options_of_the_real_camera_conditions(tmp_path, capsys):
    from reduce.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path / "n"), "--n-images", "2", "--size", "128", "--n-stars", "5",
              "--uncalibrated", "--hot-pixels", "1e-3", "--cosmic-rays", "5", "--psf", "doughnut",
              "--obstruction", "0.35", "--clouds", "1", "--bayer", "RGGB"])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    assert "Conditions: uncalibrated=True, hot_pixels=0.001, cosmic_rays=5, psf=doughnut" in out.out
    c = load_truth(tmp_path / "n")["parameters"]["conditions"]
    assert c == {"uncalibrated": True, "hot_pixels": 1e-3, "cosmic_rays": 5, "psf": "doughnut",
                 "obstruction": 0.35, "clouds": 1, "bayer": "RGGB"}
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path / "x"), "--psf", "doughnut", "--fwhm", "4"])
    assert exc.value.code == 2 and "--fwhm is the ring's outer diameter" in capsys.readouterr().err
