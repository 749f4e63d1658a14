"""Issue 18 item 6: colour (CFA, Bayer) sensors are measured on 2x2 superpixels by default, or on
one channel when asked; positions stay in the file's pixels; the products and the AAVSO export
say what was measured.

The smart-telescope night is the simulator's (``bayer='GRBG'``: R 0.6, G 1, B 0.5 tinted by each
star's colour, a reddish sky, white flats), scored as ``tests/test_hostile_nights.py`` scores its
nights, against ``noise_floor(..., superpixel=2)``. The undersampled night of uniform colour is a
simulated night whose light frames are multiplied by a 2x2 channel response (R 0.8, G 1, B 0.7)
and carry ``BAYERPAT`` (its floor is the unmultiplied night's: the weights cost ~1 % of it).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.algorithms import bayer as cfa
from reduce.blocks import BayerBin, Trim
from reduce.blocks.bayer import file_to_grid, grid_to_file
from reduce.model.image import Image, PixelFlag
from reduce.simulations import noise_floor, simulate_night
from reduce.simulations.truth import positions
from tests.cli.test_run import DEFAULT, outputs, run_cli
from tests.test_hostile_nights import _frame_index, annulus_pixels, measured_frames

PANOPTES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "panoptes_kic8462852"
RESPONSE = {"R": 0.8, "G": 1.0, "B": 0.7}


def mosaic_night(dest: Path, pattern="GRBG", keyword=True, **options) -> dict:
    """A simulated night (no calibration frames) recorded through a 2x2 colour-filter pattern."""
    truth = simulate_night(dest, signal="sine", calibration=False, **options)
    for name in truth["frames"]["file"]:
        with fits.open(dest / name, mode="update") as hdul:
            data = hdul[0].data.astype(float)
            for i, c in enumerate(pattern):
                data[i // 2::2, i % 2::2] *= RESPONSE[c]
            hdul[0].data = np.round(data).astype(hdul[0].data.dtype)
            if keyword:
                hdul[0].header["BAYERPAT"] = pattern
    return truth


def score(out: Path, truth: dict) -> dict:
    """Frames measured and residual RMS / noise floor (on superpixels when the simulator made a
    mosaic, else at the radius in file pixels: CFABIN x measured)."""
    files = outputs(out)
    table = Table.read(files[".csv"])
    prov = json.loads(files[".json"].read_text())
    header = fits.getheader(files[".fits"])
    flux = np.asarray(table["flux"], float)
    ok = (np.asarray(table["flag"]) == 0) & np.isfinite(flux)
    index = _frame_index(table, truth)
    resid = flux[ok] / np.asarray(truth["dflux"])[index[ok]]
    resid /= np.median(resid)
    k = int(header.get("CFABIN", 1))
    fwhm = float(np.nanmedian(np.asarray(table["fwhm"], float)))
    annulus = annulus_pixels(truth, fwhm)  # raw pixels, the table's FWHM being in file pixels
    kept = measured_frames(truth, index[ok])
    if "bayer" in truth["parameters"]:
        floor = noise_floor(kept, prov["aperture"]["radius_px"], annulus_px=annulus / k ** 2, superpixel=k)
    else:
        floor = noise_floor(kept, prov["aperture"]["radius_px"] * k, annulus_px=annulus)
    return {"table": table, "prov": prov, "header": header, "measured": int(ok.sum()),
            "ratio": float(np.std(resid)) / floor, "index": index, "fwhm": fwhm}


# ---- the pattern, from headers ----

@pytest.mark.parametrize("cards, expected", [
    ({"BAYERPAT": "GRBG"}, ("GRBG", "BAYERPAT")),
    ({"COLORTYP": "rggb"}, ("RGGB", "COLORTYP")),
    ({"FILTER": "RGGB    "}, ("RGGB", "FILTER")),
    ({"BAYERPAT": "RGGB", "XBAYROFF": 1}, ("GRBG", "BAYERPAT")),
    ({"BAYERPAT": "RGGB", "YBAYROFF": 1}, ("GBRG", "BAYERPAT")),
    ({"FILTER": "V"}, None),
    ({}, None),
])
def test_pattern_from_header(cards, expected):
    assert cfa.pattern_from_header(fits.Header(cards)) == expected


def test_panoptes_dslr_frames_are_recognised_as_rggb_and_binned():
    if not PANOPTES.is_dir():
        pytest.skip(f"{PANOPTES} is absent (the shared real frames)")
    from reduce.io.fitsimage import FITSImage

    for name in ("unsolved.fits", "solved.fits.fz"):
        image = FITSImage(PANOPTES / name)
        raw = image.data.astype(np.float64).copy()
        BayerBin().run(image)
        info = image.computed["cfa"]
        assert (info["pattern"], info["source"], info["mode"]) == ("RGGB", "FILTER", "superpixel")
        assert image.data.shape == (350, 350)
        assert image.data.sum(dtype=np.float64) == pytest.approx(raw.sum(), rel=1e-6)


def test_panoptes_wcs_maps_superpixels_after_an_odd_trim():
    if not PANOPTES.is_dir():
        pytest.skip(f"{PANOPTES} is absent (the shared real frames)")
    import warnings

    from reduce.blocks.bayer import grid_to_wcs, wcs_to_grid
    from reduce.io.fitsimage import FITSImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = FITSImage(PANOPTES / "solved.fits.fz")
        file_wcs = image.wcs
        Trim(margin=3).run(image)
        BayerBin().run(image)
        fx, fy = grid_to_file(image, 10.0, 20.0)
        assert (fx, fy) == (24.5, 44.5)  # cells start at file pixel 4: the pattern's phase
        sky = file_wcs.pixel_to_world(fx, fy)
        assert sky.separation(image.wcs.pixel_to_world(*grid_to_wcs(image, 10.0, 20.0))).arcsec < 1e-6
        gx, gy = wcs_to_grid(image, *image.wcs.world_to_pixel(sky))
    assert (gx, gy) == (pytest.approx(10.0, abs=1e-5), pytest.approx(20.0, abs=1e-5))


# ---- the block ----

def _frame(pattern="RGGB", shape=(8, 10)):
    data = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    return Image(data=data.copy(), header=fits.Header({"BAYERPAT": pattern}), read_noise=5.0), data


def test_superpixel_is_the_sum_of_each_cell_and_saturation_follows():
    image, raw = _frame()
    mask = np.zeros(raw.shape, np.uint8)
    mask[3, 5] = PixelFlag.SATURATED  # one raw pixel of the cell (x 4-5, y 2-3)
    image.set_mask(mask)
    BayerBin().run(image)
    assert image.data.shape == (4, 5)
    assert image.data[1, 2] == raw[2:4, 4:6].sum()
    sat = image.bad_pixels(PixelFlag.SATURATED)
    assert sat[1, 2] and sat.sum() == 1
    assert image.read_noise == pytest.approx(10.0)  # 4 pixels' read noise


def test_green_channel_sums_both_greens_and_red_keeps_one_pixel():
    image, raw = _frame("GRBG")
    BayerBin(channel="G").run(image)
    assert image.data[0, 0] == raw[0, 0] + raw[1, 1]
    image, raw = _frame("GRBG")
    BayerBin(channel="r").run(image)
    assert image.data[1, 1] == raw[2, 3] and image.computed["cfa"]["mode"] == "R"


def test_odd_trim_keeps_the_patterns_phase():
    image, raw = _frame("RGGB")
    Trim(margin=1).run(image)  # trimmed pixel 0 is file pixel 1: a green of the first row
    BayerBin(channel="R").run(image)
    assert image.computed["cfa"]["start"] == [2, 2]
    assert image.data[0, 0] == raw[2, 2]  # a red pixel, not the green at file pixel (1, 1)
    assert tuple(grid_to_file(image, 0, 0)) == (2.5, 2.5)
    assert tuple(file_to_grid(image, 2.5, 2.5)) == (0.0, 0.0)


def test_channel_balance_recovers_the_responses_of_undersampled_stars():
    """30 stars of 1.5 px FWHM (integrated over pixels) at random positions through GRBG with R
    0.6, B 0.5: the red and blue factors come back within 3 %, whatever pixel each star fell on."""
    from scipy.special import erf

    rng = np.random.default_rng(4)
    h = w = 240
    xy = rng.uniform(12, 228, (30, 2))
    sigma = 1.5 / 2.3548
    edges = np.arange(w + 1) - 0.5
    image = np.full((h, w), 100.0)
    for x, y in xy:
        fx = np.diff(0.5 * erf((edges - x) / (np.sqrt(2) * sigma)))
        fy = np.diff(0.5 * erf((edges - y) / (np.sqrt(2) * sigma)))
        image += 5e4 * np.outer(fy, fx)
    response = {"R": 0.6, "G": 1.0, "B": 0.5}
    for k, c in enumerate("GRBG"):
        image[k // 2::2, k % 2::2] *= response[c]
    image += rng.normal(0, 3, image.shape)
    balance = cfa.channel_balance(image, xy + rng.normal(0, 0.1, xy.shape), "GRBG", 0, 0)
    assert balance["R"] == pytest.approx(1 / 0.6, rel=0.03)
    assert balance["B"] == pytest.approx(1 / 0.5, rel=0.03)


def test_colour_flats_are_normalised_per_colour():
    """A master flat of white light through GRBG (R 0.6, B 0.5) with 10 % vignetting keeps the
    vignetting but not the colours: each sub-lattice has median 1."""
    from reduce.blocks import Calibration

    yy, xx = np.mgrid[0:64, 0:64]
    vignetting = 1 - 0.1 * ((xx - 32) ** 2 + (yy - 32) ** 2) / 32 ** 2
    response = np.ones((64, 64))
    for k, c in enumerate("GRBG"):
        response[k // 2::2, k % 2::2] = {"R": 0.6, "G": 1.0, "B": 0.5}[c]
    header = fits.Header({"BAYERPAT": "GRBG", "EXPTIME": 1.0})
    flats = [Image(data=(20000 * vignetting * response).astype(np.float32), header=header, exposure=1.0)
             for _ in range(3)]
    cal = Calibration(flats=flats)
    cal.build()
    for dy in (0, 1):
        for dx in (0, 1):
            cell = cal.master_flat[dy::2, dx::2]
            assert np.median(cell) == pytest.approx(1.0, abs=1e-6)
    assert cal.master_flat[32, 32] / cal.master_flat[0, 0] == pytest.approx(1 / 0.8, rel=0.01)


def test_monochrome_frames_pass_through_unchanged():
    image = Image(data=np.ones((6, 6), np.float32), header=fits.Header({"FILTER": "V"}))
    before = image.data
    BayerBin().run(image)
    assert image.data is before and "cfa" not in image.computed


def test_config_bayer_keys(tmp_path):
    from reduce.config import load_config
    from reduce.model.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("default:\n  bayer: rggb\n  bayer_channel: g\n")
    inst = load_config(path).default
    assert (inst.bayer, inst.bayer_channel) == ("RGGB", "G")
    image = Image(data=np.ones((4, 4), np.float32), header=fits.Header(), instrument=inst)
    BayerBin().run(image)
    assert image.computed["cfa"]["source"] == "config bayer" and image.data.shape == (2, 2)
    path.write_text("default:\n  bayer: none\n")
    image = Image(data=np.ones((4, 4), np.float32), header=fits.Header({"BAYERPAT": "RGGB"}),
                  instrument=load_config(path).default)
    BayerBin().run(image)
    assert image.data.shape == (4, 4)
    path.write_text("default:\n  bayer: RGBG\n")
    with pytest.raises(ConfigError, match="RGGB"):
        load_config(path)


def test_aavso_band_of_colour_frames():
    from reduce.lightcurve.exports import cfa_band
    from reduce.model.errors import ReduceError

    image, _ = _frame()
    assert cfa_band(image) is None  # not binned yet: nothing says colour
    BayerBin(channel="G").run(image)
    assert cfa_band(image) == "TG"
    image, _ = _frame()
    BayerBin().run(image)
    with pytest.raises(ReduceError, match="bayer_channel: G"):
        cfa_band(image)


# ---- whole nights ----

@pytest.fixture(scope="module")
def smart_telescope_night(tmp_path_factory):
    """A colour smart-telescope night: GRBG mosaic, 10 s, FWHM ~2 raw px, a 30 px alt-az jump."""
    dest = tmp_path_factory.mktemp("cfa") / "night"
    return dest, simulate_night(dest, n_images=40, size=300, fwhm=2.0, jump=30.0, seed=3, bayer="GRBG",
                                exptime=10.0, signal="sine")


def test_colour_night_reduces_by_default_on_superpixels_at_the_floor(smart_telescope_night, tmp_path):
    night, truth = smart_telescope_night
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night, "-o", out, "-q") == 0
    s = score(out, truth)
    n = truth["parameters"]["n_images"]
    detail = f"{s['measured']}/{n} measured, {s['ratio']:.3f} x floor, flagged {s['prov'].get('flagged')}"
    assert s["measured"] >= 0.99 * n, detail
    assert s["ratio"] <= 1.10, detail
    assert not np.any(np.asarray(s["table"]["flag"]) & 32), detail  # no CENTROID_RAN_AWAY
    h = s["header"]
    assert (h["BAYERPAT"], h["CFAMODE"], h["CFABIN"]) == ("GRBG", "superpixel", 2)
    assert s["prov"]["extra"]["colour_sensor"]["pattern"] == "GRBG"
    # positions in the file's pixels: the table's x, y follow the truth within a raw pixel
    x, y = positions(truth)
    t = truth["target"]
    dx = np.asarray(s["table"]["x"], float) - x[t, s["index"]]
    dy = np.asarray(s["table"]["y"], float) - y[t, s["index"]]
    assert np.nanmax(np.abs(dx)) < 1.0 and np.nanmax(np.abs(dy)) < 1.0
    assert 1.5 < s["fwhm"] < 3.0  # in raw pixels, as the simulator drew them


def test_undersampled_colour_night_without_flats_is_balanced_to_its_floor(tmp_path):
    """FWHM 1.5 raw px, no calibration frames: a star's plain superpixel sum would change with
    the colour pixel it falls on (1.70x the floor); the red and blue pixels are weighed to the
    green ones' response, measured on the reference's stars."""
    night, out = tmp_path / "night", tmp_path / "out"
    truth = mosaic_night(night, n_images=50, size=300, fwhm=1.5, jump=30.0, seed=11)
    assert run_cli("run", DEFAULT, night, "-o", out, "-q") == 0
    s = score(out, truth)
    balance = s["prov"]["extra"]["colour_sensor"]["balance"]
    assert balance["R"] == pytest.approx(1 / RESPONSE["R"], rel=0.05)
    assert balance["B"] == pytest.approx(1 / RESPONSE["B"], rel=0.05)
    assert s["measured"] == 50 and s["ratio"] <= 1.10, f"{s['ratio']:.3f} x floor"


def test_stars_of_every_colour_are_corrected_for_their_place_in_the_cell(tmp_path):
    """The simulator's stars have their own colours (R and B responses spread by +-25 %): at 2 px
    FWHM without flats, each star's superpixel sum moves with its place in the 2x2 cell by its own
    amount (1.12x the floor uncorrected); CFAPhaseCorrection brings it to the floor."""
    night, out = tmp_path / "night", tmp_path / "out"
    truth = simulate_night(night, n_images=40, size=300, fwhm=2.0, jump=30.0, seed=5, bayer="GRBG",
                           exptime=10.0, calibration=False, signal="sine")
    assert run_cli("run", DEFAULT, night, "-o", out, "-q") == 0
    s = score(out, truth)
    assert s["measured"] == 40 and s["ratio"] <= 1.10, f"{s['ratio']:.3f} x floor"


def test_phase_modulation_and_the_greens_split():
    """The predicted factor is 1 on average over the cell, follows a red star's red pixels, and
    the greens' ratio gives the split back whatever the stars' colours."""
    red = (1, 0)  # GRBG: red at x odd, y even
    t = (np.arange(8) + 0.5) / 4
    gx, gy = (v.ravel() for v in np.meshgrid(t, t))
    colours = np.tile([[1.6, 0.5]], (gx.size, 1))
    m = cfa.phase_modulation(gx, gy, colours, (1.0, 1.0, 1.0), (0.05, 0.05), red)
    assert np.mean(m) == pytest.approx(1.0, abs=1e-9)
    on_red = cfa.phase_modulation([1.0], [0.0], colours[:1], (1.0, 1.0, 1.0), (0.05, 0.05), red)[0]
    assert on_red > 1.0
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 50, 40), rng.uniform(0, 50, 40)
    p = 0.5 + 0.04 * np.cos(np.pi * (x - red[0]))
    q = 0.5 + 0.03 * np.cos(np.pi * (y - red[1]))
    beside, below = (1 - p) * q * 1e4, p * (1 - q) * 1e4
    assert cfa.green_slopes(beside, below, x, y, red) == (pytest.approx(0.04, abs=0.004),
                                                          pytest.approx(0.03, abs=0.004))


def test_pixel_target_on_a_colour_night_is_in_file_pixels(smart_telescope_night, tmp_path):
    night, truth = smart_telescope_night
    x, y = positions(truth)
    star = int(np.argsort(truth["stars"]["flux"])[-3])  # not the default target
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night, "-o", out, "-q", "--target",
                   f"{x[star, 0]:.1f},{y[star, 0]:.1f}") in (0, 3)
    files = outputs(out)
    prov = json.loads(files[".json"].read_text())
    assert prov["target"]["snapped"] is not None
    table = Table.read(files[".csv"])
    index = _frame_index(table, truth)
    assert np.nanmedian(np.hypot(np.asarray(table["x"]) - x[star, index],
                                 np.asarray(table["y"]) - y[star, index])) < 0.5


def test_figure_draws_fwhm_and_shifts_in_file_pixels_as_the_table(smart_telescope_night, tmp_path,
                                                                   monkeypatch):
    """The light-curve figure's FWHM and shift panels follow the table (file pixels), not the 2x2
    superpixels the frames are measured on."""
    from reduce.figures import helper

    night, truth = smart_telescope_night
    jobs, submit = [], helper.submit
    monkeypatch.setattr(helper, "submit", lambda batch, *a, **k: submit(jobs.extend(batch) or batch, *a, **k))
    out = tmp_path / "out"
    assert run_cli("run", DEFAULT, night, "-o", out, "-q") == 0
    fluxes = next(j for j in jobs if j.kind == "lightcurve").kwargs["fluxes"]
    table = Table.read(outputs(out)[".csv"])
    idx = np.asarray(fluxes.data["frame_index"], int)
    for name in ("fwhm", "dx", "dy"):
        np.testing.assert_allclose(fluxes.get(name), np.asarray(table[name], float)[idx], err_msg=name)
    assert 1.5 < np.nanmedian(fluxes.get("fwhm")) < 3.0  # raw pixels (superpixels: ~1.1)
    assert np.ptp(fluxes.get("dx")) > 20  # the 30 px jump, in file pixels


def test_green_channel_from_the_config_and_its_aavso_band(smart_telescope_night, tmp_path):
    night, truth = smart_telescope_night
    config = tmp_path / "c.yaml"
    config.write_text("default:\n  bayer_channel: G\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(Path(DEFAULT).read_text().replace(
        "outputs: {csv: true", "outputs: {aavso: {obscode: XYZ}, csv: true"))
    out = tmp_path / "out"
    assert run_cli("run", recipe, night, "-o", out, "-q", "--config", config) == 0
    files = outputs(out)
    assert fits.getheader(files[".fits"])["CFAMODE"] == "G"
    lines = (out / (files[".csv"].stem + "_aavso.txt")).read_text().splitlines()
    assert lines[-1].split(",")[4] == "TG"


def test_superpixels_refuse_an_aavso_band(smart_telescope_night, tmp_path):
    night, _ = smart_telescope_night
    recipe = tmp_path / "r.yaml"
    recipe.write_text(Path(DEFAULT).read_text().replace(
        "outputs: {csv: true", "outputs: {aavso: {obscode: XYZ}, csv: true"))
    summary = tmp_path / "s.json"
    assert run_cli("run", recipe, night, "-o", tmp_path / "out", "-q", "--summary-json", summary) != 0
    assert "bayer_channel: G" in summary.read_text()


def test_a_mosaic_without_keyword_is_warned_about(tmp_path):
    night = tmp_path / "night"
    truth = mosaic_night(night, pattern="RGGB", keyword=False, n_images=3, size=200, n_stars=25,
                         fwhm=2.5, seed=5)
    summary = tmp_path / "s.json"
    run_cli("run", DEFAULT, night, "-o", tmp_path / "out", "-q", "--summary-json", summary)
    text = summary.read_text()
    assert "looks_like_colour_sensor" in text and "RGGB or BGGR" in text and "bayer:" in text
    assert truth["parameters"]["n_images"] == 3
