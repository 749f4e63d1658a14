"""`reduce run RECIPE NIGHT`: reduce every light group of a night to light curves."""
from __future__ import annotations

import json
import sys

import click

from ..core.errors import UsageError

EPILOG = """\b
Outputs (in OUTDIR, default NIGHT/reduced), per light group <date>_<telescope>_<target>_<filter>:
  .csv / .fits   light-curve table (time JD UTC mid-exposure, bjd_tdb, flux, flux_err, airmass,
                 fwhm, sky, dx, dy, x, y, flag, file); the FITS file also holds every star's raw
                 fluxes at every aperture and the comparison weights
  .png           differential light curve (raw and binned) with per-frame diagnostics
  _reference.png reference frame with the target and comparison stars marked
  .json          provenance: recipe, versions, inputs with checksums, calibration, choices, flags

\b
Exit status: 0 success, 1 failed, 2 usage or recipe error,
             3 finished with some frames or groups skipped (flagged).
"""


def _parse_target(value: str | None):
    """--target N | X,Y | "RA DEC" -> a target override understood by the recipe layer."""
    if value is None:
        return None
    from ..recipe.fields import target_from_string

    try:
        return target_from_string(value)
    except ValueError as e:
        raise UsageError(f"--target {value!r}: {e}")


@click.command(epilog=EPILOG)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("night", type=click.Path(file_okay=False))
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: NIGHT/reduced).")
@click.option("--target", default=None,
              help="Target: N (index in the reference's source list), X,Y (pixels on the reference) "
                   "or \"RA DEC\" (degrees or sexagesimal; needs a WCS).")
@click.option("--reference", default=None, help="Reference frame: first | middle | best | N.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Instrument/site configuration YAML (see sample_config.yaml).")
@click.option("--index", "index_path", type=click.Path(dir_okay=False), default=None,
              help="Where the FITS index lives (default NIGHT/.reduce/index.sqlite).")
@click.option("--depth", type=int, default=None, help="Folder depth to scan (default: unlimited).")
@click.option("--dry-run", is_flag=True, help="Print the plan (groups, calibration matched, outputs) and stop.")
@click.option("--summary-json", type=click.Path(dir_okay=False), default=None,
              help="Write a machine-readable summary of the run to this file.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also log to this file.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first unexpected error (for debugging).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(recipe, night, outdir, target, reference, config_path, index_path, depth, dry_run, summary_json,
        log_file, fail_fast, quiet, verbose):
    """Reduce every light group of NIGHT with RECIPE (see `reduce validate`, `reduce blocks`).

    For each light group (night date, telescope, filter, target) the matching calibration frames
    are selected (same telescope and size; flats of the same filter; darks scaled from the nearest
    exposure; the nearest night when several are present), a reference frame is built, every frame
    is measured, and the differential light curve of the target is written.
    """
    from ..config import load_config
    from ..console import get_console, setup_logging
    from ..recipe import load_recipe

    setup_logging(-1 if quiet else (1 if verbose else 0), log_file)
    config = load_config(config_path)
    spec = load_recipe(recipe)
    target_override = _parse_target(target)
    if target_override is not None or reference is not None:
        try:
            spec = spec.with_overrides(target=target_override, reference=reference)
        except ValueError as e:
            raise UsageError(str(e))
    from pathlib import Path

    nightp = Path(night)
    if not nightp.is_dir():
        raise UsageError(f"night folder not found: {night}")
    console = get_console()
    if dry_run:
        from ..runner import plan_night

        plans, fm = plan_night(nightp, spec, config=config, outdir=outdir, index=index_path, depth=depth)
        _print_plan(console, plans, spec, fm)
        return 0
    from ..runner import run_night

    report = run_night(nightp, spec, config=config, outdir=outdir, index=index_path, depth=depth,
                       show_progress=not quiet, fail_fast=fail_fast)
    if not quiet:
        _print_report(console, report)
    if summary_json:
        from ..io.atomic import atomic_write

        with atomic_write(summary_json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    return report.exit_code


def _print_plan(console, plans, spec, fm):
    from rich.table import Table

    if not plans:
        console.print("No light groups found: nothing would be reduced.")
        return
    t = Table(title=f"Plan: {len(plans)} light group(s)")
    for col in ("group", "frames", "bias", "darks", "flats", "reference", "outputs"):
        t.add_column(col)
    for p in plans:
        d = p.describe()
        t.add_row(d["group"], str(d["frames"]), str(d["bias"]), str(d["darks"]), str(d["flats"]),
                  str(spec.reference), d["outputs"] + ".*")
    console.print(t)
    for p in plans:
        for reason in p.describe()["reasons"]:
            console.print(f"  {p.group.label}: {reason}")
    if fm.unreadable:
        console.print(f"[yellow]{len(fm.unreadable)} unreadable file(s) would be ignored[/]")


def _print_report(console, report):
    from rich.table import Table

    t = Table(title=f"reduce run: {len(report.groups)} group(s) in {report.seconds:.1f} s")
    for col in ("group", "status", "frames", "flagged", "aperture (px)", "comparisons", "rms"):
        t.add_column(col)
    for g in report.groups:
        t.add_row(g.plan.group.label, g.status if g.status == "done" else f"[red]{g.status}[/]",
                  str(g.n_frames), str(len(g.flagged)),
                  "" if g.aperture is None else f"{g.aperture:.2f}",
                  ",".join(map(str, g.comparisons[:8])) + ("…" if len(g.comparisons) > 8 else ""),
                  "" if g.rms is None else f"{g.rms:.2e}")
    console.print(t)
    for g in report.groups:
        if g.status != "done":
            console.print(f"[red]{g.plan.group.label}: {g.message}[/]")
        for path in g.outputs:
            console.print(f"  wrote {path}")
        reasons = {}
        for _, _, reason in g.flagged:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            console.print(f"  [yellow]{n} frame(s) flagged: {reason}[/]")
    if report.unreadable:
        console.print(f"[yellow]{len(report.unreadable)} unreadable file(s) ignored (reduce scan --errors)[/]")
