"""Idempotent runs: a fingerprint per reduced group, so a re-run with nothing new does nothing.

The fingerprint of a group covers every input that can change its outputs: the light frames and
the matched calibration frames (absolute path, size, mtime), the recipe text with the command-line
overrides, the configuration, the output folder and stem, and the package version. After a group
is reduced its fingerprint and the list of outputs (size, mtime) are stored atomically in
``<night>/.reduce/runs/<outdir key>/<stem>.json`` (or the per-user cache folder of a read-only
night, as for the index). The next run skips the group when the fingerprint matches and every
output is still there unchanged. The record is removed before a group is redone, so a run killed
half way is always redone. This module is on the fast path of a no-op re-run: standard library only.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

__all__ = ["group_fingerprint", "GroupState", "STATE_VERSION"]

STATE_VERSION = 1


def _outdir_key(outdir) -> str:
    return hashlib.sha1(os.path.abspath(os.fspath(outdir)).encode()).hexdigest()[:12]


def _stat_line(kind: str, path) -> str:
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
        return f"{kind}\0{p}\0{st.st_size}\0{st.st_mtime_ns}\n"
    except OSError:
        return f"{kind}\0{p}\0missing\n"


def config_key(config) -> str:
    """What of the configuration can change results (its source path does not)."""
    if config is None:
        return "none"
    targets = getattr(config, "targets", ())  # their coordinates: BJD_TDB, airmass
    return repr((getattr(config, "instruments", None), getattr(config, "default", None))
                + ((targets,) if targets else ()))


def group_fingerprint(plan, *, recipe_key: str, config=None, version: str | None = None) -> str:
    """SHA-256 over everything the outputs of ``plan`` depend on (see the module docstring)."""
    if version is None:
        from .. import __version__ as version
    h = hashlib.sha256()
    head = {"state": STATE_VERSION, "version": version, "recipe": recipe_key,
            "config": config_key(config), "stem": plan.stem,
            "outdir": os.path.abspath(os.fspath(plan.outdir))}
    h.update(json.dumps(head, sort_keys=True).encode())
    cal = plan.calibration
    unmeasured = [u[0] for u in getattr(plan, "unmeasured", ())]  # their rows are in the outputs
    for kind, files in (("light", plan.frames), ("unmeasured", unmeasured), ("bias", cal.bias),
                        ("dark", cal.darks), ("flat", cal.flats)):
        for f in files:
            h.update(_stat_line(kind, f).encode())
    return h.hexdigest()


def _output_entry(path) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(os.fspath(path)), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class GroupState:
    """The stored record of one group's last successful reduction (in ``state_dir``)."""

    def __init__(self, state_dir, outdir, stem: str):
        self.path = Path(state_dir) / "runs" / _outdir_key(outdir) / f"{stem}.json"

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def unchanged(self, fingerprint: str) -> dict | None:
        """The stored record when ``fingerprint`` matches and every output is intact, else None."""
        record = self.load()
        if not record or record.get("fingerprint") != fingerprint:
            return None
        for out in record.get("outputs", []):
            try:
                st = os.stat(out["path"])
            except (OSError, KeyError, TypeError):
                return None
            if st.st_size != out.get("size") or st.st_mtime_ns != out.get("mtime_ns"):
                return None
        return record

    def invalidate(self) -> None:
        """Forget the record (before redoing the group: a killed run is then redone)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass

    def save(self, fingerprint: str, outputs, summary: dict) -> None:
        """Store the record atomically (failures to store only cost a redo next time)."""
        from ..io.atomic import atomic_write_text

        record = {"state_version": STATE_VERSION, "fingerprint": fingerprint,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "outputs": [_output_entry(p) for p in outputs if os.path.exists(p)],
                  "summary": summary}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(record, indent=1, default=str))


def renamed_sets(state_dir, outdir, stem: str, frames) -> list[dict]:
    """Earlier product sets of the same group under another stem in ``outdir`` (a change of
    telescope keyword, or a version that named products after a config's instrument): the stored
    records whose reference frame is one of ``frames``. Each: ``stem``, ``record`` (its path) and
    ``outputs`` (the paths it wrote)."""
    folder = Path(state_dir) / "runs" / _outdir_key(outdir)
    ours = {os.path.abspath(os.fspath(f)) for f in frames}
    found = []
    try:
        records = sorted(folder.glob("*.json"))
    except OSError:
        return found
    for path in records:
        if path.stem == stem:
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ref = (record.get("summary") or {}).get("reference") if isinstance(record, dict) else None
        if ref and os.path.abspath(str(ref)) in ours:
            found.append({"stem": path.stem, "record": str(path),
                          "outputs": [o.get("path") for o in record.get("outputs", []) if isinstance(o, dict)]})
    return found


def retire(old: dict) -> list[str]:
    """Remove an earlier set found by :func:`renamed_sets` (its outputs, then its record), so it
    is not left beside the new one, never updated again; returns the paths removed."""
    removed = []
    for p in old.get("outputs", []):
        try:
            if p and os.path.isfile(p):
                os.unlink(p)
                removed.append(p)
        except OSError:
            pass
    try:
        os.unlink(old["record"])
    except OSError:
        pass
    return removed
