"""Command-line interface: a thin layer over the Python API.

The root group owns global options; each sub-command lives in its own module and is imported
only when invoked, so ``reduce --help`` stays fast. Expected failures (``ReduceError``) print a
one-line message and exit with their code; only unexpected errors show a traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

__all__ = ["main", "cli"]

# command name -> (module, attribute, one-line help shown by `reduce --help`)
COMMANDS = {
    "scan": ("reduce.cli.scan", "scan", "Index the FITS headers of a night and print its groups."),
    "simulate": ("reduce.cli.simulate", "simulate", "Write a realistic synthetic night with known truth."),
    "run": ("reduce.cli.run", "run", "Reduce every light group of a night with a recipe."),
    "validate": ("reduce.cli.recipes", "validate", "Check a recipe without running it."),
    "blocks": ("reduce.cli.recipes", "blocks_cmd", "List the blocks a recipe can use, with parameters."),
    "recipes": ("reduce.cli.recipes", "recipes_cmd", "List the recipes installed with reduce."),
    "report": ("reduce.cli.report", "report", "Write an index.html over every group product of a folder."),
    "fit": ("reduce.cli.fit", "fit", "Fit a transit, or time a minimum, on a light-curve product."),
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when it is used."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)
                if self.get_command(ctx, name) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reduce", prog_name="reduce")
def cli():
    """reduce: raw FITS frames of a night in, a calibrated differential light curve out.

    \b
    Typical night:
      reduce simulate ./night --n-images 50      # a synthetic night to try things on
      reduce scan ./night                         # what is in the folder
      reduce run recipes/default.yaml ./night     # light curves in ./night/reduced
    """


def main(argv=None):
    """Entry point of the ``reduce`` console script."""
    from ..model.errors import ReduceError

    try:
        rv = cli.main(args=argv, prog_name="reduce", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(_interrupted(argv, "Aborted"), err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except ReduceError as e:
        from ..console import safe_text

        click.secho(f"Error: {safe_text(e, lines=True)}", fg="red", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo(_interrupted(argv, "Interrupted"), err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


def _interrupted(argv, what: str) -> str:
    """What Ctrl-C left behind: for `reduce run`, that the previous outputs are intact (each file
    is replaced only once complete) and the next run redoes only what was not finished."""
    args = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in args if not a.startswith("-")), None)
    if command != "run":
        return f"{what}."
    return (f"{what}: the previous outputs are intact (an output is replaced only once complete); "
            "the groups finished before the interruption are saved, and the next run redoes the others.")
