"""Scan speed: cold scan of 10,000 small FITS files (target >= 2000 files/s) and re-scan of the
same unchanged files (target < 1 s), through the public ``FitsManager``.

The files are 16x16 uint16 frames with a realistic header (about 20 cards) spread over 10
sub-folders; one template is written by astropy and copied with a different DATE-OBS each.
"""
from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path

N_FILES = 10_000


def _template() -> bytes:
    import numpy as np
    from astropy.io import fits
    header = fits.Header()
    for key, value in {"IMAGETYP": "Light Frame", "EXPTIME": 30.0, "FILTER": "V", "OBJECT": "WASP-12",
                       "TELESCOP": "T1m", "INSTRUME": "CCD", "DATE-OBS": "2021-03-04T02:00:00.000",
                       "RA": 97.64, "DEC": 29.67, "AIRMASS": 1.2, "GAIN": 1.5, "RDNOISE": 10.0,
                       "CCD-TEMP": -20.0, "XBINNING": 1, "YBINNING": 1, "OBSERVER": "bench"}.items():
        header[key] = value
    buf = io.BytesIO()
    fits.PrimaryHDU(np.zeros((16, 16), np.uint16), header).writeto(buf)
    return buf.getvalue()


def make_files(folder: Path, n: int = N_FILES) -> None:
    """Write ``n`` small FITS files under ``folder`` (10 sub-folders), distinct DATE-OBS each."""
    data = _template()
    stamp = b"2021-03-04T02:00:00.000"
    for i in range(n):
        sub = folder / f"seq{i % 10}"
        if i < 10:
            sub.mkdir(parents=True)
        s = i * 3
        new = f"2021-03-04T{2 + s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000".encode()
        (sub / f"frame_{i:05d}.fits").write_bytes(data.replace(stamp, new))


def bench() -> list[dict]:
    """Cold scan files/s and unchanged re-scan seconds for 10,000 files."""
    from reduce.index.manager import FitsManager

    tmp = Path(tempfile.mkdtemp(prefix="reduce-bench-scan-"))
    try:
        night = tmp / "night"
        make_files(night)
        index = tmp / "index.sqlite"
        t0 = time.perf_counter()
        fm = FitsManager(night, index=index)
        cold = time.perf_counter() - t0
        assert len(fm.files()) == N_FILES and fm.stats.read == N_FILES, fm.stats
        t0 = time.perf_counter()
        again = FitsManager(night, index=index)
        rescan = time.perf_counter() - t0
        assert again.stats.read == 0 and len(again.files()) == N_FILES, again.stats
        rate = N_FILES / cold
        return [
            {"name": f"cold scan of {N_FILES:,} small FITS files", "value": rate, "unit": "files/s",
             "target": ">= 2000 files/s", "passed": rate >= 2000},
            {"name": f"re-scan of {N_FILES:,} unchanged files", "value": rescan, "unit": "s",
             "target": "< 1 s", "passed": rescan < 1.0},
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in bench():
        print(row)
