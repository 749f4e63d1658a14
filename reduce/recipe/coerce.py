"""Check and convert recipe parameter values against a block constructor's annotations.

Recipes are plain YAML, so every value is a bool, number, string, list, mapping or null. A block's
``__init__`` annotations say what it accepts; :func:`coerce` converts the YAML value (``5`` -> ``5.0``
for a float, ``"1e-3"`` -> ``0.001`` because PyYAML reads that as a string, a ``{start, stop, n}``
mapping -> an evenly spaced list) or raises :class:`CoercionError` with a message and a hint. Nothing
is evaluated or imported from the recipe's text.
"""
from __future__ import annotations

import collections.abc as cabc
import difflib
import inspect
import math
import sys
import types
import typing
from pathlib import Path, PurePath
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "CoercionError", "resolve_annotations", "coerce", "describe", "yaml_forms", "accepts_range", "is_settable",
    "runtime_parameters", "settable_parameters", "RANGE_KEYS", "finite", "RUNNER_SUPPLIED",
]

EMPTY = inspect.Parameter.empty
RANGE_KEYS = ("start", "stop", "n")
_SEQUENCES = (list, tuple, set, frozenset, cabc.Sequence, cabc.Iterable, cabc.Collection,
              cabc.MutableSequence)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


class CoercionError(ValueError):
    """A recipe value does not fit its parameter's annotation; ``hint`` suggests a fix."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def resolve_annotations(cls) -> dict[str, Any]:
    """The resolved annotations of ``cls.__init__``; an unresolvable one becomes ``Any``.

    String annotations (``from __future__ import annotations``) are resolved in the defining
    module by :func:`typing.get_type_hints`, one parameter at a time when the whole set fails.
    """
    init = cls.__init__
    try:
        return typing.get_type_hints(init)
    except Exception:
        pass
    module = sys.modules.get(getattr(init, "__module__", ""), None)
    globalns = dict(vars(module)) if module else {}
    out = {}
    for name, ann in getattr(init, "__annotations__", {}).items():
        def probe():  # pragma: no cover - never called, only inspected
            pass
        probe.__annotations__ = {name: ann}
        try:
            out[name] = typing.get_type_hints(probe, globalns=globalns)[name]
        except Exception:
            out[name] = Any
    return out


# Names the runner always supplies itself (matched calibration frames, the reference image, the
# frame loader), even for a block that forgot to list them in ``runtime_params``.
RUNNER_SUPPLIED = ("darks", "bias", "flats", "loader", "reference")


def runtime_parameters(cls) -> tuple[str, ...]:
    """Parameters the runner supplies (objects, not YAML): the class's ``runtime_params``, the
    :data:`RUNNER_SUPPLIED` names it takes, and every parameter whose annotation no YAML value
    can satisfy (e.g. an ``Image``)."""
    params = cls.parameters()
    explicit = tuple(getattr(cls, "runtime_params", ()) or ())
    explicit += tuple(n for n in RUNNER_SUPPLIED if n in params and n not in explicit)
    hints = resolve_annotations(cls)
    implicit = tuple(n for n in params if n not in explicit and not is_settable(hints.get(n, Any)))
    return explicit + implicit


def settable_parameters(cls) -> dict[str, inspect.Parameter]:
    """The constructor parameters a recipe may set (everything but the runtime ones)."""
    runtime = set(runtime_parameters(cls))
    return {n: p for n, p in cls.parameters().items() if n not in runtime}


def _is_array(tp) -> bool:
    """numpy arrays and ``numpy.typing.ArrayLike``: filled from a (nested) list of numbers."""
    if tp is None:
        return False
    mod = getattr(tp, "__module__", "") or ""
    if mod.startswith("numpy") and getattr(tp, "__name__", "") in ("ndarray", "NDArray"):
        return True
    if get_origin(tp) is not None and (getattr(get_origin(tp), "__module__", "") or "").startswith("numpy"):
        return True
    if "numpy" in sys.modules:
        try:
            import numpy.typing as npt
            return tp is npt.ArrayLike
        except Exception:  # pragma: no cover
            return False
    return False


def _is_union(tp) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def is_settable(tp) -> bool:
    """Whether some YAML value can satisfy annotation ``tp``."""
    if tp in (Any, EMPTY, bool, int, float, str, type(None), Path, PurePath, list, tuple, dict) or _is_array(tp):
        return True
    origin = get_origin(tp)
    if origin is Literal:
        return True
    if _is_union(tp):
        return all(is_settable(a) for a in get_args(tp) if a is not type(None))
    if origin in _SEQUENCES or origin in _MAPPINGS:
        return all(is_settable(a) for a in get_args(tp) if a is not Ellipsis)
    return False


def describe(tp) -> str:
    """A short human-readable name for an annotation (``float | None``, ``'warn' | 'fail'``)."""
    if tp in (Any, EMPTY):
        return "any"
    if tp is type(None):
        return "None"
    if _is_array(tp):
        return "array"
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if _is_union(tp):
        return " | ".join(describe(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else describe(a) for a in get_args(tp))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    return getattr(tp, "__name__", str(tp))


_NUMBERS = (int, float)


def accepts_range(tp) -> bool:
    """Whether a ``{start, stop, n}`` range is accepted for annotation ``tp`` (a list of numbers
    of any length, or an array)."""
    if _is_array(tp):
        return True
    if _is_union(tp):
        return any(accepts_range(a) for a in get_args(tp))
    origin = get_origin(tp) or tp
    if origin in (list, tuple) or origin in _SEQUENCES:
        args = get_args(tp)
        if origin is tuple and args and Ellipsis not in args:
            return False
        return not args or args[0] in _NUMBERS or args[0] in (Any, EMPTY)
    return False


def yaml_forms(tp) -> str:
    """The YAML values a parameter annotated ``tp`` accepts, in words (``reduce blocks``)."""
    if tp in (Any, EMPTY):
        return "any value"
    if tp is type(None):
        return "null"
    simple = {bool: "true | false", int: "integer", float: "number", str: "text",
              Path: "path", PurePath: "path", dict: "mapping"}
    if tp in simple:
        return simple[tp]
    if _is_array(tp):
        return "number, list of numbers or {start, stop, n}"
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if _is_union(tp):
        forms: list[str] = []
        for a in get_args(tp):
            f = yaml_forms(a)
            if f not in forms:
                forms.append(f)
        return " | ".join(forms)
    if tp in (list, tuple) or origin in _SEQUENCES:
        args = get_args(tp)
        if origin is tuple and args and Ellipsis not in args:
            return f"list of {len(args)} items ({', '.join(yaml_forms(a) for a in args)})"
        item = yaml_forms(args[0]) if args else "value"
        return f"list of {item}s" + (" or {start, stop, n}" if accepts_range(tp) else "")
    if origin in _MAPPINGS:
        return "mapping"
    return describe(tp)


def _kind(value) -> str:
    """The YAML name of a value's type, for messages."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def coerce(value, tp, *, default=EMPTY):
    """``value`` converted to annotation ``tp``; raises :class:`CoercionError` when it cannot be.

    Without an annotation the default's type is used (an int default also accepts floats).
    """
    if tp in (Any, EMPTY):
        if default is EMPTY or default is None or type(default) not in (bool, int, float, str):
            return _plain(value)
        tp = Union[int, float] if type(default) is int else type(default)
    return _coerce(value, tp)


def _plain(value):
    """Any YAML value is accepted as is (YAML safe_load only yields plain types), except a
    non-finite number (``.nan``, ``.inf``): no parameter means anything by it."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CoercionError(f"expected a finite number, got {value!r}", _NONFINITE_HINT)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_NONFINITE_HINT = "NaN and infinity are not accepted: write a number"


def _coerce(value, tp):
    if tp in (Any, EMPTY):
        return value
    if tp is type(None):
        if value is None:
            return None
        raise CoercionError(f"expected null, got {_kind(value)}")
    origin = get_origin(tp)
    if origin is Literal:
        return _literal(value, get_args(tp))
    if _is_union(tp):
        return _union(value, get_args(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise CoercionError(f"expected true or false, got {_kind(value)} {_show(value)}")
    if tp is int:
        return _int(value)
    if tp is float:
        return _float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise CoercionError(f"expected a string, got {_kind(value)} {_show(value)}",
                            "quote the value" if value is not None else None)
    if tp in (Path, PurePath):
        if isinstance(value, str):
            return Path(value)
        raise CoercionError(f"expected a path (a string), got {_kind(value)}")
    if _is_array(tp):
        return _array(value)
    if tp in (list, tuple) or origin in _SEQUENCES:
        return _sequence(value, tp, origin or tp)
    if tp is dict or origin in _MAPPINGS:
        return _mapping(value, get_args(tp))
    raise CoercionError(f"cannot be set from a recipe (expects {describe(tp)})",
                        "the runner supplies this value")


def _literal(value, choices):
    for c in choices:
        if value == c and type(value) is type(c):
            return c
    hint = None
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
    raise CoercionError(f"{_show(value)} is not one of {', '.join(repr(c) for c in choices)}", hint)


def _union(value, args):
    non_none = [a for a in args if a is not type(None)]
    if value is None:
        if len(non_none) < len(args):
            return None
        raise CoercionError(f"expected {describe(Union[tuple(non_none)])}, got null")
    errors = []
    for a in non_none:
        try:
            return _coerce(value, a)
        except CoercionError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise CoercionError(f"expected {describe(Union[tuple(args)])}, got {_kind(value)} {_show(value)}")


def _int(value):
    if isinstance(value, bool):
        raise CoercionError(f"expected an integer, got a boolean ({value})")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise CoercionError(f"expected an integer, got {_kind(value)} {_show(value)}")


def _float(value):
    """A finite float from a YAML number or numeric string (``.nan``, ``.inf``, "nan" refused)."""
    if isinstance(value, bool):
        raise CoercionError(f"expected a number, got a boolean ({value})")
    out = None
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            pass
    if out is None:
        raise CoercionError(f"expected a number, got {_kind(value)} {_show(value)}")
    if not math.isfinite(out):
        raise CoercionError(f"expected a finite number, got {_show(value)}", _NONFINITE_HINT)
    return out


def _range(value: dict) -> list[float]:
    """``{start, stop, n}`` -> ``n`` evenly spaced values from start to stop inclusive."""
    unknown = sorted(set(value) - set(RANGE_KEYS), key=str)
    missing = [k for k in RANGE_KEYS if k not in value]
    if unknown or missing:
        raise CoercionError("a range is written {start: A, stop: B, n: N}"
                            + (f"; unknown key {unknown[0]!r}" if unknown else f"; missing {missing[0]!r}"))
    start, stop = _float(value["start"]), _float(value["stop"])
    n = _int(value["n"])
    if n < 1 or n > 10000:
        raise CoercionError(f"range n must be between 1 and 10000, got {n}")
    if n == 1:
        return [start]
    step = (stop - start) / (n - 1)
    return [start + i * step for i in range(n - 1)] + [stop]


def _sequence(value, tp, origin):
    if isinstance(value, dict):
        items = _range(value)
    elif isinstance(value, list):
        items = value
    else:
        raise CoercionError(f"expected a list, got {_kind(value)} {_show(value)}",
                            f"write [{_show(value)}]" if value is not None else None)
    args = get_args(tp)
    if origin is tuple and args and Ellipsis not in args:
        if len(items) != len(args):
            raise CoercionError(f"expected a list of {len(args)} items, got {len(items)}")
        types_ = list(args)
    else:
        types_ = [args[0] if args else Any] * len(items)
    out = []
    for i, (item, t) in enumerate(zip(items, types_)):
        try:
            out.append(_coerce(item, t))
        except CoercionError as e:
            raise CoercionError(f"item {i}: {e.message}", e.hint) from None
    return tuple(out) if origin is tuple else out


def _mapping(value, args):
    if not isinstance(value, dict):
        raise CoercionError(f"expected a mapping, got {_kind(value)} {_show(value)}")
    kt, vt = (args + (Any, Any))[:2] if args else (Any, Any)
    out = {}
    for k, v in value.items():
        try:
            out[_coerce(k, kt)] = _coerce(v, vt)
        except CoercionError as e:
            raise CoercionError(f"key {k!r}: {e.message}", e.hint) from None
    return out


def _array(value):
    """A number or a (nested) list of numbers, or a ``{start, stop, n}`` range, as plain lists."""
    if isinstance(value, dict):
        return _range(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _float(value)
    if isinstance(value, list):
        try:
            return [_array(v) if isinstance(v, list) else _float(v) for v in value]
        except CoercionError as e:
            raise CoercionError(f"expected numbers: {e.message}") from None
    raise CoercionError(f"expected a number or a list of numbers, got {_kind(value)} {_show(value)}")


def finite(value) -> bool:
    """True for a finite real number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
