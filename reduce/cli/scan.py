"""``reduce scan NIGHT``: index the FITS headers of a night and print its groups or files."""
from __future__ import annotations

import sqlite3

import click

from ..model.errors import ReduceError

__all__ = ["scan"]

EPILOG = """\b
Exit status:
  0  every FITS file is a readable frame
  1  some files or folders were skipped: unreadable (zero-byte, truncated, not
     FITS, header only, no permission), or no 2-D image (a cube, tables only);
     list them with the reason with --errors; or the scan itself failed
     (disk full, index database locked, cache folder not writable)
  2  usage error (missing folder, bad option, invalid --config file)
"""


def _load_config(path):
    from ..config import load_config
    from ..model.errors import ConfigError
    try:
        return load_config(path)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="'--config'") from None


def _console():
    """The shared console; off a terminal, wide enough that tables do not wrap."""
    from rich.console import Console

    from ..console import get_console
    console = get_console()
    if console.is_terminal:
        return console
    return Console(width=max(console.width, 200), highlight=False, color_system=None)


def _shown_text(value) -> str:
    """A header value or path as a table shows it: control characters escaped, markup inert."""
    from ..console import safe_markup

    return safe_markup(value)


def _shown(items) -> list:
    """Copies of groups/frames whose text fields are safe to print on a terminal (a header value
    with ESC sequences, BEL or NUL must not drive the terminal); csv/json keep the raw values."""
    import dataclasses

    out = []
    for item in items:
        changes = {f.name: _shown_text(v) for f in dataclasses.fields(item)
                   if isinstance(v := getattr(item, f.name), str)}
        out.append(dataclasses.replace(item, **changes))
    return out


def _emit_groups(fm, fmt: str) -> None:
    from ..index import groups as g
    groups = fm.groups()
    if fmt == "json":
        click.echo(g.groups_json(groups))
    elif fmt == "csv":
        click.echo(g.groups_csv(groups), nl=False)
    else:
        _console().print(g.groups_table(_shown(groups), title=_shown_text(fm.folder)))
        _emit_warnings(groups)


def _emit_warnings(groups) -> None:
    """Each group's header and time warnings, once per kind (JSON output carries them per group)."""
    for group in groups:
        for w in group.warnings:
            from ..console import safe_text

            click.echo(safe_text(f"warning: {group.label}: {w['message']}"), err=True)


def _emit_files(fm, fmt: str) -> None:
    from ..index import groups as g
    frames = fm.frames()
    if fmt == "json":
        click.echo(g.files_json(frames))
    elif fmt == "csv":
        click.echo(g.files_csv(frames), nl=False)
    else:
        _console().print(g.files_table(_shown(frames), title=_shown_text(fm.folder)))


def _emit_errors(unreadable, fmt: str) -> None:
    import csv
    import io
    import json
    if fmt == "json":
        click.echo(json.dumps([{"path": p, "reason": r} for p, r in unreadable], indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("path", "reason"))
        w.writerows(unreadable)
        click.echo(buf.getvalue(), nl=False)
    else:
        from rich.table import Table
        t = Table(title="skipped files", header_style="bold")
        t.add_column("path", overflow="fold")
        t.add_column("reason")
        for p, r in unreadable:
            t.add_row(_shown_text(p), _shown_text(r))
        _console().print(t)


@click.command("scan", epilog=EPILOG)
@click.argument("night", type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Sub-folder levels to descend (0: NIGHT only). Default: unlimited.")
@click.option("--files", "list_files", is_flag=True, help="List files instead of groups.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format (csv/json for scripts).")
@click.option("--errors", is_flag=True,
              help="List the skipped files (unreadable, or without a 2-D image) and folders with "
                   "the reason instead of the groups.")
@click.option("--index", "index_path", type=click.Path(dir_okay=False), default=None,
              help="SQLite index file. Default: NIGHT/.reduce/index.sqlite, or a per-user cache "
                   "file ($XDG_CACHE_HOME/reduce/) when NIGHT is read-only.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Instrument configuration YAML (see sample_config.yaml). Default: "
                   "$REDUCE_CONFIG or ~/.config/reduce/config.yaml when present.")
def scan(night, depth, list_files, fmt, errors, index_path, config_path):
    """Index the FITS headers of NIGHT and print its groups.

    Reads headers only (never pixels) of .fits/.fit/.fts files, also .fz and .gz compressed;
    unchanged files are not re-read on the next scan. A group is one night, telescope, filter,
    type (bias/dark/flat/light), target, size and exposure.
    """
    from ..index.manager import WRITING_S, FitsManager

    config = _load_config(config_path)
    try:
        fm = FitsManager(night, depth, index=index_path, config=config,
                         show_progress=fmt == "table")
    except (OSError, sqlite3.Error) as e:  # runtime failures (disk full, database locked): exit 1
        raise ReduceError(f"cannot scan {night}: {e}") from None
    skipped = sorted(fm.unreadable + fm.skipped)
    if errors:
        _emit_errors(skipped, fmt)
    elif len(fm) or fmt != "table":
        (_emit_files if list_files else _emit_groups)(fm, fmt)
    where = f" (depth {depth})" if depth is not None else ""
    if not len(fm) and not skipped:
        click.echo(f"No FITS files (.fits .fit .fts, .fz, .gz) found in {fm.folder}{where}.", err=True)
    elif not len(fm):
        click.echo(f"No usable FITS frame in {fm.folder}{where}.", err=True)
    pending = fm.stats.extra.get("pending", [])
    if pending:  # not skipped: a later scan reads them once they are complete
        click.echo(f"{len(pending)} file(s) still being written (cut short, changed in the last "
                   f"{WRITING_S:g} s), left for the next scan.", err=True)
    if skipped and not errors:
        click.echo(f"{len(skipped)} file(s) or folder(s) skipped ({len(fm.unreadable)} unreadable, "
                   f"{len(fm.skipped)} without a 2-D image); run with --errors to list them "
                   "with the reason.", err=True)
    if skipped:
        click.get_current_context().exit(1)
