"""Fluxes: autodiff/diff on synthetic nights with a known truth, clipping, binning, tables."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from reduce.model.flags import Flag
from reduce import Fluxes
from reduce.io.atomic import OutputError

from .test_ensemble import RADII, floor, synthetic


def good_comps(fl, truth):
    bad = {0, truth["saturated"], *truth["variables"]}
    return [i for i in range(fl.shape[1]) if i not in bad]


@pytest.mark.parametrize("signal,seed", [("transit", 11), ("sine", 12)])
def test_autodiff_recovers_injected_signal_at_the_noise_floor(signal, seed):
    fl, truth = synthetic(seed, signal=signal)
    d = fl.autodiff()
    expected = truth["truth"] / np.median(truth["truth"])
    rms = np.std(d.flux - expected)
    best_floor = floor(truth["rel"], good_comps(fl, truth)).min()
    assert rms < 1.1 * best_floor, (rms, best_floor)
    # the propagated errors describe the actual scatter
    assert np.median(d.error) == pytest.approx(rms, rel=0.1)
    # the comparison set: never the target nor the saturated star, variables dropped
    assert 0 not in d.comparisons and truth["saturated"] not in d.comparisons
    assert not set(truth["variables"]) & set(d.comparisons)
    assert set(truth["variables"]) <= set(d.meta["rejected_comparisons"])
    assert sum(d.weights) == pytest.approx(1.0)
    assert d.meta["aperture_radius"] == RADII[d.meta["aperture"]]
    assert d.raw is not d and d.raw.shape == fl.shape
    assert repr(d).startswith("<Fluxes differential")


def test_autodiff_picks_the_least_noisy_aperture():
    # sky noise makes big apertures bad for faint stars; middle one (index 2) is best here,
    # make aperture 3 much cleaner by shrinking its sky noise: it must be chosen
    fl, truth = synthetic(13)
    rng = np.random.default_rng(0)
    noisy = fl.fluxes.copy()
    noisy[[0, 1, 2, 4]] *= 1 + rng.normal(0, 0.01, noisy[[0, 1, 2, 4]].shape)
    d = Fluxes(fl.time, noisy, fl.errors, fl.apertures, data=fl.data, meta=fl.meta).autodiff()
    assert d.aperture == 3
    assert np.argmin(d.meta["scatter"]) == 3


def test_autodiff_without_saturation_info_uses_the_saturated_star_and_does_worse():
    fl, truth = synthetic(14)
    d_ok = fl.autodiff()
    fl.meta.pop("saturation")
    d_bad = fl.autodiff()
    assert truth["saturated"] in d_bad.comparisons  # proves the saturation test is what excludes it
    assert truth["saturated"] not in d_ok.comparisons
    # passing the level explicitly works as well
    assert truth["saturated"] not in fl.autodiff(saturation=60000).comparisons


def test_autodiff_respects_exclude_max_comps_and_nan_frames():
    fl, truth = synthetic(15)
    fl.fluxes[:, :, 10] = np.nan  # a frame rejected upstream: all NaN
    fl.fluxes[:, 5, 20] = np.nan  # one star lost in one frame: cannot be a comparison
    d = fl.autodiff(max_comps=4, exclude=[2])
    assert len(d.comparisons) <= 4 and 2 not in d.comparisons and 5 not in d.comparisons
    assert np.isnan(d.flux[10]) and np.isfinite(d.flux[20])
    assert np.isfinite(d.flux).sum() == len(d) - 1


def test_autodiff_errors_are_clear():
    fl, _ = synthetic(16, n_frames=50)
    with pytest.raises(ValueError, match="max_comps"):
        fl.autodiff(max_comps=0)
    fl.fluxes[:, 0] = np.nan
    with pytest.raises(ValueError, match="target has no finite"):
        fl.autodiff()


def test_diff_with_explicit_comparisons_matches_hand_computation():
    fl, truth = synthetic(17, n_frames=200)
    d = fl.diff([2, 3], weights=[3, 1], aperture=1)
    assert d.aperture == 1 and d.comparisons == [2, 3] and d.weights == pytest.approx([0.75, 0.25])
    f = fl.fluxes[1]
    n = f / np.median(f, axis=-1, keepdims=True)
    hand = n[0] / (0.75 * n[2] + 0.25 * n[3])
    assert np.allclose(d.flux, hand / np.median(hand))
    # equal weights by default and automatic aperture choice
    d2 = fl.diff([2, 3, 5])
    assert d2.weights == pytest.approx([1 / 3] * 3)
    assert d2.aperture == int(np.argmin(d2.meta["scatter"]))
    with pytest.raises(ValueError, match="other than the target"):
        fl.diff([0, 2])
    with pytest.raises(ValueError, match="one per comparison"):
        fl.diff([2, 3], weights=[1])


def test_target_is_settable_and_checked():
    fl, _ = synthetic(18, n_frames=100)
    fl.target = 3
    assert fl.autodiff().target == 3 and 3 not in fl.autodiff().comparisons
    with pytest.raises(ValueError, match="out of range"):
        fl.target = 99


def test_per_frame_accessors():
    fl, _ = synthetic(19, n_frames=30)
    for name in ("fwhm", "sky", "airmass", "dx", "dy"):
        assert getattr(fl, name).shape == (30,)
    assert fl.x.shape == (14, 30) and fl.get("x").shape == (30,)
    assert np.array_equal(fl.get("bkg"), fl.sky)
    bare = Fluxes(fl.time, fl.fluxes)
    assert bare.fwhm is None and bare.get("sky") is None
    per_star_bkg = Fluxes(fl.time, fl.fluxes, target=2, data={"bkg": np.arange(14 * 30.).reshape(14, 30)})
    assert np.array_equal(per_star_bkg.sky, np.arange(60, 90))


def test_sigma_clipping_data_removes_exactly_the_outlier_frames():
    fl, _ = synthetic(20, n_frames=300)
    bad_sky, bad_fwhm = [17, 150], [42, 299]
    fl.data["sky"][bad_sky] += 300  # far above the 20 ADU drift + noise
    fl.data["fwhm"][bad_fwhm] = 9.0
    out = fl.sigma_clipping_data(bkg=5, fwhm=8)
    assert len(out) == 296
    removed = sorted(r["index"] for r in out.meta["rejected"])
    assert removed == sorted(bad_sky + bad_fwhm)
    assert all(r["flag"] & Flag.OUTLIER_REJECTED for r in out.meta["rejected"])
    reasons = {r["index"]: r["reason"] for r in out.meta["rejected"]}
    assert reasons[17].startswith("bkg outlier") and reasons[42].startswith("fwhm outlier")
    assert {r["file"] for r in out.meta["rejected"]} == {f"frame{i:04d}.fits" for i in removed}
    assert out.flux.shape[-1] == 296 and out.data["x"].shape == (14, 296)
    assert not np.isin(fl.time[removed], out.time).any()
    with pytest.raises(ValueError, match="no per-frame 'seeing'"):
        fl.sigma_clipping_data(seeing=3)
    with pytest.raises(ValueError, match="at least one"):
        fl.sigma_clipping_data()


def test_mask_after_autodiff_keeps_raw_aligned():
    fl, _ = synthetic(21, n_frames=100)
    d = fl.autodiff()
    keep = np.ones(100, bool)
    keep[5] = False
    m = d.mask(keep, reason="manual")
    assert len(m) == 99 and len(m.raw) == 99 and m.meta["rejected"][0]["reason"] == "manual"


def test_bin_with_and_without_error_estimation():
    time = np.array([0.0, 0.001, 0.002, 0.010, 0.011])
    flux = np.array([[1.0, 2.0, 3.0, 5.0, 7.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    error = np.full_like(flux, 0.2)
    fl = Fluxes(time, flux, error, data={"fwhm": np.array([2.0, 3.0, 4.0, 5.0, 6.0])},
                flags=[0, 1, 4, 0, 0], files=list("abcde"))
    b = fl.bin(0.005)
    assert np.allclose(b.time, [0.001, 0.0105])
    assert np.allclose(b.fluxes[0, 0], [2.0, 6.0]) and np.allclose(b.fwhm, [3.0, 5.5])
    assert np.allclose(b.errors[0, 0], [1 / np.sqrt(3), np.sqrt(2) / np.sqrt(2)])
    assert np.allclose(b.errors[0, 1], [0.0, 0.0])
    assert b.flags.tolist() == [5, 0] and b.files.tolist() == ["a", "d"]
    assert b.data["n_binned"].tolist() == [3, 2] and b.meta["binned"] == 0.005
    p = fl.bin(0.005, estimate_error=False)
    assert np.allclose(p.errors[0, 0], [0.2 / np.sqrt(3), 0.2 / np.sqrt(2)])


def test_to_table_and_save_round_trip(tmp_path):
    from reduce.lightcurve.schema import LIGHTCURVE_COLUMNS, LIGHTCURVE_SCHEMA

    fl, _ = synthetic(22, n_frames=80)
    d = fl.autodiff()
    table = d.to_table()
    assert table.colnames == list(LIGHTCURVE_COLUMNS)  # the schema of reduce run, in its order
    assert table.meta["comparisons"] == d.comparisons and table.meta["aperture"] == d.aperture
    assert table.meta["schema"] == LIGHTCURVE_SCHEMA
    assert np.all(np.isnan(table["bjd_tdb"]))  # no target coordinates: not computed, never invented
    csv = d.save(tmp_path / "lc.csv")
    back = Table.read(csv)  # plain CSV: the default reader works
    assert np.allclose(back["time"], d.time, rtol=0, atol=1e-9)
    assert np.allclose(back["flux"], d.flux) and list(back["file"]) == list(d.files)
    ecsv = Table.read(d.save(tmp_path / "lc.ecsv"))
    assert ecsv.meta["weights"] == pytest.approx(d.weights) and str(ecsv["time"].unit) == "d"
    path = d.save(tmp_path / "lc.fits", header={"OBJECT": "WASP-12", "FILTER": "V"})
    with fits.open(path) as hdul:
        lc = Table.read(hdul["LIGHTCURVE"])
        assert np.array_equal(lc["time"], d.time) and np.allclose(lc["flux"], d.flux)
        assert hdul["LIGHTCURVE"].header["APERTURE"] == d.aperture
        assert hdul[0].header["OBJECT"] == "WASP-12" and hdul[0].header["APINDEX"] == d.aperture
        assert hdul["FLUXES"].data.shape == fl.shape and hdul["FLUXES"].header["BUNIT"] == "adu"
        assert np.allclose(hdul["FLUXES"].data, fl.fluxes, rtol=1e-6)  # the raw fluxes
        assert np.allclose(hdul["WEIGHTS"].data, d.meta["weights_all"])
        stars = Table.read(hdul["STARS"])
        assert list(stars["star"][stars["comparison"]]) == sorted(d.comparisons)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.csv", "lc.ecsv", "lc.fits"]
    with pytest.raises(ValueError, match="extension"):
        d.save(tmp_path / "lc.txt")
    with pytest.raises(OutputError):
        d.save(tmp_path / "missing" / "lc.csv")


def test_load_gives_back_the_saved_fluxes(tmp_path):
    """Fluxes.load reads the FITS product: same cube, comparisons, weights and light curve."""
    fl, _ = synthetic(24, n_frames=40)
    d = fl.autodiff()
    path = d.save(tmp_path / "lc.fits")
    back = Fluxes.load(path)
    assert back.shape == fl.shape and back.target == d.target and back.aperture == d.aperture
    assert back.comparisons == d.comparisons and back.weights == pytest.approx(d.weights)
    again = back.diff(back.comparisons, back.weights, aperture=back.aperture)
    assert np.allclose(again.diff_flux, d.diff_flux, rtol=1e-5)  # float32 cube on disk
    assert list(back.files) == [str(f) for f in d.files]


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    from reduce.lightcurve import tables

    fl, _ = synthetic(23, n_frames=20)
    target = tmp_path / "lc.fits"
    target.write_text("previous")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(tables, "fits_bytes", boom)
    with pytest.raises(RuntimeError):
        fl.save(target)
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["lc.fits"]


def test_constructor_validates_shapes():
    with pytest.raises(ValueError, match="n_frames=3"):
        Fluxes([1, 2, 3], np.ones((2, 2, 4)))
    with pytest.raises(ValueError, match="radii"):
        Fluxes([1, 2], np.ones((2, 1, 2)), apertures=[1.0])
    with pytest.raises(ValueError, match="frame axis"):
        Fluxes([1, 2], np.ones((1, 1, 2)), data={"fwhm": [1.0, 2.0, 3.0]})


def test_per_frame_radii_and_pickling():
    import pickle
    fl, _ = synthetic(24, n_frames=60)
    radii = fl.apertures[:, None] * np.linspace(1.0, 1.2, 60)[None]  # fwhm-scaled radii
    fl2 = Fluxes(fl.time, fl.fluxes, fl.errors, radii, data=fl.data, meta=fl.meta)
    d = fl2.autodiff()
    assert d.aperture_radius == pytest.approx(np.median(radii[d.aperture]))
    keep = np.arange(60) % 2 == 0
    assert d.mask(keep).apertures.shape == (5, 30)
    assert d.bin(0.02).apertures.shape[0] == 5
    back = pickle.loads(pickle.dumps(d))
    assert np.array_equal(back.flux, d.flux, equal_nan=True)
    assert back.comparisons == d.comparisons and back.fwhm.shape == (60,)


def test_sigma_clipping_keeps_a_smooth_trend():
    """A sky rising smoothly through the night (twilight) is not an outlier; a spike on it is."""
    fl, _ = synthetic(22, n_frames=120)
    fl.data["sky"] = np.linspace(100.0, 900.0, 120) + np.random.default_rng(0).normal(0, 2, 120)
    fl.data["sky"][60] += 80
    out = fl.sigma_clipping_data(bkg=3)
    assert sorted(r["index"] for r in out.meta["rejected"]) == [60]


def test_flux_and_error_are_the_targets_series_as_in_prose():
    fl, _ = synthetic(n_frames=40)
    fl.target = 3
    assert fl.flux.shape == fl.error.shape == (40,)
    assert np.array_equal(fl.flux, fl.fluxes[fl.aperture, 3])
    assert np.array_equal(fl.error, fl.errors[fl.aperture, 3])
    d = fl.autodiff()
    assert d.fluxes.shape == fl.fluxes.shape and d.errors.shape == fl.errors.shape
    assert np.array_equal(d.flux, d.fluxes[d.aperture, 3], equal_nan=True)
    assert d.diff_flux is not None and np.array_equal(d.diff_flux, d.flux, equal_nan=True)
    assert np.array_equal(d.diff_error, d.error, equal_nan=True)
