"""A process-wide cache of master calibration frames, keyed by what they are built from.

The groups of a run that share calibration files (every filter of a night shares its bias and
darks) then build each master once; see :meth:`reduce.blocks.Calibration.build`.
"""
from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from typing import Callable

__all__ = ["MASTERS", "MasterCache", "file_signature", "loader_key"]


def file_signature(items: list) -> tuple | None:
    """(path, size, mtime) of every calibration file, None when one is not a file path."""
    sig = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            return None
        try:
            st = os.stat(item)
        except OSError:
            return None
        sig.append((os.fspath(item), st.st_size, st.st_mtime_ns))
    return tuple(sig)


def loader_key(loader) -> tuple:
    """The loader as a cache key: its function and arguments (objects by identity; the cache
    keeps them alive, so an identity is never reused for another object while it matters)."""
    if loader is None:
        return (None,)
    if isinstance(loader, functools.partial):
        return (loader.func, tuple(id(a) for a in loader.args),
                tuple((k, id(v)) for k, v in sorted(loader.keywords.items())))
    return (id(loader),)


class MasterCache:
    """Masters built by this process, least recently used dropped beyond ``max_items``; one
    build per key at a time (groups reduced at once in threads may ask for the same master)."""

    def __init__(self, max_items: int = 8):
        self.max_items = max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict = {}

    def get_or_build(self, key, compute: Callable, *, keep=None):
        """``(*compute(), built)``: the cached result for ``key``, or computed now (``built``);
        ``keep`` is held with it (objects whose identity is part of the key)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return (*self._items[key][0], False)
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    return (*self._items[key][0], False)
            value = compute()
            with self._lock:
                self._items[key] = (value, keep)
                self._building.pop(key, None)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
            return (*value, True)

    def clear(self) -> None:
        """Forget every master (e.g. to free their memory in a long-lived process)."""
        with self._lock:
            self._items.clear()


# masters already built in this process (see Calibration.build)
MASTERS = MasterCache()
