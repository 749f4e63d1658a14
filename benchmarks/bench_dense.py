"""A dense real field (issue 9): the shared HAT-P-32 night, 142 frames of 650x500 holding ~1,000 stars.

``reduce run recipes/default.yaml NIGHT --target 424,286`` (the target on the first frame, default
reference), as cron would start it (a fresh process; index rebuilt in a temporary folder each
time, so the scan is included):

- per frame with ``--jobs 1``: the per-frame phase of the run (``frame_seconds`` of the summary:
  reading, calibration, detection, PSF, alignment, centroids, 30 apertures, sky) divided by the
  frames; target <= 25 ms;
- the whole run with ``--jobs 2`` (start-up, scan, reference, frames, differential photometry,
  tables, figures, provenance): target <= 5 s;
- the Moffat fit of each frame's ePSF (as Moffat2D crops it) with the numpy Levenberg-Marquardt
  steps of ``algorithms/psf.py``, and with scipy's ``least_squares`` in their place (MINPACK
  ``lm``; bounded ``trf``), alternated, median of 3: why the hand-written solver stays.

Best of ``RUNS`` runs (the machine is shared); the 1-minute load average and a host speed probe
are reported. The night's header longitude is west-positive: a config says so, which spares the
run its warning. Skipped, with a note, when ``../shared`` is absent.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NIGHT = ROOT.parent / "shared" / "data" / "real" / "exotic_hatp32"
FRAME_MS, RUN_S = 25.0, 5.0
# the least of 5 runs: this shared 2-core host's speed swings by ~1.4x within the hour (the same
# code measured 23.1 and 26.1 ms per frame in two benches 30 minutes apart with 3 runs each); the
# least of more runs estimates the code's own cost, what the targets are about
RUNS = 5
MOFFAT_ROW = "  Moffat fit of the ePSF per frame: numpy LM / scipy MINPACK lm / scipy TRF (median of 3)"


def _run(tmp: Path, jobs: int) -> tuple[float, dict, float]:
    """(wall s, summary, CPU s of the run and its workers) of one fresh ``reduce run`` on the night."""
    out, index, summary = tmp / "out", tmp / "index.sqlite", tmp / "summary.json"
    shutil.rmtree(out, ignore_errors=True)
    index.unlink(missing_ok=True)
    config = tmp / "site.yaml"
    config.write_text("default:\n  site:\n    longitude_positive_west: true\n")
    cmd = [sys.executable, "-c", "from reduce.cli import main; main()", "run",
           str(ROOT / "recipes" / "default.yaml"), str(NIGHT), "-o", str(out), "--index", str(index),
           "--config", str(config), "--target", "424,286", "--jobs", str(jobs), "-q",
           "--summary-json", str(summary)]
    # its own cache folder: the run lock of a night lives there, and another session reducing the
    # same shared night at that moment would otherwise make this run stop (exit status 4);
    # matplotlib keeps its usual (font) cache, not rebuilt on every run
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    env = dict(os.environ, REDUCE_NO_PROGRESS="1", MPLBACKEND="Agg", XDG_CACHE_HOME=str(tmp / "cache"),
               MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR") or os.path.join(cache, "matplotlib"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"reduce run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, json.loads(summary.read_text()), cpu


def _per_frame_ms(summary: dict) -> float:
    groups = [g for g in summary["groups"] if g["status"] == "done"]
    return 1e3 * sum(g["frame_seconds"] or 0 for g in groups) / sum(g["frames"] for g in groups)


def _epsf_stamps() -> list[np.ndarray]:
    """The stamp Moffat2D fits on each frame of the night (detection, cutouts, median ePSF)."""
    from reduce import FITSImage, blocks

    chain = [blocks.PointSourceDetection(threshold=5), blocks.Cutouts(21), blocks.MedianEPSF()]
    stamps = []
    for path in sorted(NIGHT.glob("*.FITS")):
        image = FITSImage(str(path))
        for block in chain:
            block.run(image)
        stamps.append(blocks.Moffat2D()._stamp(np.asarray(image.epsf, float))[0])
    return stamps


def _scipy_solver(method: str):
    """scipy's ``least_squares`` (``lm``: MINPACK; ``trf``: bounded) with the contract of the numpy
    LM steps: ``(p, converged inside the bounds)``."""
    from scipy.optimize import least_squares

    def solve(fun, jac, p0, bounds, **_):
        lo, hi = bounds
        if method == "lm":
            res = least_squares(fun, p0, jac=jac, method="lm", max_nfev=400)
        else:
            res = least_squares(fun, np.clip(p0, lo + 1e-9, hi - 1e-9), jac=jac, bounds=bounds, method="trf",
                                x_scale="jac", max_nfev=400)
        return res.x, bool(res.success and np.all(res.x >= lo) and np.all(res.x <= hi))
    return solve


def _moffat_ms(stamps: list[np.ndarray], repeats: int = 3) -> dict:
    """Median ms per stamp of ``fit_moffat`` with each solver, alternated."""
    from reduce.algorithms import psf

    solvers = {"numpy": psf._levenberg_marquardt, "lm": _scipy_solver("lm"), "trf": _scipy_solver("trf")}
    times = {name: [] for name in solvers}
    try:
        for _ in range(repeats):
            for name, solve in solvers.items():
                psf._levenberg_marquardt = solve
                t0 = time.perf_counter()
                for stamp in stamps:
                    psf.fit_moffat(stamp)
                times[name].append(1e3 * (time.perf_counter() - t0) / len(stamps))
    finally:
        psf._levenberg_marquardt = solvers["numpy"]
    return {name: statistics.median(t) for name, t in times.items()}


def _speed_probe(repeats: int = 30) -> float:
    """Best-of-``repeats`` ms of one fixed piece of the per-frame work (101 stars x 30 exact
    apertures on a synthetic 650x500 frame): the host's speed at bench time. This shared 2-core
    machine swings by ~1.4x over an hour (22-24 ms per HAT-P-32 frame when quiet, 29-41 ms when
    not, same code); this row says which state the rows above were measured in."""
    from reduce.algorithms.apertures import circular_sums

    rng = np.random.default_rng(0)
    data = rng.normal(300.0, 2.0, (500, 650)).astype(np.float32)
    xy = rng.uniform(20, [630, 480], (101, 2))
    radii = np.linspace(0.5, 4.0, 30) * 2.1
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        circular_sums(data, xy, radii)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def bench() -> list[dict]:
    if not NIGHT.is_dir():
        note = f"skipped: {NIGHT} absent"
        return [{"name": "HAT-P-32 real night, per frame --jobs 1", "value": note, "unit": "",
                 "target": f"<= {FRAME_MS:g} ms", "passed": None},
                {"name": "HAT-P-32 real night, whole reduce run --jobs 2", "value": note, "unit": "",
                 "target": f"<= {RUN_S:g} s", "passed": None},
                {"name": MOFFAT_ROW, "value": note, "unit": "", "target": "", "passed": None}]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "reduce")], capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="reduce-bench-dense-"))
    try:
        serial = [_run(tmp, 1) for _ in range(RUNS)]
        frame_ms = min(_per_frame_ms(s) for _, s, _ in serial)
        serial_cpu = min(c for _, _, c in serial)
        whole, _, whole_cpu = min((_run(tmp, 2) for _ in range(RUNS)), key=lambda r: r[0])
        moffat = _moffat_ms(_epsf_stamps())
        measured = serial[0][1]
        frames = sum(g["frames"] for g in measured["groups"])
        flagged = sum(len(g["flagged"]) for g in measured["groups"])
        return [
            {"name": f"HAT-P-32 real night (650x500, ~1,000 stars), per frame --jobs 1 (best of {RUNS})",
             "value": round(frame_ms, 1), "unit": "ms", "target": f"<= {FRAME_MS:g} ms",
             "passed": frame_ms <= FRAME_MS},
            {"name": f"HAT-P-32 real night, whole reduce run --jobs 2 (best of {RUNS})",
             "value": round(whole, 2), "unit": "s", "target": f"<= {RUN_S:g} s", "passed": whole <= RUN_S},
            {"name": "  CPU time of the whole run, --jobs 1 / --jobs 2", "value":
             f"{serial_cpu:.2f} / {whole_cpu:.2f}", "unit": "s", "target": "", "passed": None},
            {"name": f"  frames / flagged, in {len(measured['groups'])} group(s)", "value": f"{frames} / {flagged}",
             "unit": "",
             "target": "", "passed": None},
            {"name": MOFFAT_ROW, "value": f"{moffat['numpy']:.2f} / {moffat['lm']:.2f} / {moffat['trf']:.2f}",
             "unit": "ms", "target": "numpy < MINPACK", "passed": moffat["numpy"] < moffat["lm"]},
            {"name": "  1-minute load average after the runs", "value": round(os.getloadavg()[0], 2),
             "unit": "", "target": f"{os.cpu_count()} cores", "passed": None},
            {"name": "  host speed probe: 101 stars x 30 apertures, synthetic frame (best of 30; 5.4 ms when quiet)",
             "value": round(_speed_probe(), 2), "unit": "ms", "target": "", "passed": None},
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in bench():
        print(row)
