"""``reduce validate RECIPE...``, ``reduce blocks [NAME]`` and ``reduce recipes``: check recipes,
list the blocks, list the recipes installed with the package.

Both read the same block registry the runner uses, so what validates here builds at run time.
"""
from __future__ import annotations

import click

__all__ = ["validate", "blocks_cmd", "recipes_cmd"]


@click.command("validate")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--night", "nights", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Also check the recipe's export settings (AAVSO filter code) against this night's "
                   "light groups (scans the night; repeatable).")
@click.pass_context
def validate(ctx, recipes, nights):
    """Check RECIPE files without running them (RECIPE: a file, or an installed recipe's name).

    Every problem is printed as FILE:LINE: MESSAGE (HINT); the exit status is 0 when all recipes
    are valid and 2 otherwise. With --night, an export the night's filters would stop is a problem.
    """
    from ..model.errors import RecipeError
    from ..recipe import load_recipe
    from ..recipe.installed import find_recipe

    failed = 0
    for path in recipes:
        try:
            spec = load_recipe(find_recipe(path))
        except RecipeError as e:
            failed += 1
            for message in e.messages:
                click.echo(message, err=True)
            n = len(e.messages)
            click.secho(f"{path}: {n} problem{'s' if n != 1 else ''}", fg="red", err=True)
            continue
        click.echo("\n".join(spec.summary()))
        failed += _night_problems(path, spec, nights)
    if failed:
        ctx.exit(2)


def _night_problems(path, spec, nights) -> int:
    """1 when the recipe's exports would fail on a light group of ``nights`` (each printed), else 0."""
    from ..config import load_config
    from ..run import plan_night
    from ..run.outputs import export_problems

    problems = []
    for night in nights:
        plans, _ = plan_night(night, spec, config=load_config(None))
        problems += [f"{path}: outputs: {p.group.label}: {m}" for p in plans for m in export_problems(spec, p.group)]
    for message in problems:
        click.echo(message, err=True)
    return 1 if problems else 0


@click.command("recipes")
def recipes_cmd():
    """List the recipes installed with reduce (use them by name: reduce run default ./night).

    Copy one (its path is shown) to adapt it; the sample instrument configuration is listed too.
    """
    from rich.text import Text

    from ..console import get_console
    from ..recipe.installed import installed_recipes, sample_config_path

    console = get_console()
    shipped = installed_recipes()
    if not shipped:
        console.print("No recipes installed with this copy of reduce.")
    else:
        console.print("Installed recipes (use by name: reduce run NAME NIGHT):")
        width = max(len(n) for n in shipped)
        for name, path in shipped.items():
            console.print(Text(f"  {name:<{width}}  {_description(path)}"), soft_wrap=True)
            console.print(Text(f"  {'':<{width}}  {path}"), soft_wrap=True)
    sample = sample_config_path()
    if sample is not None:
        console.print(Text(f"Sample instrument configuration (copy and edit): {sample}"), soft_wrap=True)


def _description(path) -> str:
    """A recipe's ``description`` field (empty when unreadable: listing never fails)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return str(data.get("description", "")) if isinstance(data, dict) else ""
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return ""


@click.command("blocks")
@click.argument("name", required=False)
def blocks_cmd(name):
    """List the blocks a recipe can use, or show block NAME in full."""
    from ..console import get_console
    from ..blocks import registry

    reg = registry()
    console = get_console()
    if name is None:
        table = _overview(reg)
        console.print(table)
        if any(" *" in str(cell) for cell in table.columns[2].cells):
            console.print("* " + RANGE_NOTE, soft_wrap=True, markup=False)
        return
    if name not in reg:
        from ..model.errors import UsageError
        from ..recipe._yaml import close_match_hint

        hint = close_match_hint(name, reg) or "run 'reduce blocks' to list them"
        raise UsageError(f"unknown block {name!r} ({hint})")
    for renderable in _details(reg[name]):
        console.print(renderable, soft_wrap=isinstance(renderable, str))


RANGE_NOTE = ("A list of numbers may also be written {start: A, stop: B, n: N}: N evenly spaced "
              "values from A to B, both included (e.g. radii: {start: 0.5, stop: 4.0, n: 30}).")


def _parameter_rows(cls):
    """(name, type, default, origin, YAML forms) for each constructor parameter."""
    import inspect

    from ..recipe.coerce import describe, resolve_annotations, runtime_parameters, yaml_forms

    hints = resolve_annotations(cls)
    runtime = set(runtime_parameters(cls))
    rows = []
    for pname, p in cls.parameters().items():
        default = "required" if p.default is inspect.Parameter.empty else repr(p.default)
        tp = hints.get(pname, p.annotation)
        rows.append((pname, describe(tp), default, "runner" if pname in runtime else "recipe",
                     "(an object)" if pname in runtime else yaml_forms(tp)))
    return rows


def _takes_range(cls) -> bool:
    from ..recipe.coerce import accepts_range, resolve_annotations, runtime_parameters

    hints, runtime = resolve_annotations(cls), set(runtime_parameters(cls))
    return any(accepts_range(hints.get(n, p.annotation)) for n, p in cls.parameters().items()
               if n not in runtime)


def plain_text(doc: str) -> str:
    """A docstring as plain text: reST roles, inline literals and ``::`` markers removed."""
    import re

    def role(m):
        text = m.group(2)
        label = re.match(r"(.+?)\s*<[^>]+>$", text)  # :ref:`label <target>`
        if label:
            return label.group(1)
        if text.startswith("~"):
            return text[1:].rsplit(".", 1)[-1]
        return text.lstrip(".")

    doc = re.sub(r":([a-z]+(?::[a-z]+)?):`([^`]+)`", role, doc)
    doc = re.sub(r"``([^`]+)``", r"\1", doc)
    doc = re.sub(r"(?<![\w`])`([^`]+)`(?![\w`])", r"\1", doc)
    doc = re.sub(r"^\.\. (note|warning|seealso)::", lambda m: m.group(1).capitalize() + ":", doc, flags=re.M)
    doc = re.sub(r"\s*::$", ":", doc, flags=re.M)  # "text::" introduces a literal block
    return doc


def _first_line(cls) -> str:
    """The summary of a block's docstring (its first paragraph), as plain text."""
    import inspect

    doc = plain_text((inspect.getdoc(cls) or "").strip())
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
        params = []
        for n, t, d, origin, forms in _parameter_rows(cls):
            if origin != "recipe":
                continue
            params.append(f"{n}: {t} = {d}" if d != "required" else f"{n}: {t} (required)")
            if "{start, stop, n}" in forms:
                params[-1] += " *"  # explained below the table
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

    out = [Text(cls.__name__, style="bold"),
           _escape(plain_text(inspect.getdoc(cls) or "(no documentation)"))]
    flags = [f"requires: {', '.join(cls.requires) or '-'}", f"provides: {', '.join(cls.provides) or '-'}"]
    if getattr(cls, "collector", False):
        flags.append("collector (runs on every frame, including rejected ones)")
    out.append(_escape("\n".join(flags)))
    table = Table(title="parameters")
    for col in ("name", "type", "default", "set by", "in a recipe"):
        table.add_column(col)
    for row in _parameter_rows(cls):
        table.add_row(*(Text(cell) for cell in row))
    out.append(table)
    if _takes_range(cls):
        out.append(_escape(RANGE_NOTE))
    return out
