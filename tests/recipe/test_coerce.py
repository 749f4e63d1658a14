"""Coercion of YAML values by annotation, and which parameters a recipe may set."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pytest

from reduce.recipe.coerce import (CoercionError, coerce, describe, is_settable, resolve_annotations,
                                  runtime_parameters, settable_parameters)

from ._blocks import Model, Needs, Opaque, Scale


@pytest.mark.parametrize("value, tp, expected", [
    (5, float, 5.0),
    ("1e-3", float, 1e-3),
    (4.0, int, 4),
    (None, Optional[int], None),
    (3, int | str, 3),
    ("a", int | str, "a"),
    ([1, 2], tuple[int, int], (1, 2)),
    ([1, 2, 3], tuple[int, ...], (1, 2, 3)),
    ({"start": 0, "stop": 1, "n": 3}, list[float], [0.0, 0.5, 1.0]),
    ({"start": 2, "stop": 2, "n": 1}, list[float], [2.0]),
    ({"a": 1}, dict[str, float], {"a": 1.0}),
    ([[1, 2]], np.ndarray, [[1.0, 2.0]]),
    (3, np.ndarray, 3.0),
    ("x.fits", Path, Path("x.fits")),
    ({"any": [1]}, Any, {"any": [1]}),
    ("mul", Literal["mul", "add"], "mul"),
])
def test_coerce_accepts(value, tp, expected):
    got = coerce(value, tp)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, tp, fragment", [
    (True, int, "got a boolean"),
    (2.5, int, "expected an integer"),
    ("abc", float, "expected a number, got a string 'abc'"),
    (1, bool, "expected true or false"),
    (3, str, "expected a string"),
    (3, list[float], "expected a list"),
    ([1, "x"], list[int], "item 1: expected an integer"),
    ([1, 2, 3], tuple[int, int], "expected a list of 2 items"),
    ({"start": 0, "n": 3}, list[float], "missing 'stop'"),
    ({"start": 0, "stop": 1, "n": 0}, list[float], "between 1 and 10000"),
    ({"a": "b"}, dict[str, float], "key 'a': expected a number"),
    ("mull", Literal["mul", "add"], "not one of"),
    (None, int, "expected an integer, got null"),
    (3, Opaque, "cannot be set from a recipe"),
])
def test_coerce_rejects(value, tp, fragment):
    with pytest.raises(CoercionError, match=None) as info:
        coerce(value, tp)
    assert fragment in info.value.message


def test_unannotated_parameters_follow_their_default():
    assert coerce(3, Any, default=2.0) == 3.0
    assert coerce(2.5, Any, default=2) == 2.5  # an int default also takes floats
    with pytest.raises(CoercionError):
        coerce("x", Any, default=True)
    assert coerce([1], Any, default=None) == [1]


def test_describe_and_settable():
    assert describe(int | None) == "int | None"
    assert describe(tuple[int, int]) == "tuple[int, int]"
    assert describe(Literal["a", "b"]) == "'a' | 'b'"
    assert describe(list[float]) == "list[float]"
    assert is_settable(list[float] | None) and is_settable(np.ndarray)
    assert not is_settable(Opaque | None) and not is_settable(list[Opaque])


def test_runtime_parameters():
    assert runtime_parameters(Needs) == ("frames", "reference")  # declared + a name the runner supplies
    assert runtime_parameters(Model) == ("model",)  # no YAML value can be an Opaque
    assert list(settable_parameters(Scale)) == ["factor", "mode", "radii", "n", "flag", "margin", "weights"]
    hints = resolve_annotations(Scale)
    assert hints["mode"] == Literal["mul", "add"]
