"""Run every ``benchmarks/bench_*.py`` and write the numbers to BENCHMARKS.md.

Each module exposes ``bench() -> list[dict]`` with keys name, value, unit, target, passed.
Usage: ``python benchmarks/run.py [topic ...]`` (topics filter module names).
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine() -> str:
    """One line describing this machine (CPU model, cores, memory, Python)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str]) -> int:
    topics = argv[1:]
    modules = sorted(HERE.glob("bench_*.py"))
    if topics:
        modules = [m for m in modules if any(t in m.stem for t in topics)]
    sections, failed = [], 0
    for path in modules:
        print(f"== {path.stem}", flush=True)
        t0 = time.perf_counter()
        try:
            results = load(path).bench()
        except Exception as e:  # a broken benchmark is reported, not hidden
            results = [{"name": f"{path.stem} crashed", "value": repr(e), "unit": "", "target": "",
                        "passed": False}]
        dt = time.perf_counter() - t0
        rows = []
        for r in results:
            ok = r.get("passed")
            failed += ok is False
            mark = "yes" if ok else ("no" if ok is False else "-")
            val = r["value"]
            val = f"{val:.4g}" if isinstance(val, float) else str(val)
            rows.append(f"| {r['name']} | {val} {r.get('unit', '')} | {r.get('target', '')} | {mark} |")
            print(f"   {r['name']}: {val} {r.get('unit', '')} (target {r.get('target', '')}) {mark}", flush=True)
        sections.append(f"## {path.stem.removeprefix('bench_')}\n\n(took {dt:.0f} s)\n\n"
                        "| benchmark | measured | target | met |\n|---|---|---|---|\n" + "\n".join(rows))
    if topics:
        print("(topic filter given: BENCHMARKS.md not rewritten)")
        return 1 if failed else 0
    text = (f"# Benchmarks\n\nWritten by `make bench` on {_dt.date.today().isoformat()}.\n\n"
            f"Machine: {machine()}.\n\n" + "\n\n".join(sections) + "\n")
    tmp = ROOT / "BENCHMARKS.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, ROOT / "BENCHMARKS.md")
    print(f"wrote BENCHMARKS.md ({failed} target(s) missed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
