"""`reduce run RECIPE NIGHT`: reduce every light group of a night to light curves."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..model.errors import ReduceError, UsageError

EPILOG = """\b
Outputs (in OUTDIR, default NIGHT/reduced), per light group <date>_<telescope>_<target>_<filter>:
  .csv / .ecsv   light-curve table, one row per file of the group (time JD UTC mid-exposure,
                 bjd_tdb, flux, flux_err, airmass, fwhm, sky, dx, dy, x, y, flag, file); the
                 .ecsv adds a commented block with units and schema
  .fits          the same table with FITS time keywords, observation metadata, the stars
                 (positions, comparison weights) and every star's raw fluxes at every aperture
  _aavso.txt     AAVSO extended format (recipe outputs: aavso: {obscode: ...})
  _exotic.csv    EXOTIC pre-reduced input, BJD_TDB (recipe outputs: exotic: true)
  _exotic_inits.json  EXOTIC's inits file for it (exotic --prereduced -i ...)
  .png           differential light curve (raw and binned) with per-frame diagnostics
  _reference.png reference frame with the target and comparison stars marked
  _comparisons.png each comparison over the ensemble of the others, with its weight
  .reg           DS9 region file: target, comparisons, check star (image pixels, 1-based)
  _stars.csv     per-star measurements, one row per frame per star (outputs: stars: true)
  .json          provenance: recipe, versions, inputs with checksums, calibration, choices, flags
  .html          the group's page: figures, flags, warnings, provenance (one self-contained file)

\b
Target (--target, or the recipe's target: section):
  X,Y            pixels of the night's first light frame (by time; of each
                 target/filter group), as you read them there (0-based;
                 in the recipe: {x: .., y: ..})
  X,Y@FILE       pixels of the light frame FILE (recipe: {x: .., y: .., frame: FILE})
  The position is mapped onto the reference frame through the alignment,
  then snapped to the nearest star detected within 1.5 FWHM (at least 3 px;
  logged with the distance). With no star there, a warning says so and that
  position is measured as given. The provenance (.json) records the given
  position and frame, the mapped and the snapped positions.
  N              star N as labelled in the reference figure (_reference.png),
                 the log, the tables (TARGET) and the provenance: one numbering
  "RA DEC"       sky position through the WCS of any light frame of the group
  auto           the target's coordinates (--coords, the config's targets:),
                 else the header RA/DEC, through the WCS of any light frame; with
                 no WCS the brightest star near the centre is measured as a
                 GUESS: the log, summary and products name it and the run exits 3
  --coords "RA DEC" gives the target's coordinates (BJD_TDB, airmass, RA_OBJ);
  the header RA/DEC is the pointing (RA_PNT/DEC_PNT), used for BJD_TDB only
  when nothing better is known, with a warning.
  Dense fields: only the target and the brightest unsaturated stars
  (AlignReferenceSources max_stars, default 100) are measured on every frame.

\b
Exit status: 0 success (or nothing changed since the last run), 1 failed,
             2 usage or recipe error (also a target off the frame or an
             unwritable -o), 3 finished with some frames, groups or
             nights skipped (flagged, failed or locked) or a target guessed
             (not identified: see Target), 4 the night is being
             reduced by another run (locked; nothing done).

\b
Unattended (cron), e.g. every morning at 08:15 on every night of an archive:
  15 8 * * * reduce run /etc/reduce/default.yaml /data/archive --nights -q \\
      --log-file /var/log/reduce.log --summary-json /var/log/reduce-last.json
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
@click.argument("nights", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--nights", "archive", is_flag=True,
              help="NIGHTS is an archive: every sub-folder holding FITS frames is a night.")
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: NIGHT/reduced, or ./<night name>_reduced when the night is "
                   "read-only; with several nights OUTDIR/<night name>).")
@click.option("--target", default=None,
              help="Target: X,Y (0-based pixels on the night's first light frame, where you read "
                   "it), X,Y@FILE (pixels on the light frame FILE, a name or a path relative to the "
                   "night), N (star N of the reference figure) or \"RA DEC\" (degrees or "
                   "sexagesimal; needs a WCS). See 'Target' below.")
@click.option("--coords", default=None, metavar='"RA DEC"',
              help="The target's sky coordinates, degrees or sexagesimal (\"02:04:10.3 +46:41:16\"): "
                   "used for BJD_TDB, the airmass and RA_OBJ/DEC_OBJ, and to place an automatic "
                   "target through a WCS (the header RA/DEC is only the telescope's pointing).")
@click.option("--reference", default=None, help="Reference frame: first | middle | best | N.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Instrument/site configuration YAML (see sample_config.yaml).")
@click.option("--index", "index_path", type=click.Path(dir_okay=False), default=None,
              help="Where the FITS index lives (default NIGHT/.reduce/index.sqlite; one night only).")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Folder depth to scan (default: unlimited).")
@click.option("-j", "--jobs", type=int, default=None, envvar="REDUCE_JOBS", show_envvar=True,
              help="Worker processes for the frames of a group (default: the number of cores; "
                   "1: in-process, serial). Results are identical whatever the number.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None, envvar="REDUCE_EXECUTOR",
              show_envvar=True,
              help="local: --jobs processes on this machine (default); dask: an existing Dask "
                   "cluster (--scheduler; needs pip install 'reduce[distributed]').")
@click.option("--scheduler", default=None, envvar="REDUCE_SCHEDULER", show_envvar=True,
              help="Dask scheduler address tcp://HOST:PORT (implies --executor dask). Without "
                   "--executor/--jobs/--scheduler, the config file's `execution` section decides.")
@click.option("--force", is_flag=True, help="Redo groups even when nothing changed since the last run.")
@click.option("--dry-run", is_flag=True, help="Print the plan (groups, calibration matched, outputs) and stop.")
@click.option("--summary-json", type=click.Path(dir_okay=False), default=None,
              help="Write a machine-readable summary of the run to this file.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also log to this file.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first unexpected error (for debugging).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(recipe, nights, archive, outdir, target, coords, reference, config_path, index_path, depth, jobs, executor,
        scheduler, force, dry_run, summary_json, log_file, fail_fast, quiet, verbose):
    """Reduce every light group of each NIGHT with RECIPE (see `reduce validate`, `reduce blocks`).

    For each light group (night date, telescope, filter, target) the matching calibration frames
    are selected (same telescope and size; flats of the same filter; darks scaled from the nearest
    exposure; the nearest night when several are present), a reference frame is built, every frame
    is measured, and the differential light curve of the target is written.

    Safe to run from cron: a night is reduced by one run at a time (a second run exits with status
    4), groups whose frames, calibration, recipe and configuration did not change since their last
    reduction are skipped (exit 0; --force redoes them), and outputs are replaced atomically.
    """
    from ..config import load_config
    from ..console import check_output_file, get_console, setup_logging

    for option, path in (("--summary-json", summary_json), ("--log-file", log_file)):
        check_output_file(path, option)  # before any work, not after the whole reduction
    setup_logging(-1 if quiet else (1 if verbose else 0), log_file)
    from ..run import RecipeSource

    source = RecipeSource(recipe, target=target, reference=reference, coords=coords)
    if target is not None:
        _parse_target(target)  # a malformed --target is a usage error before any work
    if coords is not None:
        from ..recipe.targets import coords_from_string

        try:
            coords_from_string(coords)
        except ValueError as e:
            raise UsageError(f"--coords {coords!r}: {e}") from None
    source.validate_early()  # a bad recipe is reported before any night is scanned
    night_paths = _nights(nights, archive, depth)
    if index_path and len(night_paths) > 1:
        raise UsageError("--index applies to a single night (each night keeps its own index)")
    config = load_config(config_path)
    console = get_console()
    if dry_run:
        from ..run import plan_night

        spec = source.spec
        for n in night_paths:
            plans, fm = plan_night(n, spec, config=config, outdir=_single_outdir(outdir, n, night_paths),
                                   index=index_path, depth=depth)
            _print_plan(console, plans, spec, fm)
        return 0
    from ..run import run_nights

    try:
        _check_outdir_option(outdir)
        runner_executor = _make_executor(executor, jobs, scheduler, config.execution)
        with runner_executor:
            report = run_nights(night_paths, source, config=config, outdir=outdir, index=index_path,
                                depth=depth, show_progress=not quiet, fail_fast=fail_fast,
                                executor=runner_executor, force=force)
    except ReduceError as e:
        if summary_json:
            _write_json(summary_json, {"exit_status": e.exit_code, "error": str(e),
                                       "nights": [str(n) for n in night_paths]})
        raise
    if not quiet:
        _print_report(console, report)
    if summary_json:
        _write_json(summary_json, report.to_dict())
    return report.exit_code


def _check_outdir_option(outdir) -> None:
    """A -o folder that cannot be written is a usage error (exit 2), said before any work."""
    if outdir:
        from ..run.nights import check_outdir

        problem = check_outdir(Path(outdir))
        if problem:
            raise UsageError(problem)


def _nights(nights, archive: bool, depth) -> list:
    """The night folders to reduce: the arguments, or the sub-folders of one archive (--nights)."""
    from pathlib import Path

    if archive:
        if len(nights) != 1:
            raise UsageError("--nights takes exactly one ARCHIVE folder")
        from ..run import find_nights

        return find_nights(nights[0], depth=depth)
    paths = [Path(n) for n in nights]
    for p in paths:
        if not p.is_dir():
            raise UsageError(f"night folder not found: {p}")
    return paths


def _single_outdir(outdir, night, nights):
    from ..run.plan import output_folders

    return output_folders(nights, outdir)[nights.index(night)]


def _make_executor(kind, jobs, scheduler, settings=None):
    """The executor from the options (or their REDUCE_* variables); when none of them is given,
    from the config file's ``execution`` section (``settings``)."""
    from ..core.executors import make_executor

    groups = getattr(settings, "groups_at_once", None)
    if kind is None and jobs is None and scheduler is None and settings is not None:
        kind, jobs, scheduler = settings.executor, settings.jobs, settings.scheduler
    if kind == "local" and scheduler and jobs is None:
        scheduler = None  # an inherited REDUCE_SCHEDULER does not override an explicit local choice
    if kind == "dask" or (kind is None and scheduler):
        if jobs is not None:
            import logging

            logging.getLogger("reduce").warning("--jobs is ignored with the Dask executor (the cluster "
                                                "has its own workers)")
        return make_executor("dask", scheduler=scheduler, groups_at_once=groups)
    return make_executor("local", jobs=jobs)


def _write_json(path, data) -> None:
    from ..io.atomic import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, default=str)


def _plan_width(console, table) -> int | None:
    """Piped to a file (not a terminal, no COLUMNS), the plan is as wide as its cells: rich's
    80 columns would cut the group names and output paths short."""
    import os

    if console.is_terminal or os.environ.get("COLUMNS"):
        return None  # the terminal's width, or the one asked for
    from rich.measure import Measurement

    wide = Measurement.get(console, console.options.update_width(100_000), table).maximum
    return wide if wide > console.width else None


def _print_plan(console, plans, spec, fm):
    from rich.table import Table

    from ..console import safe_markup

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
    wide = _plan_width(console, t)
    if wide:
        from rich.console import Console

        Console(file=console.file, width=wide, highlight=False, soft_wrap=False).print(t)
    else:
        console.print(t)
    for p in plans:
        for reason in p.describe()["reasons"]:
            console.print(f"  {safe_markup(p.group.label)}: {safe_markup(reason)}", soft_wrap=True)
        for w in getattr(p.group, "warnings", ()):
            console.print(f"  [yellow]{safe_markup(p.group.label)}: warning: {safe_markup(w['message'])}[/]",
                          highlight=False, soft_wrap=True)
    from ..run.outputs import export_problems

    for p in plans:
        for problem in export_problems(spec, p.group):
            console.print(f"  [yellow]{safe_markup(p.group.label)}: export: {safe_markup(problem)}; the light "
                          "curve and other products would be written[/]", highlight=False, soft_wrap=True)
    for p in plans:
        for path, reason, *_ in p.unmeasured:
            console.print(f"  {safe_markup(p.group.label)}: {safe_markup(Path(str(path)).name)} cannot be "
                          f"measured ({safe_markup(reason)}): "
                          "a row flagged UNREADABLE", soft_wrap=True)
    from ..run.plan import products_of, unaccounted

    stray = unaccounted(fm, plans, products_of(Path(fm.folder), plans[0].outdir))
    if stray:
        console.print(f"[yellow]{len(stray)} unreadable or image-less file(s) outside any light group "
                      "would be ignored[/]")


_SUMMARY_COLUMNS = ("group", "status", "frames", "flagged", "aperture px", "comps", "p2p scatter (ppt)")


def _print_report(console, report):
    """The run's one summary: the groups reduced (a table when it fits the console, else one
    block per group, so labels are never broken mid-word), then what was skipped and why."""
    from rich.text import Text

    from ..console import safe_text

    done = report.processed
    if done:
        several = len({g.night for g in done}) > 1  # the same group label can come from each night
        rows = [_summary_row(g, several) for g in done]
        header = (["night"] if several else []) + list(_SUMMARY_COLUMNS)
        title = f"reduce run: {len(done)} group(s) in {report.seconds:.1f} s"
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        if sum(widths) + 3 * len(widths) + 1 <= console.width:
            _summary_table(console, title, header, rows)
        else:
            _summary_list(console, title, header, rows)
    for g in done:
        if g.status != "done":
            console.print(Text(safe_text(f"{g.plan.group.label}: {g.message}"), style="red"), soft_wrap=True)
        _print_target(console, g)
        for path in g.outputs:
            console.print(Text(safe_text(f"  wrote {path}")), soft_wrap=True)
        unmeasured = getattr(g.plan, "unmeasured", [])
        names = {Path(str(u[0])).name for u in unmeasured}
        from ..model.reasons import group_reasons

        for kind in group_reasons([f for f in g.flagged if Path(str(f[0])).name not in names]):
            console.print(Text(safe_text(f"  {kind['frames']} frame(s) flagged: {kind['reason']}"), style="yellow"),
                          soft_wrap=True)
        for path, reason, *_ in unmeasured:
            console.print(Text(safe_text(f"  not measured (flagged UNREADABLE): {Path(str(path)).name}: {reason}"),
                               style="yellow"), soft_wrap=True)
        for w in g.warnings:  # every warning of the group's log, as in --summary-json and the provenance
            console.print(Text(safe_text(f"  warning: {w.get('message', '')}"), style="yellow"), soft_wrap=True)
    if report.unchanged:
        what = "Nothing to do: " if not done else ""
        console.print(f"{what}{len(report.unchanged)} group(s) unchanged since the last run, skipped "
                      "(--force redoes them)", soft_wrap=True)
    for n in report.nights:
        if n.pending:  # not a fault: the camera or a copy is still writing them
            console.print(Text(safe_text(f"{n.night}: {len(n.pending)} file(s) still being written, left for "
                                    f"the next pass: {', '.join(Path(p).name for p in n.pending[:5])}"
                                    + (" ..." if len(n.pending) > 5 else ""))), soft_wrap=True)
        if n.status in ("locked", "failed") and n.message:
            console.print(Text(safe_text(f"{n.night}: {n.message}"), style="red"), soft_wrap=True)
    for message in report.warnings:  # outside any group: scanning, output folders, locks
        console.print(Text(safe_text(f"warning: {message}"), style="yellow"), soft_wrap=True)
    if report.unreadable:
        console.print(Text(f"{len(report.unreadable)} unreadable or image-less file(s) outside any light "
                           "group, ignored:", style="yellow"), soft_wrap=True)
        for path, reason in report.unreadable:
            console.print(Text(safe_text(f"  {path}: {reason}"), style="yellow"), soft_wrap=True)


def _print_target(console, g) -> None:
    """The measured star, by its one index (reference figure, tables, --target N); a guess in
    yellow with the fix."""
    from rich.text import Text

    t = g.target or {}
    if t.get("index") is None:
        return
    x, y = t.get("reference_xy") or (float("nan"), float("nan"))
    line = f"  target: star #{t['index']} at ({x:.1f}, {y:.1f}) on the reference"
    if getattr(g, "target_guessed", False):
        line += (f", NOT identified ({t.get('chosen_by', 'a guess')}): give --target X,Y, or "
                 f"--target {t['index']} if it is the target")
    console.print(Text(line, style="yellow" if getattr(g, "target_guessed", False) else ""), soft_wrap=True)


def _summary_row(g, several: bool) -> list[str]:
    """One group's summary cells (plain text); scatter = point-to-point scatter in parts per thousand."""
    from ..console import safe_text

    return ([safe_text(Path(str(g.night)).name)] if several else []) + [
        safe_text(g.plan.group.label), g.status, str(g.n_frames), str(len(g.flagged)),
        "" if g.aperture is None else f"{g.aperture:.2f}", str(len(g.comparisons)),
        "" if g.scatter is None else f"{1e3 * g.scatter:.2f}"]


def _summary_table(console, title, header, rows) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title)
    for col in header:
        t.add_column(col, no_wrap=True)
    status = header.index("status")
    for r in rows:
        t.add_row(*(Text(c, style="red" if i == status and c != "done" else "") for i, c in enumerate(r)))
    console.print(t)


def _summary_list(console, title, header, rows) -> None:
    """The summary for a narrow console or a log: the label on its own line, then key: value."""
    from rich.text import Text

    console.print(Text(title, style="bold"))
    first = header.index("group")
    for r in rows:
        console.print(Text(r[first], style="bold"), soft_wrap=True)
        cells = [f"{h}: {v}" for i, (h, v) in enumerate(zip(header, r)) if i != first and v != ""]
        console.print(Text("  " + " | ".join(cells)), soft_wrap=True)
