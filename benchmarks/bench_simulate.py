"""Speed of ``reduce simulate``: the default 100-frame 600x600 night, calibration included."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def bench() -> list[dict]:
    """Time simulate_night(n_images=100, size=600) with its 15 calibration frames (best of 2)."""
    from reduce.simulations import simulate_night

    best = float("inf")
    for run in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            simulate_night(Path(tmp) / "night", seed=run, n_images=100, size=600)
            best = min(best, time.perf_counter() - t0)
    return [
        {"name": "simulate 100 lights + 15 calibration frames, 600x600 uint16",
         "value": round(best, 2), "unit": "s", "target": "< 5 s", "passed": best < 5.0},
        {"name": "simulate: time per written frame", "value": round(1000 * best / 115, 1),
         "unit": "ms", "target": "< 40 ms", "passed": best / 115 < 0.040},
    ]


if __name__ == "__main__":
    for row in bench():
        print(row)
