"""``reduce report ARCHIVE``: one ``index.html`` over every group product found under a folder.

A product is found by its provenance record (``<stem>.json``, written beside every light curve by
``reduce run``); its row gives the target, night, filter, telescope, frames, flags, warnings and
point-to-point scatter, with a relative link to the group's page (``<stem>.html``; to the
record when the recipe wrote no page). Like the group pages it is one self-contained file.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..model.errors import ReduceError, UsageError
from .page import esc, frame_counts, page_head, scatter_text

__all__ = ["Product", "find_products", "archive_page", "write_report"]

log = logging.getLogger("reduce.report")


@dataclass
class Product:
    """One group product: its provenance path and record."""

    path: Path
    record: dict

    @property
    def observation(self) -> dict:
        return (self.record.get("extra") or {}).get("observation") or {}

    @property
    def label(self) -> str:
        return str((self.record.get("extra") or {}).get("group") or self.path.stem)

    @property
    def page(self) -> Path:
        """The group's page, else its provenance record (what the index links to)."""
        html = self.path.with_suffix(".html")
        return html if html.is_file() else self.path

    def scatter(self):
        """The recorded point-to-point scatter, else measured from the ``<stem>.csv`` beside it."""
        value = (self.record.get("extra") or {}).get("scatter_p2p")
        if value is None and "scatter_p2p" not in (self.record.get("extra") or {}):
            value = _csv_scatter(self.path.with_suffix(".csv"))
        return value

    def sort_key(self) -> tuple:
        o = self.observation
        return (str(o.get("date") or ""), str(o.get("telescope") or ""), str(o.get("target") or ""),
                str(o.get("filter") or ""), self.label, str(self.path))


def _is_product(record) -> bool:
    """A ``reduce run`` provenance record (not some other JSON file of the archive)."""
    return (isinstance(record, dict) and "schema" in record and isinstance(record.get("recipe"), dict)
            and "inputs" in record and isinstance(record.get("extra"), dict))


def find_products(folder) -> list[Product]:
    """Every group product under ``folder`` (hidden folders, e.g. ``.reduce`` or a staging folder,
    skipped), sorted by night, telescope, target and filter."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = Path(root) / name
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                log.debug("%s: not read (%s)", path, e)
                continue
            if _is_product(record):
                found.append(Product(path, record))
    return sorted(found, key=Product.sort_key)


def _csv_scatter(path: Path):
    """p2p scatter of the kept frames' normalised flux in a product CSV (None when unreadable)."""
    import csv

    import numpy as np

    from ..lightcurve.stats import p2p_scatter

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
        flux = np.array([float(r["flux"]) if r.get("flux") not in (None, "") else np.nan for r in rows])
    except (OSError, KeyError, ValueError):
        return None
    flux = flux[np.isfinite(flux)]
    if flux.size < 3 or not np.median(flux) > 0:
        return None
    value = float(p2p_scatter(flux / np.median(flux)))
    return value if np.isfinite(value) else None


def archive_page(products, folder, *, refresh: float | None = None) -> str:
    """The index page of ``products`` (found under ``folder``: links are relative to it)."""
    folder = Path(folder)
    rows = []
    for p in products:
        o = p.observation
        frames, flagged = frame_counts(p.record)
        warnings = len(p.record.get("warnings") or ())
        parts = [f"{flagged} flagged"] * bool(flagged) + [f"{warnings} warning(s)"] * bool(warnings)
        status = (", ".join(parts) or "ok", "bad" if flagged else "warn" if warnings else "ok")
        href = quote(Path(os.path.relpath(p.page, folder)).as_posix())
        link = "page" if p.page.suffix == ".html" else "record"
        rows.append(
            f"<tr><td>{esc(o.get('date'))}</td><td>{esc(o.get('target') or p.label)}</td>"
            f"<td>{esc(o.get('filter'))}</td><td>{esc(o.get('telescope'))}</td>"
            f'<td class="num">{frames}</td><td class="num">{frames - flagged}</td>'
            f'<td class="num">{scatter_text(p.scatter())}</td><td class="{status[1]}">{esc(status[0])}</td>'
            f'<td><a href="{esc(href)}">{esc(p.label)}</a> ({link})</td></tr>\n')
    nights = len({str(p.observation.get("date") or p.path.parent) for p in products})
    head = ("<tr><th>night</th><th>target</th><th>filter</th><th>telescope</th><th>frames</th>"
            "<th>used</th><th>p2p scatter</th><th>status</th><th>group</th></tr>\n")
    return (page_head(f"reduce archive: {folder.name}", refresh=refresh)
            + f"<h1>Archive {esc(folder.name)}</h1>\n"
            + f'<p class="sub">{len(products)} group(s) over {nights} night(s)</p>\n'
            + f"<table>\n{head}{''.join(rows)}</table>\n</body>\n</html>\n")


def write_report(folder, *, refresh: float | None = None) -> tuple[Path, list[Product]]:
    """Write ``folder/index.html`` over every group product under ``folder``; returns its path and
    the products. A missing folder is a usage error; a folder without any product an error (no
    index is written)."""
    from ..io.atomic import atomic_write_text

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    products = find_products(folder)
    if not products:
        raise ReduceError(f"no group product found under {folder}: a product is the <group>.json "
                          "provenance record reduce run writes beside each light curve")
    return atomic_write_text(folder / "index.html", archive_page(products, folder, refresh=refresh)), products
