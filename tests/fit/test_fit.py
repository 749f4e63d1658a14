"""Issue 21: `reduce fit` on simulated light curves with known truth, the planet file's checks,
batman against the exact model, and Kwee-van Woerden minima."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("batman")
pytest.importorskip("emcee")

from tests.cli.test_run import run_cli  # noqa: E402
from reduce.fit import load_planet  # noqa: E402
from reduce.fit.minimum import time_of_minimum  # noqa: E402
from reduce.fit.simulate import simulated_transit  # noqa: E402
from reduce.fit.transit import _Model, fit_transit  # noqa: E402
from reduce.model.errors import UsageError  # noqa: E402
from tests.transit_model import transit_flux  # noqa: E402

PLANET = """\
name: SIM b
period: 2.1500082
t0: 2455867.402743
a_rs: 6.05
inc: 88.9
rp_rs: 0.15
u: [0.40, 0.25]
"""


def write_product(path: Path, lc, flags=None) -> Path:
    """A light-curve CSV as `reduce run` writes it (the columns a fit reads)."""
    n = len(lc.time)
    t = Table({"time": lc.time - 0.004, "bjd_tdb": lc.time, "flux": lc.flux, "flux_err": lc.err,
               "airmass": lc.covariates["airmass"], "flag": flags if flags is not None else np.zeros(n, int),
               "file": [f"f{i:03d}.fits" for i in range(n)]})
    t.write(path, format="ascii.csv", overwrite=True)
    return path


def test_batman_matches_the_exact_model():
    t = np.linspace(-0.15, 0.15, 300)
    exact = transit_flux(t, rp=0.15, tc=0.0, period=2.15, a=6.05, inc_deg=88.9, u1=0.4, u2=0.25)
    fast = _Model(t, period=2.15, ecc=0.0, w=90.0)(0.0, 0.15, 6.05, 88.9, 0.4, 0.25)
    assert np.max(np.abs(fast - exact)) < 1e-5
    assert exact.min() < 0.975  # a real transit was compared


def test_a_simulated_night_is_recovered_within_its_errors():
    # white noise: on red-noise nights the Rp/Rs errors are still too small (BENCHMARKS.md coverage)
    lc, truth = simulated_transit(3, red=0.0)
    fit = fit_transit(lc, truth["planet"], seed=3)
    tc, tc_err = fit.params["tc"]
    rp, rp_err = fit.params["rp_rs"]
    assert abs(tc - truth["tc"]) < 3 * tc_err and tc_err < 3 / 1440
    assert abs(rp - truth["rp_rs"]) < 3 * rp_err and rp_err < 0.01
    assert "airmass" in fit.baseline and fit.converged and fit.beta >= 1.0
    assert fit.n_frames == len(lc.time)


def test_reduce_fit_writes_json_figure_and_aavso_report(tmp_path):
    lc, truth = simulated_transit(5)
    flags = np.zeros(len(lc.time), int)
    flags[10] = 64  # a flagged frame is left out
    product = write_product(tmp_path / "night_SIM_V.csv", lc, flags)
    planet = tmp_path / "planet.yaml"
    planet.write_text(PLANET)
    assert run_cli("fit", product, planet, "-q") in (0, None)
    s = json.loads((tmp_path / "night_SIM_V_fit.json").read_text())
    for key in ("tc", "tc_err", "rp_rs", "rp_rs_err", "depth", "duration", "a_rs", "inc", "o_c", "beta",
                "bic", "baseline", "rms_per_frame", "rms_per_10min", "n_frames"):
        assert key in s, key
    assert s["n_frames"] == len(lc.time) - 1 and s["frames_flagged_left_out"] == 1
    assert abs(s["o_c"] - (truth["tc"] - (2455867.402743 + 1042 * 2.1500082))) < 3 * s["o_c_err"]
    assert (tmp_path / "night_SIM_V_fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "night_SIM_V_fit_aavso.txt").read_text().splitlines()
    assert report[0] == "#TYPE=EXOPLANET" and "#DATE_TYPE=BJD_TDB" in report
    assert any(r.startswith("#RESULTS=Tc=") for r in report)
    rows = [r for r in report if not r.startswith("#")]
    assert len(rows) == len(lc.time) - 1 and len(rows[0].split(",")) == 4


@pytest.mark.parametrize("text, message", [
    ("period: 2\n", "missing"),
    (PLANET.replace("u: [0.40, 0.25]", "u: [0.4]"), "u must be"),
    (PLANET.replace("t0: 2455867.402743", "t0: 5867.4"), "full BJD_TDB"),
    (PLANET + "colour: red\n", "unknown key"),
    (PLANET.replace("a_rs: 6.05", "a_rs: [6.05, -1]"), "a_rs must be"),
    ("- a list\n", "expected keys"),
])
def test_bad_planet_files_are_named(tmp_path, text, message):
    p = tmp_path / "planet.yaml"
    p.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_planet(p)


def test_usage_errors_exit_2(tmp_path):
    lc, _ = simulated_transit(1)
    product = write_product(tmp_path / "p.csv", lc)
    assert run_cli("fit", product) == 2                      # no planet file
    assert run_cli("fit", tmp_path / "missing.csv", "--minimum") == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert run_cli("fit", bad, "--minimum") == 2


def test_a_night_without_the_transit_is_refused(tmp_path):
    lc, truth = simulated_transit(2)
    lc.time = lc.time + 1.0  # a night a day later: no transit by the ephemeris
    with pytest.raises(Exception, match="not within the night"):
        fit_transit(lc, truth["planet"])


def eclipse(seed, tmin=2459000.5, n=160):
    rng = np.random.default_rng(seed)
    time = np.sort(tmin - 0.12 + rng.uniform(0, 0.24, n))
    flux = 1.0 - 0.3 * np.exp(-0.5 * ((time - tmin) / 0.02) ** 2) + rng.normal(0, 0.004, n)
    return time, flux


def test_kwee_van_woerden_times_a_minimum_with_an_honest_error(tmp_path):
    from reduce.fit.product import LightCurve

    z = []
    for seed in range(20):
        tmin = 2459000.5 + seed * 1e-3
        time, flux = eclipse(seed, tmin)
        lc = LightCurve(path=Path("x.csv"), time=time, flux=flux, err=np.full(len(time), 0.004),
                        covariates={}, n_rows=len(time), n_flagged=0)
        m = time_of_minimum(lc)
        assert m.tmin_err < 2 / 1440
        assert abs(m.poly_tmin - tmin) < 5 * m.poly_tmin_err
        z.append(abs(m.tmin - tmin) / m.tmin_err)
    z = np.asarray(z)
    assert 0.4 <= np.mean(z <= 1) <= 0.95 and np.mean(z <= 3) >= 0.9, z

    time, flux = eclipse(0)
    lc = LightCurve(path=Path("x.csv"), time=time, flux=flux, err=np.full(len(time), 0.004),
                    covariates={"airmass": 1 + 0 * time + np.linspace(0, 0.1, len(time))}, n_rows=len(time),
                    n_flagged=0)
    product = write_product(tmp_path / "eb.csv", lc)
    assert run_cli("fit", product, "--minimum") in (0, None)
    s = json.loads((tmp_path / "eb_fit.json").read_text())
    assert abs(s["tmin"] - 2459000.5) < 3 * s["tmin_err"] and s["method"] == "Kwee-van Woerden"
