"""Every built-in block, importable as ``reduce.blocks.Name`` (importing registers them)."""
from __future__ import annotations
