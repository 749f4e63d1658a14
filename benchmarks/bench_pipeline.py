"""Per-frame cost of the whole block chain on simulated nights (one core), and streaming memory.

Chain: Calibration (apply) -> PointSourceDetection -> Cutouts -> MedianEPSF -> Moffat2D ->
AlignReferenceSources -> CentroidQuadratic -> AperturePhotometry (many radii) ->
AnnulusBackground -> GetFluxes. Targets (issue 3): <= 15 ms/frame on 600x600, <= 12x that on
2048x2048, and a peak memory that does not grow with the number of frames. The time to merely
read each frame is reported beside it (FITSImage: pixels + header + metadata, and the bare pixel
read), so the overhead over I/O is visible. Per-block times are the best of three passes over the
night (the machine is shared with other work; the 1-minute load average is reported).

Master combination (sigma-clipped median or mean of a stack) with :mod:`reduce.algorithms.combine`
beside astropy's ``sigma_clip(cenfunc='median', stdfunc='mad_std')`` and a masked median/mean:
time (median of 3, alternated) and peak traced workspace, why the hand-written rules stay.
"""
from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

BUDGET_600_MS = 15.0


def _night(folder: Path, *, n_images: int, size: int, seed: int) -> tuple[list[str], dict]:
    from reduce.simulations import simulate_night

    truth = simulate_night(folder, n_images=n_images, size=size, seed=seed, shift=8.0)
    cal = {k: [str(folder / f) for f in v] for k, v in truth["calibration"].items()}
    t, mid = truth["target"], n_images // 2
    cal["target_xy"] = (truth["stars"]["x"][t] + truth["frames"]["dx"][mid],
                        truth["stars"]["y"][t] + truth["frames"]["dy"][mid])
    return [str(folder / f) for f in truth["frames"]["file"]], cal


def _chain(cal: dict, lights: list[str], target_xy=None):
    """The reference frame processed by the calibration sequence, then the photometry Sequence."""
    from reduce import blocks
    from reduce.core.sequence import Sequence
    from reduce.io.fitsimage import FITSImage

    calibration = Sequence([
        blocks.Calibration(bias=cal["bias"], darks=cal["dark"], flats=cal["flat"]),
        blocks.PointSourceDetection(), blocks.Cutouts(), blocks.MedianEPSF(), blocks.Moffat2D(),
    ], name="reference")
    ref = FITSImage(lights[len(lights) // 2])
    calibration.run(ref, show_progress=False)
    target = 0
    if target_xy is not None:  # the simulated target, not merely the brightest (saturated) star
        import numpy as np

        target = int(np.argmin(np.hypot(*(ref.sources.coords - target_xy).T)))
    return Sequence([
        *calibration,
        blocks.AlignReferenceSources(ref),
        *([blocks.CosmicRays()] if hasattr(blocks, "CosmicRays") else []),  # the default recipe's (issue 18)
        blocks.CentroidQuadratic(target=target),  # as reduce.run.group sets it: flags follow the target
        blocks.AperturePhotometry(),
        blocks.AnnulusBackground(),
        blocks.GetFluxes(target=target),
    ], name="photometry")


def _per_frame(best: dict) -> tuple[float, float, dict]:
    """(chain ms/frame excluding reading, read ms/frame, {block: ms/frame})."""
    per_block = dict(best)
    read = per_block.pop("load", float("nan"))
    return sum(per_block.values()), read, per_block


def _run(lights, cal, passes: int = 3):
    """(per-block ms/frame best over ``passes`` runs, last Sequence, best wall s)."""
    best, wall, seq = {}, float("inf"), None
    for _ in range(passes):
        seq = _chain(cal, lights, cal["target_xy"])
        t0 = time.perf_counter()
        seq.run(lights, show_progress=False)
        wall = min(wall, time.perf_counter() - t0)
        for r in seq.timing():
            best[r["block"]] = min(best.get(r["block"], float("inf")), 1e3 * r["seconds"] / len(lights))
    return best, seq, wall


def _read_only(lights) -> float:
    """ms per frame to read the pixels alone (read_pixels), best of two passes."""
    from reduce.io.fits import read_pixels

    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        for path in lights:
            read_pixels(path)
        best = min(best, 1e3 * (time.perf_counter() - t0) / len(lights))
    return best


def _peak_memory(lights, cal, n: int) -> tuple[float, float]:
    """(peak traced memory, size of the light-curve rows GetFluxes keeps per frame), MiB, of
    streaming the first ``n`` frames through the chain."""
    import numpy as np

    seq = _chain(cal, lights, cal["target_xy"])
    gc.collect()
    tracemalloc.start()
    seq.run(lights[:n], show_progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rows = seq[-1]._rows
    row = sum(v.nbytes for v in rows[0].values() if isinstance(v, np.ndarray)) if rows else 0
    return peak / 2**20, row / 2**20


def _clip_astropy(stack, method: str, sigma: float):
    """The master by astropy: sigma_clip (median centre, MAD std) along the frames, then combined."""
    import warnings

    import numpy as np
    from astropy.stats import sigma_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(stack, sigma=sigma, maxiters=3, cenfunc="median", stdfunc="mad_std", axis=0)
        out = np.ma.median(clipped, axis=0) if method == "median" else clipped.mean(axis=0)
    return np.ma.filled(out.astype(np.float32), np.nan)


def _combine_vs_astropy(n: int, size: int, method: str, sigma: float, repeats: int = 3) -> list[dict]:
    """Rows: seconds and peak workspace (MiB) of combine_stack vs astropy on ``n`` frames."""
    import numpy as np
    import astropy.stats  # noqa: F401  (imported before the clock)

    from reduce.algorithms.combine import combine_stack

    rng = np.random.default_rng(n)
    stack = rng.normal(1000, 10, (n, size, size)).astype(np.float32)
    stack[rng.random(stack.shape) < 2e-4] = 6e4  # cosmic rays
    ways = {"ours": lambda: combine_stack(stack, method=method, sigma=sigma, maxiters=3),
            "astropy": lambda: _clip_astropy(stack, method, sigma)}
    seconds, peak = {k: [] for k in ways}, {}
    for _ in range(repeats):
        for name, way in ways.items():
            tracemalloc.start()
            t0 = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - t0)
            peak[name] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    s = {k: sorted(v)[len(v) // 2] for k, v in seconds.items()}
    what = f"master {n} x {size}x{size}, {method} {sigma:g} sigma: combine.py / astropy sigma_clip(mad_std)"
    return [{"name": what, "value": f"{s['ours']:.2f} / {s['astropy']:.2f}", "unit": "s",
             "target": "combine.py faster", "passed": s["ours"] < s["astropy"]},
            {"name": "  its peak workspace", "value": f"{peak['ours']:.0f} / {peak['astropy']:.0f}", "unit": "MiB",
             "target": f"stack {stack.nbytes / 2**20:.0f} MiB", "passed": None}]


def bench() -> list[dict]:
    logging.getLogger("reduce").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="reduce-bench-pipeline-"))
    out = []
    try:
        lights, cal = _night(tmp / "n600", n_images=100, size=600, seed=1)
        best, seq, wall = _run(lights, cal)
        n = len(lights)
        chain, read, blocks = _per_frame(best)
        flagged = len(seq.flagged)
        out.append({"name": "600x600 chain per frame (100 frames, excl. read)", "value": round(chain, 2),
                    "unit": "ms", "target": f"<= {BUDGET_600_MS:g} ms", "passed": chain <= BUDGET_600_MS})
        out.append({"name": "600x600 read per frame (FITSImage)", "value": round(read, 2), "unit": "ms",
                    "target": "", "passed": None})
        out.append({"name": "600x600 bare pixel read per frame (read_pixels)", "value": round(_read_only(lights), 2),
                    "unit": "ms", "target": "", "passed": None})
        out.append({"name": "600x600 wall per frame (read + chain + overhead)",
                    "value": round(1e3 * wall / n, 2), "unit": "ms", "target": "", "passed": None})
        out.append({"name": "600x600 frames flagged", "value": flagged, "unit": "", "target": "0",
                    "passed": flagged == 0})
        for name, ms in blocks.items():
            out.append({"name": f"  600x600 {name}", "value": round(ms, 3), "unit": "ms/frame",
                        "target": "", "passed": None})
        (small, row), (large, _) = _peak_memory(lights, cal, 10), _peak_memory(lights, cal, 100)
        # the light curve itself grows with the frames (GetFluxes keeps ~20 kB per frame): allowed
        allowed = 600 * 600 * 4 / 2**20 + 90 * row
        out.append({"name": "streaming peak memory, 10 vs 100 frames", "value": f"{small:.1f} / {large:.1f}",
                    "unit": "MiB", "target": f"+< 1 frame + the 90 extra light-curve rows ({allowed:.1f})",
                    "passed": large < small + allowed})
        shutil.rmtree(tmp / "n600")

        lights, cal = _night(tmp / "n2048", n_images=12, size=2048, seed=2)
        best, seq, wall = _run(lights, cal)
        chain2k, read2k, blocks2k = _per_frame(best)
        out.append({"name": "2048x2048 chain per frame (12 frames, excl. read)", "value": round(chain2k, 1),
                    "unit": "ms", "target": f"<= 12 x 600x600 ({12 * chain:.0f} ms)",
                    "passed": chain2k <= 12 * max(chain, 1e-9) and chain2k <= 12 * BUDGET_600_MS})
        out.append({"name": "2048x2048 read per frame (FITSImage)", "value": round(read2k, 1), "unit": "ms",
                    "target": "", "passed": None})
        for name, ms in blocks2k.items():
            out.append({"name": f"  2048x2048 {name}", "value": round(ms, 2), "unit": "ms/frame",
                        "target": "", "passed": None})
        out += _combine_vs_astropy(15, 600, "median", 3.0) + _combine_vs_astropy(15, 600, "mean", 5.0)
        out += _combine_vs_astropy(10, 2048, "median", 3.0, repeats=1)
        out.append({"name": "1-minute load average at the end", "value": round(os.getloadavg()[0], 2), "unit": "",
                    "target": f"{os.cpu_count()} cores", "passed": None})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for row in bench():
        print(row)
