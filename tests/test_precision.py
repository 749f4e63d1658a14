"""Issue 4 precision: `reduce run` with the default recipe tracks the injected signal at the noise floor.

Small nights (60 frames of 300x300) from the simulator with a known signal: a sine, a transit and a
sine with a strong pointing drift (100 px, a third of the frame, so stars cross many flat-field
pixels). The residual (table flux / injected relative flux, normalised by its median) must scatter
less than 1.10x ``noise_floor`` (target + best comparison ensemble, at the chosen aperture, with
the recipe's sky annulus). No frame of these clean nights may be flagged.
On 60 frames the measured RMS itself scatters by ~9 % (1/sqrt(2n)), so single nights vary: over
seeds 0-7 the ratio averages 1.01 (no drift; 0.88-1.17) and 1.02 (drift; 0.87-1.10, master-flat
noise the floor leaves out); see benchmarks/bench_precision.py for the 600x600 nights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from reduce.cli import main
from reduce.simulations import noise_floor, simulate_night

DEFAULT = Path(__file__).resolve().parents[1] / "recipes" / "default.yaml"
MAX_RATIO = 1.10


def reduce_run(night: Path, out: Path) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(DEFAULT), str(night), "-o", str(out), "-q"])
    return exc.value.code


def annulus_pixels(fwhm: float) -> float:
    """Area of the default recipe's sky annulus (inner/outer radii in FWHM units)."""
    from reduce.recipe import load_recipe

    block = next(b for b in load_recipe(DEFAULT).sections["photometry"] if b.name == "AnnulusBackground")
    assert block.params.get("scale", "fwhm") == "fwhm"
    return float(np.pi * (block.params["outer"] ** 2 - block.params["inner"] ** 2) * fwhm ** 2)


@pytest.mark.parametrize("signal,shift,seed", [("sine", 5.0, 7), ("transit", 5.0, 7), ("sine", 100.0, 2)],
                         ids=["sine", "transit", "drift-100px"])
def test_light_curve_is_at_the_noise_floor(tmp_path, signal, shift, seed):
    night, out = tmp_path / "night", tmp_path / "out"
    truth = simulate_night(night, seed=seed, n_images=60, size=300, signal=signal, shift=shift)
    assert reduce_run(night, out) == 0  # 0: nothing flagged, nothing skipped
    table = Table.read(next(out.glob("*.csv")), format="ascii.csv", comment="#")
    prov = json.loads(next(out.glob("*.json")).read_text())
    assert np.all(table["flag"] == 0) and not prov["flagged"]
    flux = np.asarray(table["flux"], float)
    assert np.all(np.isfinite(flux))
    resid = flux / np.asarray(truth["dflux"])
    resid /= np.median(resid)
    radius = prov["aperture"]["radius_px"]
    floor = noise_floor(truth, radius, annulus_px=annulus_pixels(float(np.median(table["fwhm"]))))
    ratio = float(np.std(resid)) / floor
    assert ratio < MAX_RATIO, f"rms {np.std(resid):.6f} = {ratio:.3f} x floor {floor:.6f} at {radius:.2f} px"
    # the injected signal itself is recovered, not flattened (its amplitude is ~10x the noise)
    injected = np.asarray(truth["dflux"]) / np.median(truth["dflux"])
    assert np.corrcoef(flux, injected)[0, 1] > 0.9
    # an ensemble, not one star: the field's usable comparisons (all but the target, the saturated
    # star and the variables) nearly all take part
    stars = truth["stars"]
    usable = sum(1 for v, s in zip(stars["variable"], stars["saturated"]) if not v and not s) - 1
    assert len(prov["comparisons"]) >= usable - 1
