"""Figures: light curve with diagnostics and the reference frame render to real PNG files."""
from __future__ import annotations

import numpy as np
import pytest

from reduce import plots
from reduce.image import Sources
from reduce.io.atomic import OutputError

from .test_diffphot import synthetic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_ok(path, min_size=15_000):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > min_size


def test_lightcurve_figure_png(tmp_path):
    fl, _ = synthetic(31, n_frames=300)
    d = fl.autodiff()
    fig = plots.lightcurve_figure(d, binned_dt=0.005)
    assert len(fig.axes) == 5  # light curve + fwhm, sky, airmass, shift
    assert fig.axes[0].get_ylabel() == "differential flux"
    assert fig.axes[-1].get_xlabel() == "JD - 2460000"
    out = plots.save_figure(fig, tmp_path / "lc.png")
    assert _png_ok(out)
    assert [p.name for p in tmp_path.iterdir()] == ["lc.png"]  # no temp file left


def test_lightcurve_figure_without_diagnostics(tmp_path):
    fl, _ = synthetic(32, n_frames=60)
    bare = type(fl)(fl.time, fl.fluxes, fl.errors, fl.apertures)
    fig = plots.lightcurve_figure(bare.autodiff(), binned_dt=None)
    assert len(fig.axes) == 1
    assert _png_ok(plots.save_figure(fig, tmp_path / "lc.png"), min_size=5_000)


def test_reference_figure_marks_target_and_comparisons(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(100, 5, (120, 160))
    yy, xx = np.mgrid[:120, :160]
    coords = np.array([[40.0, 30.0], [100.0, 80.0], [130.0, 20.0], [20.0, 100.0]])
    for x, y in coords:
        image += 2000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8)

    class Frame:  # what reference_figure reads from an Image
        data = image
        sources = Sources(coords)
        fwhm = 3.3
        aperture = None

    fig = plots.reference_figure(Frame(), 0, [1, 2, 3])
    ax = fig.axes[0]
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["C1", "C2", "C3", "T"]
    assert len(ax.patches) == 4
    assert ax.patches[-1].center == (40.0, 30.0)  # target drawn last, on top
    assert _png_ok(plots.save_figure(fig, tmp_path / "ref.png"), min_size=5_000)
    # coordinates instead of indices, on a bare array
    fig2 = plots.reference_figure(image, (40.0, 30.0), coords[1:])
    assert len(fig2.axes[0].patches) == 4
    with pytest.raises(ValueError, match="need an image with sources"):
        plots.reference_figure(image, 0, [1])
    with pytest.raises(ValueError, match="2-D"):
        plots.reference_figure(np.zeros(5), (1.0, 1.0), [])


def test_fluxes_plot_and_errorbar_on_given_axes():
    from matplotlib.figure import Figure
    fl, _ = synthetic(33, n_frames=100)
    d = fl.autodiff()
    ax = Figure().subplots()
    assert d.plot(ax, binned=0.01) is ax
    assert len(ax.lines) >= 2  # points and binned
    ax2 = Figure().subplots()
    d.errorbar(ax2)
    assert ax2.containers  # error bars drawn


def test_save_figure_needs_existing_folder(tmp_path):
    from matplotlib.figure import Figure
    with pytest.raises(OutputError):
        plots.save_figure(Figure(), tmp_path / "nope" / "x.png")
