"""``reduce simulate DEST``: write a synthetic night (lights, calibration frames, truth.json)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..model.errors import UsageError

__all__ = ["simulate"]


@click.command("simulate")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (same seed, same files).")
@click.option("--n-images", type=int, default=100, show_default=True, help="Number of light frames.")
@click.option("--size", default="600", show_default=True, metavar="N|WxH",
              help="Frame size in pixels: N for N x N, or WIDTHxHEIGHT (e.g. 521x64, a CCD window).")
@click.option("--n-stars", type=int, default=None,
              help="Number of stars, target included, up to one per 10x10 px; from a few hundred on, "
                   "most are faint, as in a crowded field [default: 40 for 600x600, scaled with area].")
@click.option("--signal", type=click.Choice(["sine", "transit", "flat"]), default="sine",
              show_default=True, help="Relative flux injected into the target.")
@click.option("--shift", type=float, default=5.0, show_default=True,
              help="Total pointing drift over the night, in pixels (plus ~0.3 px jitter).")
@click.option("--exptime", type=float, default=60.0, show_default=True, help="Light exposure (s).")
@click.option("--no-calibration", is_flag=True,
              help="No bias/dark/flat frames, and lights without any camera signature.")
@click.option("--dtype", type=click.Choice(["uint16", "float32"]), default="uint16", show_default=True,
              help="Pixel type: uint16 like a camera (BZERO 32768) or float32.")
@click.option("--fwhm", type=float, default=None, metavar="PX",
              help="Median seeing FWHM in pixels, e.g. 10 (defocused) or 1.5 (undersampled: stars "
                   "integrated over each pixel) [default: 3.5-4.2 at random]. With --psf doughnut: "
                   "the ring's outer diameter, at least 8 [default: 12].")
@click.option("--jitter", type=float, default=0.3, show_default=True, metavar="PX",
              help="RMS pointing jitter per axis, in pixels, frame to frame.")
@click.option("--jump", type=float, default=0.0, show_default=True, metavar="PX",
              help="A sudden pointing step of PX pixels at mid-night (guider re-acquisition).")
@click.option("--rotation", type=float, default=0.0, show_default=True, metavar="DEG",
              help="Field rotation over the night, in degrees, about the frame centre.")
@click.option("--twilight", type=float, default=0.0, show_default=True, metavar="MIN",
              help="The night starts in twilight: the sky falls from 24,700 ADU to its night "
                   "level over the first MIN minutes.")
@click.option("--dead-columns", type=int, default=0, show_default=True, metavar="N",
              help="N unilluminated columns at both ends of the frame (bias level even in flats).")
@click.option("--saturated-neighbour", type=float, default=0.0, show_default=True, metavar="PX",
              help="Put a saturated star (3x the target's flux) PX pixels from the target.")
@click.option("--uncalibrated", is_flag=True,
              help="An uncalibrated camera: lights keep their signature (bias pedestal of 300-1000 "
                   "ADU with structure, dark current, hot pixels, smooth vignetting) but no bias, "
                   "dark or flat frame is written.")
@click.option("--hot-pixels", type=float, default=0.0, show_default=True, metavar="FRACTION",
              help="This fraction of the pixels is hot (e.g. 1e-3), each with a dark signal of 50 ADU "
                   "to saturation per light exposure (log-uniform), in lights and darks; 0: the "
                   "camera's own few warm pixels.")
@click.option("--cosmic-rays", type=int, default=0, show_default=True, metavar="N",
              help="N cosmic-ray hits per light frame (single pixels and short tracks, up to the "
                   "saturation level); darks and flats get as many per second of exposure.")
@click.option("--psf", type=click.Choice(["moffat", "doughnut"]), default="moffat", show_default=True,
              help="Star shape: a Moffat, or a defocused 'doughnut' (the image of an obstructed "
                   "pupil, a ring of diameter --fwhm with a dark centre, blurred by 2.5-3 px seeing).")
@click.option("--obstruction", type=float, default=0.4, show_default=True, metavar="FRACTION",
              help="With --psf doughnut: the central obstruction's fraction of the pupil diameter "
                   "(0.2-0.6).")
@click.option("--clouds", type=int, default=0, show_default=True, metavar="N",
              help="N passing clouds: smooth dips of the transparency to 0.3-0.8 of clear, 10-25 min "
                   "long, while the sky rises x1.5-4.")
@click.option("--bayer", type=click.Choice(["RGGB", "GRBG", "GBRG", "BGGR"]), default=None,
              help="A colour sensor: raw colour-filter-array frames with this pattern (header "
                   "BAYERPAT); R, G, B respond ~0.6, 1, 0.5, tinted by each star's colour and the "
                   "sky's.")
@click.option("--wcs", default="all", show_default=True, metavar="all|none|N,M",
              help="Light frames that carry a celestial WCS (as a plate solver writes it): all, "
                   "none (a camera without plate solving), or 0-based frame numbers.")
@click.option("--force", is_flag=True,
              help="Write into a non-empty DEST (a previous simulation there is replaced).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def simulate(dest, seed, n_images, size, n_stars, signal, shift, exptime, no_calibration, dtype,
             fwhm, jitter, jump, rotation, twilight, dead_columns, saturated_neighbour, uncalibrated,
             hot_pixels, cosmic_rays, psf, obstruction, clouds, bayer, wcs, force, quiet):
    """Write a realistic synthetic night with known truth into DEST.

    \b
    DEST/light/SIM-1_V_0001.fits ...      light frames (target near the centre)
    DEST/calibration/bias_001.fits ...    bias, dark and flat frames
    DEST/truth.json                       injected signal, conditions, stars, noise model inputs
    """
    from ..simulations import simulate_night

    if dest.exists() and not dest.is_dir():
        raise UsageError(f"DEST '{dest}' exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise UsageError(f"DEST '{dest}' is not empty; choose a new folder or pass --force to "
                         "replace a previous simulation there")
    size = _parse_size(size)
    t0 = time.perf_counter()
    try:
        truth = simulate_night(dest, seed=seed, n_images=n_images, size=size, n_stars=n_stars,
                               signal=signal, shift=shift, calibration=not no_calibration,
                               dtype=dtype, exptime=exptime, overwrite=force, show_progress=not quiet,
                               fwhm=fwhm, jitter=jitter, jump=jump, rotation=rotation,
                               twilight=twilight, dead_columns=dead_columns,
                               saturated_neighbour=saturated_neighbour,
                               uncalibrated=uncalibrated, hot_pixels=hot_pixels,
                               cosmic_rays=cosmic_rays, psf=psf, obstruction=obstruction,
                               clouds=clouds, bayer=bayer, wcs=wcs)
    except (ValueError, TypeError) as e:
        raise UsageError(_option_names(str(e))) from None
    except OSError as e:
        raise UsageError(f"cannot write into '{dest}': {e.strerror or e}") from None
    if not quiet:
        _summary(dest, truth, time.perf_counter() - t0)


def _parse_size(text: str):
    """``N`` -> N (square) or ``WxH`` -> (W, H); a clear error otherwise."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise UsageError(f"--size must be N or WIDTHxHEIGHT in pixels, e.g. 600 or 521x64 (got {text!r})")
    return values[0] if len(values) == 1 else tuple(values)


def _option_names(message: str) -> str:
    """Turn the API's parameter names in an error message into the CLI's option names."""
    for api, cli in (("uncalibrated=True", "--uncalibrated"), ("calibration=False", "--no-calibration"),
                     ("psf='doughnut'", "--psf doughnut"), ("fwhm is", "--fwhm is")):
        message = message.replace(api, cli)
    for name in ("n_images", "n_stars", "dead_columns", "saturated_neighbour", "hot_pixels",
                 "cosmic_rays", "obstruction", "clouds", "size", "shift", "exptime", "seed", "fwhm",
                 "jitter", "jump", "rotation", "twilight"):
        message = message.replace(f"{name}=", f"--{name.replace('_', '-')} ")
        if message.startswith(name):
            message = f"--{name.replace('_', '-')}" + message[len(name):]
    return message


def _summary(dest: Path, truth: dict, elapsed: float) -> None:
    """A few lines saying what was written where."""
    p, cal = truth["parameters"], truth["calibration"]
    t = truth["target"]
    n_var = sum(truth["stars"]["variable"])
    n_sat = sum(truth["stars"]["saturated"])
    nx, ny = p["size"] if isinstance(p["size"], list) else (p["size"], p["size"])
    click.echo(f"Wrote {p['n_images']} light frames ({nx}x{ny} {p['dtype']}, "
               f"{p['exptime']:g} s, signal '{p['signal']}') to {dest / 'light'}")
    if p["calibration"]:
        click.echo(f"      {len(cal['bias'])} bias, {len(cal['dark'])} dark, {len(cal['flat'])} flat "
                   f"frames to {dest / 'calibration'}")
    click.echo(f"Target: star {t} at x={truth['stars']['x'][t]:.1f}, y={truth['stars']['y'][t]:.1f} "
               f"(frame 0); {p['n_stars']} stars, {n_var} variable, {n_sat} saturated")
    if p.get("conditions"):
        click.echo("Conditions: " + ", ".join(f"{k}={v}" for k, v in p["conditions"].items()))
    click.echo(f"Truth: {dest / 'truth.json'}  ({elapsed:.1f} s)")
