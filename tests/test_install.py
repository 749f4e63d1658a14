"""A built wheel ships the recipes and the sample configuration: after `pip install`, `reduce run
default ./night` works from any folder and `reduce recipes` lists what is installed.

Offline: the wheel is built with this environment's setuptools (no build isolation) from a copy of
the source tree, installed with --no-deps --no-index into a fresh venv that sees this environment's
dependencies (a .pth line, not their .pth files: the editable install of reduce stays out of it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDUCE_CONFIG")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel build output) of reduce installed from its wheel."""
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build this pyproject offline "
                    "(make venv installs a recent one)")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "tests", "benchmarks", "demo_night",
        ".pytest_cache", ".reduce"))
    build = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--no-index", "-w", tmp / "dist", src)
    wheel = next((tmp / "dist").glob("reduce-*.whl"))
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    site = Path(_run(venv / "bin" / "python", "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # numpy, astropy, ...
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
         "--no-index", wheel)
    return venv / "bin", build.stdout + build.stderr


def test_build_has_no_deprecation_warning(installed):
    _, output = installed
    assert "deprecated" not in output.lower(), output


def test_recipes_and_sample_config_are_installed(installed, tmp_path):
    bindir, _ = installed
    out = _run(bindir / "reduce", "recipes", cwd=tmp_path).stdout
    for name in ("default", "defocused_transit", "quicklook"):
        assert f"  {name} " in out, out
    venv = str(bindir.parent)
    paths = [ln.strip().split(": ")[-1] for ln in out.splitlines() if ln.strip().endswith(".yaml")]
    assert len(paths) >= 4 and all(p.startswith(venv) for p in paths), paths  # copies, not the tree
    sample = paths[-1]
    assert Path(sample).read_text() == (ROOT / "sample_config.yaml").read_text()
    assert Path(paths[0]).read_text() == (ROOT / "recipes" / "default.yaml").read_text()


def test_run_default_by_name_from_any_folder(installed, tmp_path):
    bindir, _ = installed
    reduce = bindir / "reduce"
    _run(reduce, "simulate", "night", "--n-images", "6", "--size", "160", "--n-stars", "12", "-q",
         cwd=tmp_path)
    assert "valid recipe" in _run(reduce, "validate", "default", cwd=tmp_path).stdout
    r = _run(reduce, "run", "default", "./night", "--jobs", "1", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "night" / "reduced").glob("*.csv"))
    missing = _run(reduce, "run", "nosuch", "./night", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "installed recipes: default" in missing.stderr
