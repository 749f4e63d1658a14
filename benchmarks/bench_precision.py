"""Precision of `reduce run` with recipes/default.yaml against the simulator's truth (issue 4).

Three 100-frame 600x600 nights from `reduce simulate` (a sine, a transit, and a sine with a
200 px pointing drift) are reduced by the real command (`reduce run`, in-process). The residual
is the table's flux divided by the injected relative flux, normalised by its median; its standard
deviation over the measured frames must stay within 1.10x the noise floor of the target plus the
best comparison ensemble, ``reduce.simulations.noise_floor`` at the chosen aperture radius with
the recipe's sky-annulus area (so the sky-estimate noise counts). The floor leaves out
master-calibration noise, which a drifting night feels most (stars cross master-flat pixels).

On 100 frames the measured RMS itself scatters by ~7 % (1/sqrt(2n)) around its expectation, so a
single night's ratio is that noisy (seeds fixed). Over seeds 10-13 the ratio averaged 1.05 without
drift, where a perfect reduction (true calibration, positions, sky and weights) of the same
frames gave 1.03; with a 200 px drift, master-flat noise adds ~0.0003-0.0004 per star.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "recipes" / "default.yaml"
MAX_RATIO = 1.10
NIGHTS = (  # (label, signal, drift in px over the night, seed)
    ("sine", "sine", 5.0, 1),
    ("transit", "transit", 5.0, 5),
    ("drift 200 px", "sine", 200.0, 3),
)


def annulus_area(recipe_path: Path, fwhm: float) -> float | None:
    """Pixels in the recipe's AnnulusBackground annulus for a frame of median ``fwhm`` (px)."""
    from reduce.recipe import load_recipe

    spec = load_recipe(recipe_path)
    for block in spec.sections.get("photometry", ()):
        if block.name == "AnnulusBackground":
            inner, outer = block.params.get("inner", 5.0), block.params.get("outer", 8.0)
            k = fwhm if block.params.get("scale", "fwhm") == "fwhm" else 1.0
            return float(np.pi * ((outer * k) ** 2 - (inner * k) ** 2))
    return None


def residual_vs_truth(outdir: Path, truth: dict, recipe_path: Path) -> dict:
    """RMS of the light curve against the injected signal, the noise floor and their ratio."""
    from astropy.table import Table

    from reduce.simulations import noise_floor

    table = Table.read(next(outdir.glob("*.csv")), format="ascii.csv", comment="#")
    prov = json.loads(next(p for p in outdir.glob("*.json")).read_text())
    flux = np.asarray(table["flux"], float)
    ok = np.isfinite(flux)
    resid = flux[ok] / np.asarray(truth["dflux"], float)[ok]
    resid /= np.median(resid)
    radius = float(prov["aperture"]["radius_px"])
    ann = annulus_area(recipe_path, float(np.nanmedian(np.asarray(table["fwhm"], float))))
    floor = noise_floor(truth, radius, annulus_px=ann)
    rms = float(np.std(resid))
    return {"rms": rms, "floor": floor, "ratio": rms / floor, "radius": radius, "n": int(ok.sum()),
            "flagged": int(np.count_nonzero(np.asarray(table["flag"]))),
            "comparisons": len(prov["comparisons"])}


def reduce_night(night: Path, outdir: Path, recipe_path: Path = DEFAULT_RECIPE) -> int:
    """`reduce run RECIPE NIGHT -o OUTDIR -q` in-process; its exit status."""
    from reduce.cli import main

    try:
        main(["run", str(recipe_path), str(night), "-o", str(outdir), "-q"])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def measure(label: str, signal: str, shift: float, seed: int, *, n_images: int = 100, size: int = 600,
            recipe_path: Path = DEFAULT_RECIPE, workdir: Path) -> dict:
    """Simulate one night, reduce it and compare it with its truth."""
    from reduce.simulations import simulate_night

    night = workdir / f"{signal}_{seed}_{shift:g}"
    truth = simulate_night(night, seed=seed, n_images=n_images, size=size, signal=signal, shift=shift)
    t0 = time.perf_counter()
    status = reduce_night(night, workdir / f"out_{night.name}", recipe_path)
    seconds = time.perf_counter() - t0
    if status not in (0, 3):
        raise RuntimeError(f"reduce run failed on the {label} night (exit status {status})")
    return {"label": label, "seconds": seconds,
            **residual_vs_truth(workdir / f"out_{night.name}", truth, recipe_path)}


def bench() -> list[dict]:
    logging.disable(logging.WARNING)
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    try:
        for label, signal, shift, seed in NIGHTS:
            m = measure(label, signal, shift, seed, workdir=workdir)
            what = f"precision, {label} night (600x600, 100 frames, seed {seed})"
            rows.append({"name": f"{what}: residual RMS vs truth", "value": round(m["rms"], 6), "unit": "",
                         "target": f"<= {MAX_RATIO:.2f} x floor = {MAX_RATIO * m['floor']:.6f}",
                         "passed": m["ratio"] < MAX_RATIO})
            rows.append({"name": f"{what}: noise floor at the chosen {m['radius']:.2f} px aperture",
                         "value": round(m["floor"], 6), "unit": "", "target": "target + best ensemble",
                         "passed": True})
            rows.append({"name": f"{what}: RMS / floor ({m['comparisons']} comparisons, "
                                 f"{m['flagged']} flagged frames)",
                         "value": round(m["ratio"], 3), "unit": "x", "target": f"< {MAX_RATIO:.2f}",
                         "passed": m["ratio"] < MAX_RATIO})
            rows.append({"name": f"{what}: `reduce run` wall time", "value": round(m["seconds"], 2),
                         "unit": "s", "target": "informative", "passed": True})
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in bench():
        print(row)
