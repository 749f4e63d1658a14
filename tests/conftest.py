"""Shared fixtures: small simulated nights (built once per session, read-only) and paths."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's config or cache folders, and no progress bars."""
    home = tmp_path_factory.getbasetemp() / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    (home / ".cache").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("REDUCE_CONFIG", raising=False)
    monkeypatch.setenv("REDUCE_NO_PROGRESS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_night(tmp_path_factory) -> Path:
    """A 12-frame 200x200 simulated night with calibration frames (do not modify: copy it)."""
    from reduce.simulations import simulate_night

    dest = tmp_path_factory.mktemp("nights") / "small"
    simulate_night(dest, seed=11, n_images=12, size=200, signal="sine")
    return dest


@pytest.fixture
def night_copy(small_night, tmp_path) -> Path:
    """A private, writable copy of ``small_night``."""
    return copy_night(small_night, tmp_path / "night")


def copy_night(src, dest) -> Path:
    """A copy of the night folder ``src`` at ``dest``, without its index and outputs."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".reduce", "reduced"))
    return Path(dest)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared real camera frames; tests using it are skipped when the folder is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real frames not available at {REAL}")
    return REAL


def stayed_broken(*paths) -> None:
    """Date cut-short files an hour back: a file cut short in the last minute is taken as still
    being written and left for the next pass (issue 20); these stayed broken, so they are reported."""
    import time

    old = time.time() - 3600
    for p in paths:
        os.utime(p, (old, old))
