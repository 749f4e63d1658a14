"""The Block base class and the registry recipes use.

A block is a small class: keyword-only, annotated ``__init__`` parameters (validated there),
``run(image)`` per frame that reads ``requires`` and writes ``provides`` on the Image, an optional
``setup(context)`` once per group in the parent and ``finish()`` after the last frame. Subclasses
register themselves by class name; recipes name registered blocks, never import paths.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

__all__ = ["Block", "registry"]

_REGISTRY: dict[str, type["Block"]] = {}


def registry() -> dict[str, type["Block"]]:
    """The block classes registered so far, by name (``reduce.blocks.registry`` imports the
    built-ins first: this layer knows no astronomy)."""
    return dict(sorted(_REGISTRY.items()))


class Block:
    """Base of every processing step.

    Class attributes: ``requires`` (Image fields that must be set before ``run``), ``provides``
    (fields it sets), ``modifies_data`` (whether it changes pixels), ``register`` (False for
    abstract helpers). ``run`` must not mutate ``self`` in ways later frames depend on, except for
    explicit accumulators (collectors) that gather per-frame results.
    """

    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    modifies_data: ClassVar[bool] = False
    register: ClassVar[bool] = True
    collector: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("register", True) is False or cls.__name__.startswith("_"):
            return
        name = cls.__name__
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            existing = _REGISTRY[name]
            if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
                raise TypeError(f"a block named '{name}' is already registered by {existing.__module__}")
        _REGISTRY[name] = cls

    # timing, filled by the Sequence
    def _timing(self) -> dict:
        d = self.__dict__.setdefault("_time", {"runs": 0, "seconds": 0.0})
        return d

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def processing_time(self) -> float:
        return self._timing()["seconds"]

    def setup(self, context: Any = None) -> None:
        """Once per group, in the parent, before the first frame (e.g. build master frames)."""

    def run(self, image) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> None:
        """After the last frame (collectors assemble their results here)."""

    def __call__(self, image):
        """Run on a copy of ``image`` and return it (handy interactively)."""
        im = image.copy()
        self.run(im)
        return im

    @classmethod
    def parameters(cls) -> dict[str, inspect.Parameter]:
        """The constructor's parameters (for recipes, validation and ``reduce blocks``)."""
        sig = inspect.signature(cls.__init__)
        return {n: p for n, p in sig.parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def params(self) -> dict[str, Any]:
        """Current parameter values (read back from same-named attributes) for provenance."""
        out = {}
        for n in self.parameters():
            if hasattr(self, n):
                v = getattr(self, n)
                out[n] = _plain(v)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if not isinstance(v, list) or len(v) < 6)
        return f"{self.name}({args})"


def _plain(v):
    """A YAML/JSON-friendly version of a parameter value."""
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (list, tuple)):
        if len(v) > 20:
            return f"<{len(v)} items>"
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return repr(v) if not hasattr(v, "path") else str(getattr(v, "path"))
