"""Provenance records: what was run, on which files, with which software, and what came out.

A record is a plain dict (JSON/YAML-ready) written next to each light curve. It is deterministic:
the same inputs, recipe and software give the same content, apart from the single ``created``
timestamp; no host name, user name or other clock value is recorded.
:func:`content_checksum` hashes everything but ``created``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from ..model.reasons import group_reasons
from .atomic import atomic_write_text

__all__ = ["provenance_record", "write_provenance", "file_checksum", "package_versions",
           "content_checksum", "to_plain", "PROVENANCE_SCHEMA", "PACKAGES"]

PROVENANCE_SCHEMA = 1
PACKAGES = ("reduce", "numpy", "scipy", "astropy", "photutils", "sep")
_CHUNK = 1 << 20
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")  # what libyaml writes escaped


def package_versions(packages=PACKAGES) -> dict[str, str | None]:
    """Installed versions (``importlib.metadata``) of ``packages``, plus Python's."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def file_checksum(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else _chunked(f)


def _chunked(f) -> str:  # pragma: no cover - Python < 3.11
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def _input_entries(inputs, *, root, checksums) -> list[dict]:
    """``{file, size, sha256}`` per input (hashed on 2 threads; hashlib releases the GIL)."""
    paths = [Path(p) for p in inputs]
    known = {str(Path(k)): v for k, v in (checksums or {}).items()}
    todo = [p for p in paths if str(p) not in known]
    if todo:
        with ThreadPoolExecutor(max_workers=2 if len(todo) > 4 else 1) as pool:
            known.update(zip((str(p) for p in todo), pool.map(file_checksum, todo)))
    return [{"file": _relative(p, root), "size": p.stat().st_size, "sha256": known[str(p)]} for p in paths]


def _relative(path: Path, root) -> str:
    """``path`` relative to ``root`` when inside it (portable records), else as given."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def to_plain(value):
    """A JSON/YAML-safe copy: numpy scalars and arrays to Python, paths to str, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_plain(v) for v in items]
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return to_plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "to_dict"):
        return to_plain(value.to_dict())
    return str(value)


def _relative_paths(value, root):
    """``Path`` objects anywhere inside ``value`` recorded relative to ``root`` (when inside it)."""
    if isinstance(value, Path):
        return _relative(value, root)
    if isinstance(value, dict):
        return {k: _relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative_paths(v, root) for v in value]
    return value


def _flagged(entries, root) -> list[dict]:
    from ..model.flags import decode_flags

    out = []
    for file, flags, reason in entries or ():
        out.append({"file": _relative(Path(str(file)), root) if file else None, "flags": int(flags),
                    "names": decode_flags(int(flags)), "reason": str(reason)})
    return out


def provenance_record(*, recipe_spec, config_source, inputs, calibration, reference, aperture,
                      comparisons, weights, flagged, extra=None, root=None, checksums=None,
                      created: str | None = None, warnings=None, target=None) -> dict:
    """The provenance of one light curve as a plain dict.

    Parameters
    ----------
    recipe_spec : RecipeSpec — recorded as written (text, sha256) and resolved (defaults filled).
    config_source : path of the instrument configuration, or a label such as ``"built-in"``.
    inputs : paths of the light frames used (size and SHA-256 recorded for each).
    calibration : what was matched, e.g. ``{"bias": [...], "darks": [...], "flats": [...], "why": ...}``
        (``Path`` values are recorded relative to ``root``).
    reference : the reference frame (path or description).
    aperture, comparisons, weights : the chosen aperture (radius, px; index), comparison star
        indices and their weights.
    flagged : ``(file, flags, reason)`` for every flagged frame (also grouped by reason kind,
        with counts and ranges: ``flagged_by_reason``).
    warnings : ``{code, message, frames}`` for every header or time problem of the group (time
        keywords that disagree, overlapping exposures, values set aside, airmass computed...).
    target : how the target was placed, e.g. ``{"given": {"x", "y", "frame"}, "mapped": [x, y],
        "snapped": [x, y], "snap_distance_px", "index"}`` (positions in 0-based file pixels; the
        mapped and snapped ones on the reference); ``Path`` values relative to ``root``.
    extra : any further plain values (e.g. timings).
    root : record paths relative to this folder (e.g. the night) when they are inside it.
    checksums : known ``{path: sha256}`` (e.g. from the index) to avoid re-reading files.
    created : ISO timestamp (default: now, UTC); the only clock value in the record.
    """
    spec = recipe_spec
    record = {
        "schema": PROVENANCE_SCHEMA,
        "created": created or datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "software": package_versions(),
        "recipe": {"path": Path(str(spec.path)).as_posix(), "sha256": spec.sha256, "text": spec.text,
                   "resolved": to_plain(spec.to_dict())},
        "missing_calibration": spec.missing_calibration,
        "config": to_plain(config_source),
        "inputs": _input_entries(inputs, root=root, checksums=checksums),
        "calibration": to_plain(_relative_paths(calibration, root)),
        "reference": _relative(Path(str(reference)), root) if isinstance(reference, (str, Path)) and reference
        else to_plain(reference),
        "target": to_plain(_relative_paths(target, root)) if target is not None else None,
        "aperture": to_plain(aperture),
        "comparisons": to_plain(comparisons),
        "weights": to_plain(weights),
        "flagged": _flagged(flagged, root),
        "flagged_by_reason": group_reasons(flagged or ()),
        "warnings": to_plain(list(warnings or [])),
        "extra": to_plain(extra or {}),
    }
    return record


def content_checksum(record: dict) -> str:
    """SHA-256 of the record's canonical JSON without ``created`` (equal for equal runs)."""
    body = {k: v for k, v in record.items() if k != "created"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_provenance(record: dict, path_json, *, yaml: bool = True) -> list[Path]:
    """Write ``record`` as JSON at ``path_json`` (and YAML next to it); returns the paths written."""
    path_json = Path(path_json)
    plain = to_plain(record)
    text = json.dumps(plain, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    written = [atomic_write_text(path_json, text)]
    if yaml:
        text = _yaml_dump(plain, libyaml=not _ASTRAL.search(text))
        written.append(atomic_write_text(path_json.with_suffix(".yaml"), text))
    return written


def _yaml_dump(plain: dict, libyaml: bool = True) -> str:
    """Readable YAML: multi-line strings (the recipe text) as literal blocks.

    ``libyaml``: PyYAML's C emitter when it has one, ~5x faster than the Python one (tens of ms
    for a night's record) and the same text, except that it escapes characters beyond the Basic
    Multilingual Plane (emoji): the caller passes False when the record holds any."""
    import yaml

    base = yaml.CSafeDumper if libyaml and getattr(yaml, "__with_libyaml__", False) else yaml.SafeDumper

    class _Dumper(base):
        pass

    def _str(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(plain, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
