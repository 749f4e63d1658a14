"""`reduce report ARCHIVE`: an index.html over every group product found under a folder."""
from __future__ import annotations

import click


@click.command()
@click.argument("archive", type=click.Path(file_okay=False))
@click.option("--refresh", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="The index reloads itself every SECONDS (a night still being reduced).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def report(archive, refresh, quiet):
    """Write ARCHIVE/index.html: every group product under ARCHIVE (found by its provenance .json)
    with target, night, filter, frames, scatter and flags, linking each group's page (.html).

    \b
    Exit status: 0 written, 1 no product found, 2 ARCHIVE is not a folder.
    """
    from ..figures.archive import write_report

    path, products = write_report(archive, refresh=refresh)
    if not quiet:
        nights = len({str(p.observation.get("date") or p.path.parent) for p in products})
        click.echo(f"wrote {path}: {len(products)} group(s) over {nights} night(s)")
