"""Figures: light curve with diagnostics and the reference frame render to real PNG files."""
from __future__ import annotations

import re

import numpy as np
import pytest

from reduce.figures import plots
from reduce.model.image import Sources
from reduce.io.atomic import OutputError

from .lightcurve.test_ensemble import synthetic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_ok(path, min_size=15_000):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > min_size


def test_lightcurve_figure_png(tmp_path):
    fl, _ = synthetic(31, n_frames=300)
    d = fl.autodiff()
    fig = plots.lightcurve_figure(d, binned_dt=0.005)
    assert len(fig.axes) == 5  # light curve + fwhm, sky, airmass, shift (UT: a child axis on top)
    assert fig.axes[0].get_ylabel() == "differential flux"
    assert fig.axes[4].get_xlabel() == "JD UTC - 2460000"  # no BJD_TDB given: JD UTC, said so
    out = plots.save_figure(fig, tmp_path / "lc.png")
    assert _png_ok(out)
    assert [p.name for p in tmp_path.iterdir()] == ["lc.png"]  # no temp file left


def test_lightcurve_figure_draws_what_an_observer_needs():
    """Title (target, date, telescope, filter, aperture, comparisons), BJD_TDB axis with UT hours
    on top, flagged frames as distinct markers, a legend that covers no data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fl, _ = synthetic(34, n_frames=120)
    d = fl.mask(np.arange(120) % 40 != 7, reason="test")  # 3 frames left out
    d = d.autodiff()
    bjd = d.time + 0.0008  # BJD_TDB - JD UTC: ~69 s + light travel
    d = d._replace(data={**d.data, "bjd_tdb": bjd})
    info = {"target": "WASP-12", "date": "2024-03-15", "telescope": "T60", "filter": "r'"}
    fig = plots.lightcurve_figure(d, binned_dt=0.01, info=info)
    FigureCanvasAgg(fig).draw()
    title = fig._suptitle.get_text()
    for part in ("WASP-12", "2024-03-15", "T60", "filter r'", f"r = {d.aperture_radius:.1f} px",
                 f"{len(d.comparisons)} comparisons"):
        assert part in title, (part, title)
    ax = fig.axes[0]
    t0 = np.floor(bjd.min())
    assert fig.axes[4].get_xlabel() == f"BJD_TDB - {t0:.0f}"
    frames = next(ln for ln in ax.lines if ln.get_label() == "frames" or ln.get_marker() == ".")
    assert np.allclose(np.sort(frames.get_xdata()), np.sort(bjd - t0))
    # UT on top: a secondary axis whose ticks read hh:mm at the frames' UT
    top = [c for c in ax.child_axes if c.get_xlabel() == "UT"]
    assert len(top) == 1
    ut = ((d.time[0] - 0.5) % 1) * 24
    forward = top[0]._functions[0]
    assert forward(bjd[0] - t0) % 24 == pytest.approx(ut, abs=1e-6)
    ticks = [t.get_text() for t in top[0].get_xticklabels() if t.get_text()]
    assert ticks and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks)
    # flagged frames: one marker each, distinct from the frames
    flagged = [ln for ln in ax.lines if ln.get_label().startswith("flagged")]
    assert len(flagged) == 1 and flagged[0].get_label() == "flagged (3)"
    assert flagged[0].get_marker() == "x" and len(flagged[0].get_xdata()) == 3
    rejected = np.array([r["time"] for r in d.meta["rejected"]]) + 0.0008 - t0
    assert np.allclose(np.sort(flagged[0].get_xdata()), np.sort(rejected))
    # the legend is outside the data area
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"frames", "flagged (3)"}


def test_lightcurve_figure_without_diagnostics(tmp_path):
    fl, _ = synthetic(32, n_frames=60)
    bare = type(fl)(fl.time, fl.fluxes, fl.errors, fl.apertures)
    fig = plots.lightcurve_figure(bare.autodiff(), binned_dt=None)
    assert len(fig.axes) == 1
    assert _png_ok(plots.save_figure(fig, tmp_path / "lc.png"), min_size=5_000)


def test_reference_figure_labels_every_star_and_draws_apertures_to_scale(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(100, 5, (120, 160))
    yy, xx = np.mgrid[:120, :160]
    coords = np.array([[40.0, 30.0], [100.0, 80.0], [130.0, 20.0], [20.0, 100.0], [70.0, 60.0]])
    for x, y in coords:
        image += 2000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8)

    class Frame:  # what reference_figure reads from an Image
        data = image
        sources = Sources(coords)
        fwhm = 3.3
        aperture = None

    fig = plots.reference_figure(Frame(), 0, [1, 2], radius=6.5, annulus=(16.5, 26.4),
                                 filename="night_0001.fits")
    ax = fig.axes[0]
    labels = {t.get_text(): t for t in ax.texts}
    assert set(labels) == {"0 target", "1", "2", "3", "4"}  # every measured star, by index
    assert labels["3"].get_color() != labels["1"].get_color() != labels["0 target"].get_color()
    circles = {(tuple(p.center), round(p.radius, 3)) for p in ax.patches}
    for x, y in coords:  # the aperture, to scale, around every star
        assert ((x, y), 6.5) in circles
    assert ((40.0, 30.0), 16.5) in circles and ((40.0, 30.0), 26.4) in circles  # target's annulus
    assert len(ax.patches) == 5 + 2
    title = ax.get_title()
    assert "night_0001.fits" in title and "aperture r = 6.5 px" in title and "16.5-26.4 px" in title
    assert "C<index>" not in title
    assert _png_ok(plots.save_figure(fig, tmp_path / "ref.png"), min_size=5_000)
    # coordinates instead of indices, on a bare array
    fig2 = plots.reference_figure(image, (40.0, 30.0), coords[1:])
    assert len(fig2.axes[0].patches) == 5 and "target" in {t.get_text() for t in fig2.axes[0].texts}
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
