"""The group's page: one self-contained HTML file to look at a night's light curve in a browser.

Everything is inside the file: the figures as base64 PNG ``data:`` URIs, the CSS inline, no script,
no font, nothing fetched (a Content-Security-Policy forbids it), so the page opens from a disk, a
mail or an archive without a server or a network. It is built from the group's provenance record
(plain values, see :func:`reduce.io.provenance.provenance_record`) with plain string templates;
every value put into it is escaped (file names and OBJECT values are the observer's text).
``refresh`` (seconds) makes the page reload itself, for a night that is still being reduced.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["group_page", "write_group_page", "data_uri", "page_head", "esc", "frame_counts", "scatter_text",
           "CSS"]

# no network, no script: only inline styles and data: images
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em auto;
       max-width: 1100px; padding: 0 1em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.45em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.4em 0 .4em;
     border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.sub { color: #555; margin: 0 0 .8em; }
.stats { display: flex; flex-wrap: wrap; gap: .5em; margin: .6em 0; }
.stat { border: 1px solid #ddd; border-radius: 6px; padding: .35em .7em; background: #fafafa; }
.stat b { display: block; font-size: 1.15em; }
.ok { color: #1a7f37; } .bad { color: #c62828; } .warn { color: #9a6700; }
figure { margin: .8em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
table { border-collapse: collapse; margin: .4em 0; } td, th { border: 1px solid #ddd;
        padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .92em; } details { margin: .4em 0; } summary { cursor: pointer; }
.none { color: #777; font-style: italic; }
"""


def esc(value) -> str:
    """``value`` as HTML text (quotes too: safe in attributes); None as an empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def data_uri(png: bytes) -> str:
    """A PNG's bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def page_head(title: str, *, refresh: float | None = None) -> str:
    """``<!DOCTYPE html>`` up to ``<body>``: charset, CSP, viewport, title, CSS; with ``refresh``
    (seconds) a ``<meta http-equiv="refresh">`` that reloads the page."""
    reload = (f'<meta http-equiv="refresh" content="{max(1, int(round(float(refresh))))}">\n'
              if refresh else "")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{reload}'
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n")


def group_page(record: dict, images=(), *, refresh: float | None = None) -> str:
    """The page of one group from its provenance ``record``: summary, figures (``images``: pairs
    (caption, PNG bytes)), flags by reason, warnings and the provenance in short."""
    extra = record.get("extra") or {}
    obs = extra.get("observation") or {}
    label = extra.get("group") or "group"
    title = " | ".join(str(v) for v in (obs.get("target") or label, obs.get("date"), obs.get("filter")) if v)
    parts = [page_head(f"{title} - reduce", refresh=refresh),
             f"<h1>{esc(obs.get('target') or label)}</h1>\n", _subtitle(obs, label, record),
             _stats(record), "<h2>Light curve and reference frame</h2>\n", _figures(images),
             "<h2>Flagged frames</h2>\n", _flags(record), "<h2>Warnings</h2>\n", _warnings(record),
             "<h2>Provenance in short</h2>\n", _provenance(record), "</body>\n</html>\n"]
    return "".join(parts)


def write_group_page(path, record: dict, images=(), *, refresh: float | None = None) -> Path:
    """Write :func:`group_page` to ``path`` atomically; ``images`` pairs (caption, PNG path or bytes)."""
    from ..io.atomic import atomic_write_text

    loaded = [(caption, png if isinstance(png, bytes) else Path(png).read_bytes()) for caption, png in images]
    return atomic_write_text(Path(path), group_page(record, loaded, refresh=refresh))


def _subtitle(obs: dict, label: str, record: dict) -> str:
    """Night, telescope, filter, the group's product name and when it was reduced, on one line."""
    bits = [esc(f"{name} {obs[key]}") for name, key in (("night", "date"), ("telescope", "telescope"),
                                                         ("filter", "filter")) if obs.get(key)]
    bits.append(f"group <code>{esc(label)}</code>")
    if record.get("created"):
        bits.append(esc(f"reduced {record['created']}"))
    return '<p class="sub">' + " &middot; ".join(bits) + "</p>\n"


def frame_counts(record: dict) -> tuple[int, int]:
    """(files of the group, flagged frames) from a provenance record."""
    extra = record.get("extra") or {}
    frames = extra.get("frames")
    if frames is None:
        frames = len(record.get("inputs") or ()) + len(extra.get("unmeasured") or ())
    return int(frames), len(record.get("flagged") or ())


def scatter_text(value) -> str:
    """A relative point-to-point scatter in parts per thousand, or an em dash."""
    return f"{1000.0 * float(value):.2f} ppt" if isinstance(value, (int, float)) else "&mdash;"


def _stats(record: dict) -> str:
    extra = record.get("extra") or {}
    frames, flagged = frame_counts(record)
    aperture = record.get("aperture") or {}
    radius = aperture.get("radius_px")
    items = [("frames", str(frames), ""), ("used", str(frames - flagged), ""),
             ("flagged", str(flagged), "bad" if flagged else "ok"),
             ("warnings", str(len(record.get("warnings") or ())), "warn" if record.get("warnings") else "ok"),
             ("p2p scatter", scatter_text(extra.get("scatter_p2p")), ""),
             ("aperture", f"{radius:.2f} px" if isinstance(radius, (int, float)) else "&mdash;", ""),
             ("comparisons", str(len(record.get("comparisons") or ())), "")]
    cells = "".join(f'<div class="stat">{esc(k)}<b class="{c}">{v}</b></div>' for k, v, c in items)
    return f'<div class="stats">{cells}</div>\n'


def _figures(images) -> str:
    if not images:
        return '<p class="none">No figure (the recipe\'s outputs: plot is false).</p>\n'
    return "".join(f'<figure><img src="{data_uri(png)}" alt="{esc(caption)}">'
                   f"<figcaption>{esc(caption)}</figcaption></figure>\n" for caption, png in images)


def _flags(record: dict) -> str:
    """Flags grouped by reason (count, flag names), then every flagged frame in a fold-out."""
    from ..model.flags import decode_flags

    kinds = record.get("flagged_by_reason") or []
    flagged = record.get("flagged") or []
    if not kinds and not flagged:
        return '<p class="ok">No frame flagged: every frame is in the light curve.</p>\n'
    rows = "".join(f'<tr><td class="num">{esc(k.get("frames"))}</td><td>{esc(k.get("reason"))}</td>'
                   f'<td>{esc(", ".join(decode_flags(int(k.get("flag") or 0))))}</td></tr>\n' for k in kinds)
    out = f"<table><tr><th>frames</th><th>reason</th><th>flags</th></tr>\n{rows}</table>\n"
    rows = "".join(f"<tr><td>{esc(f.get('file'))}</td><td>{esc(', '.join(f.get('names') or []))}</td>"
                   f"<td>{esc(f.get('reason'))}</td></tr>\n" for f in flagged)
    out += (f"<details><summary>{len(flagged)} flagged frame(s), one by one</summary>\n<table><tr><th>file"
            f"</th><th>flags</th><th>reason</th></tr>\n{rows}</table></details>\n")
    unmeasured = (record.get("extra") or {}).get("unmeasured") or []
    if unmeasured:
        rows = "".join(f"<li>{esc(u.get('file'))}: {esc(u.get('reason'))}</li>\n" for u in unmeasured)
        out += f"<p>Files that could not be measured:</p>\n<ul>{rows}</ul>\n"
    return out


def _warnings(record: dict) -> str:
    warnings = record.get("warnings") or []
    if not warnings:
        return '<p class="ok">No warning.</p>\n'
    items = []
    for w in warnings:
        frames = w.get("frames") or []
        more = f" ({len(frames)} frame(s))" if isinstance(frames, list) and frames else ""
        items.append(f"<li><code>{esc(w.get('code'))}</code> {esc(w.get('message'))}{esc(more)}</li>\n")
    return f"<ul>{''.join(items)}</ul>\n"


def _provenance(record: dict) -> str:
    """Target, reference, aperture, comparisons, calibration, recipe, config and versions."""
    target = record.get("target") or {}
    aperture = record.get("aperture") or {}
    cal = record.get("calibration") or {}
    recipe = record.get("recipe") or {}
    comps, weights = record.get("comparisons") or [], record.get("weights") or []
    xy = target.get("reference_xy")
    placed = f"star {target.get('index')}" if target.get("index") is not None else ""
    if isinstance(xy, list) and len(xy) == 2 and all(isinstance(v, (int, float)) for v in xy):
        placed += f" at x, y = {xy[0]:.1f}, {xy[1]:.1f} px on the reference (0-based)"
    given = target.get("given")
    if given is not None:
        placed += f"; given as {given if isinstance(given, str) else _short(given)}"
    radius = aperture.get("radius_px")
    ap = (f"{radius:.2f} px" if isinstance(radius, (int, float)) else "?") + \
        (f" (chosen by {aperture['chosen_by']})" if aperture.get("chosen_by") else "")
    comp = ", ".join(f"{c} ({w:.3f})" if isinstance(w, (int, float)) else str(c)
                     for c, w in zip(comps, list(weights) + [None] * len(comps)))
    software = record.get("software") or {}
    rows = [("target", placed or "?"), ("reference frame", record.get("reference")), ("aperture", ap),
            ("comparisons (weight)", comp or "none"),
            ("recipe", f"{recipe.get('path')} (sha256 {str(recipe.get('sha256', ''))[:16]})"),
            ("configuration", record.get("config")),
            ("software", ", ".join(f"{k} {v}" for k, v in software.items() if v))]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>\n" for k, v in rows)
    body += f"<tr><th>calibration</th><td>{_calibration(cal)}</td></tr>\n"
    return f"<table>{body}</table>\n"


def _calibration(cal: dict) -> str:
    """Counts of bias, dark and flat frames with why they were matched; the files in a fold-out."""
    out = []
    for key in ("bias", "darks", "flats"):
        files = cal.get(key) or []
        names = "".join(f"<li>{esc(f)}</li>" for f in files)
        out.append(f"<details><summary>{esc(key)}: {len(files)} frame(s)</summary><ul>{names}</ul></details>"
                   if files else f"<div>{esc(key)}: none</div>")
    why = cal.get("why") or []
    if why:
        out.append("<div>" + "<br>".join(esc(w) for w in why) + "</div>")
    return "".join(out)


def _short(value) -> str:
    """A small dict as ``k=v, ...``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
