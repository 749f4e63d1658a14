"""prose users' code works here as written: prose's "Images photometry" tutorial, line for line
(``prose`` renamed ``reduce``), and the README's API snippet on a night made by the README's command.

Both measure star 0, the brightest detected star; both must find the injected signal.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from reduce.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

# prose's docs/ipynb/photometry.ipynb, its code cells in order (the ComputeTransformTwirl line, a
# block reduce does not have, is dropped: AlignReferenceSources aligns on its own), then its cleanup.
PROSE_TUTORIAL = '''
import numpy as np
import matplotlib.pyplot as plt
from reduce.simulations import simulate_observation

time = np.linspace(0, 0.15, 100) + 2450000
target_dflux = 1 + np.sin(time * 100) * 1e-2

plt.plot(time, target_dflux)
_ = plt.ylim(0.98, 1.02)

# so we have the same data
np.random.seed(40)

fits_folder = "./tutorial_dataset"
simulate_observation(time, target_dflux, fits_folder)

from reduce import FitsManager

fm = FitsManager(fits_folder, depth=2)
fm

from reduce import FITSImage

ref = FITSImage(fm.all_images[0])

from reduce import Sequence, blocks

calibration = Sequence(
    [
        blocks.Calibration(darks=fm.all_darks, bias=fm.all_bias, flats=fm.all_flats),
        blocks.Trim(),
        blocks.PointSourceDetection(),  # stars detection
        blocks.Cutouts(21),  # making stars cutouts
        blocks.MedianEPSF(),  # building PSF
        blocks.psf.Moffat2D(),  # modeling PSF
    ]
)

calibration.run(ref, show_progress=False)

ref.show()
ref.sources.plot()

radii = np.linspace(0.2, 4, 30)

photometry = Sequence(
    [
        *calibration,  # calibration
        blocks.AlignReferenceSources(ref),  # alignment
        blocks.CentroidQuadratic(),  # centroiding
        blocks.AperturePhotometry(radii=radii),  # aperture photometry
        blocks.AnnulusBackground(),  # local background estimate
        blocks.GetFluxes(),
    ]
)

photometry.run(fm.all_images, loader=FITSImage)

raw_fluxes = photometry[-1].fluxes

# picking target
raw_fluxes.target = 0

# good practice
raw_fluxes = raw_fluxes.sigma_clipping_data(bkg=3)

# differential photometry
diff_fluxes = raw_fluxes.autodiff()
diff_fluxes.plot()
diff_fluxes.bin(0.005, True).errorbar()

plt.ylim(0.98, 1.02)
plt.xlabel("time")
plt.ylabel("diff. flux")
plt.tight_layout()
'''


def _sine_amplitude(time, flux, omega):
    """Relative amplitude of a sine of known angular frequency fitted with an offset."""
    ok = np.isfinite(flux)
    a = np.c_[np.ones(ok.sum()), np.sin(omega * time[ok]), np.cos(omega * time[ok])]
    c, *_ = np.linalg.lstsq(a, flux[ok], rcond=None)
    return float(np.hypot(c[1], c[2]) / c[0]), int(ok.sum())


@pytest.fixture
def pyplot(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_prose_images_photometry_tutorial_line_for_line(tmp_path, monkeypatch, pyplot):
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(PROSE_TUTORIAL, "prose-photometry-tutorial", "exec"), ns)
    diff, raw, ref = ns["diff_fluxes"], ns["raw_fluxes"], ns["ref"]
    truth = __import__("reduce.simulations", fromlist=["load_truth"]).load_truth(tmp_path / "tutorial_dataset")
    # star 0, the brightest detected star, is the simulated target, and it is not saturated
    t = truth["target"]
    x0, y0 = ref.sources.coords[0]
    assert np.hypot(x0 - truth["stars"]["x"][t], y0 - truth["stars"]["y"][t]) < 1.0
    assert not ref.sources.saturated[0]
    assert (raw.flags == 0).all() and not raw.meta.get("rejected"), raw.meta.get("rejected")
    # prose's names: flux/error the target's series, fluxes/errors the cubes
    assert diff.flux.shape == diff.error.shape == (len(diff),)
    assert diff.fluxes.shape == (30, len(ref.sources), len(diff))
    amplitude, n = _sine_amplitude(diff.time, diff.flux, 100.0)
    assert n >= 95
    assert amplitude == pytest.approx(0.01, rel=0.05)


def _readme_simulate_command():
    line = next(ln for ln in README.read_text().splitlines() if ln.startswith("reduce simulate "))
    return shlex.split(line.split("#")[0])[1:]


def _readme_api_snippet():
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_readme_api_snippet_on_the_readmes_night(tmp_path, monkeypatch, pyplot, capsys):
    monkeypatch.chdir(tmp_path)
    args = _readme_simulate_command()
    assert args[:2] == ["simulate", "./night"] and "--signal" in args
    with pytest.raises(SystemExit) as exc:
        main([*args, "-q"])
    assert exc.value.code == 0
    ns: dict = {}
    exec(compile(_readme_api_snippet(), "README.md[Python API]", "exec"), ns)
    diff = ns["diff"]
    assert (tmp_path / "lightcurve.png").stat().st_size > 10_000  # the snippet saves its figure
    assert (diff.raw.flags == 0).all()
    truth = __import__("reduce.simulations", fromlist=["load_truth"]).load_truth(tmp_path / "night")
    expected = np.interp(diff.time, truth["time"], truth["dflux"])
    residual = diff.flux / expected
    residual /= np.nanmedian(residual)
    assert np.isfinite(diff.flux).sum() >= 95
    assert np.nanstd(residual) < 0.004, "the README's light curve does not follow the injected transit"
    inside = expected < 1 - 0.5 * (1 - expected.min())
    depth = np.nanmedian(diff.flux[~inside]) - np.nanmedian(diff.flux[inside])
    assert depth > 0.5 * (1 - expected.min()) / np.nanmedian(diff.flux[~inside])  # transit seen
