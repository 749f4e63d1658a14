"""``reduce validate RECIPE...`` and ``reduce blocks [NAME]``: check recipes, list the blocks.

Both read the same block registry the runner uses, so what validates here builds at run time.
"""
from __future__ import annotations

import click

__all__ = ["validate", "blocks_cmd"]


@click.command("validate")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.pass_context
def validate(ctx, recipes):
    """Check RECIPE files without running them.

    Every problem is printed as FILE:LINE: MESSAGE (HINT); the exit status is 0 when all recipes
    are valid and 2 otherwise.
    """
    from ..core.errors import RecipeError
    from ..recipe import load_recipe

    failed = 0
    for path in recipes:
        try:
            spec = load_recipe(path)
        except RecipeError as e:
            failed += 1
            for message in e.messages:
                click.echo(message, err=True)
            n = len(e.messages)
            click.secho(f"{path}: {n} problem{'s' if n != 1 else ''}", fg="red", err=True)
            continue
        click.echo("\n".join(spec.summary()))
    if failed:
        ctx.exit(2)


@click.command("blocks")
@click.argument("name", required=False)
def blocks_cmd(name):
    """List the blocks a recipe can use, or show block NAME in full."""
    from ..console import get_console
    from ..core.block import registry

    reg = registry()
    console = get_console()
    if name is None:
        console.print(_overview(reg))
        return
    if name not in reg:
        from ..core.errors import UsageError
        from ..recipe._yaml import close_match_hint

        hint = close_match_hint(name, reg) or "run 'reduce blocks' to list them"
        raise UsageError(f"unknown block {name!r} ({hint})")
    for renderable in _details(reg[name]):
        console.print(renderable, soft_wrap=isinstance(renderable, str))


def _parameter_rows(cls):
    """(name, type, default, origin) for each constructor parameter."""
    import inspect

    from ..recipe.coerce import describe, resolve_annotations, runtime_parameters

    hints = resolve_annotations(cls)
    runtime = set(runtime_parameters(cls))
    rows = []
    for pname, p in cls.parameters().items():
        default = "required" if p.default is inspect.Parameter.empty else repr(p.default)
        rows.append((pname, describe(hints.get(pname, p.annotation)), default,
                     "runner" if pname in runtime else "recipe"))
    return rows


def _first_line(cls) -> str:
    """The summary of a block's docstring (its first paragraph)."""
    import inspect

    doc = (inspect.getdoc(cls) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())  # the first paragraph, unwrapped


def _overview(reg):
    """One row per block: name, first docstring line, recipe-settable parameters."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Blocks (reduce blocks NAME for details)", show_lines=False)
    table.add_column("block", style="bold", no_wrap=True)
    table.add_column("does")
    table.add_column("parameters (recipe)")
    for bname, cls in reg.items():
        params = [f"{n}: {t} = {d}" if d != "required" else f"{n}: {t} (required)"
                  for n, t, d, origin in _parameter_rows(cls) if origin == "recipe"]
        table.add_row(Text(bname), Text(_first_line(cls)), Text("\n".join(params) or "-"))
    return table


def _escape(text: str) -> str:
    """Text printed as is (no rich markup), wrapped by the terminal rather than by rich."""
    from rich.markup import escape

    return escape(text)


def _details(cls):
    """The full docstring, requires/provides and a parameter table."""
    import inspect

    from rich.table import Table
    from rich.text import Text

    out = [Text(cls.__name__, style="bold"), _escape(inspect.getdoc(cls) or "(no documentation)")]
    flags = [f"requires: {', '.join(cls.requires) or '-'}", f"provides: {', '.join(cls.provides) or '-'}"]
    if getattr(cls, "collector", False):
        flags.append("collector (runs on every frame, including rejected ones)")
    out.append(_escape("\n".join(flags)))
    table = Table(title="parameters")
    for col in ("name", "type", "default", "set by"):
        table.add_column(col)
    for row in _parameter_rows(cls):
        table.add_row(*(Text(cell) for cell in row))
    out.append(table)
    return out
