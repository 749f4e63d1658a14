"""``reduce simulate DEST``: write a synthetic night (lights, calibration frames, truth.json)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..core.errors import UsageError

__all__ = ["simulate"]


@click.command("simulate")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (same seed, same files).")
@click.option("--n-images", type=int, default=100, show_default=True, help="Number of light frames.")
@click.option("--size", type=int, default=600, show_default=True, help="Frame width = height in pixels.")
@click.option("--n-stars", type=int, default=None,
              help="Number of stars, target included [default: 40 for 600x600, scaled with area].")
@click.option("--signal", type=click.Choice(["sine", "transit", "flat"]), default="sine",
              show_default=True, help="Relative flux injected into the target.")
@click.option("--shift", type=float, default=5.0, show_default=True,
              help="Total pointing drift over the night, in pixels (plus ~0.3 px jitter).")
@click.option("--exptime", type=float, default=60.0, show_default=True, help="Light exposure (s).")
@click.option("--no-calibration", is_flag=True,
              help="No bias/dark/flat frames, and lights without any camera signature.")
@click.option("--dtype", type=click.Choice(["uint16", "float32"]), default="uint16", show_default=True,
              help="Pixel type: uint16 like a camera (BZERO 32768) or float32.")
@click.option("--force", is_flag=True,
              help="Write into a non-empty DEST (a previous simulation there is replaced).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def simulate(dest, seed, n_images, size, n_stars, signal, shift, exptime, no_calibration, dtype,
             force, quiet):
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
    t0 = time.perf_counter()
    try:
        truth = simulate_night(dest, seed=seed, n_images=n_images, size=size, n_stars=n_stars,
                               signal=signal, shift=shift, calibration=not no_calibration,
                               dtype=dtype, exptime=exptime, overwrite=force, show_progress=not quiet)
    except (ValueError, TypeError) as e:
        raise UsageError(_option_names(str(e))) from None
    except OSError as e:
        raise UsageError(f"cannot write into '{dest}': {e.strerror or e}") from None
    if not quiet:
        _summary(dest, truth, time.perf_counter() - t0)


def _option_names(message: str) -> str:
    """Turn the API's parameter names in an error message into the CLI's option names."""
    for name in ("n_images", "n_stars", "size", "shift", "exptime", "seed"):
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
    click.echo(f"Wrote {p['n_images']} light frames ({p['size']}x{p['size']} {p['dtype']}, "
               f"{p['exptime']:g} s, signal '{p['signal']}') to {dest / 'light'}")
    if p["calibration"]:
        click.echo(f"      {len(cal['bias'])} bias, {len(cal['dark'])} dark, {len(cal['flat'])} flat "
                   f"frames to {dest / 'calibration'}")
    click.echo(f"Target: star {t} at x={truth['stars']['x'][t]:.1f}, y={truth['stars']['y'][t]:.1f} "
               f"(frame 0); {p['n_stars']} stars, {n_var} variable, {n_sat} saturated")
    click.echo(f"Truth: {dest / 'truth.json'}  ({elapsed:.1f} s)")
