"""The recipes and sample configuration shipped inside the package (``reduce recipes``).

In the source tree ``reduce/recipes`` and ``reduce/data/sample_config.yaml`` are symlinks to the
top-level ``recipes/`` and ``sample_config.yaml``; a built wheel holds copies. So ``reduce run
default ./night`` works from any folder once the package is installed.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["installed_recipes", "find_recipe", "sample_config_path"]

_PACKAGE = Path(__file__).resolve().parents[1]


def installed_recipes() -> dict[str, Path]:
    """Name (file stem) -> path of every recipe shipped with the package, sorted by name."""
    folder = _PACKAGE / "recipes"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_recipe(name) -> Path:
    """The recipe file ``name`` names: an existing path, else a shipped recipe called ``name``
    (with or without ``.yaml``). Unknown names are returned unchanged (the caller reports them)."""
    path = Path(name)
    if path.exists() or len(path.parts) != 1:
        return path
    shipped = installed_recipes()
    stem = path.stem if path.suffix.lower() in (".yaml", ".yml") else path.name
    return shipped.get(stem, path)


def sample_config_path() -> Path | None:
    """The shipped sample instrument/site configuration (a template to copy), or None."""
    p = _PACKAGE / "data" / "sample_config.yaml"
    return p if p.is_file() else None
