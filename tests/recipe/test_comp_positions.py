"""Comparison stars given by position in a recipe (``differential: {comps: [{x: .., y: ..}]}``)."""
from __future__ import annotations

import pytest
import yaml

from .test_spec import errors_of, load


def test_comps_by_position_parse_and_imply_diff():
    d = load("differential: {comps: [{x: 10.5, y: 20}, {x: 30, y: 40.25}], weights: [1, 3]}\n").differential
    assert d.method == "diff" and d.comps is None
    assert d.comp_positions == ((10.5, 20.0), (30.0, 40.25))
    assert d.weights == (1.0, 3.0)
    plain = d.to_plain()
    assert plain["comps"] == [{"x": 10.5, "y": 20.0}, {"x": 30.0, "y": 40.25}]
    again = load(yaml.safe_dump({"differential": plain})).differential  # the provenance's copy reloads
    assert again.comp_positions == d.comp_positions and again.weights == d.weights


@pytest.mark.parametrize("text, fragment", [
    ("differential: {comps: [{x: 10}]}\n", "comparison 0 must be a position {x: .., y: ..}"),
    ("differential: {comps: [{x: 1, y: 2}, {x: a, y: 2}]}\n", "comparison 1 must be a position"),
    ("differential: {comps: [{x: 1, y: 2, z: 3}]}\n", "unknown key 'z'"),
    ("differential: {comps: [{x: 1, y: 2}, {x: 1, y: 2}]}\n", "lists a position twice"),
    ("differential: {comps: [{x: 1, y: 2}, 3]}\n", "list of star indices"),
    ("differential: {comps: [{x: 1, y: 2}], weights: [1, 2]}\n", "weights has 2 values for 1 comparison"),
])
def test_bad_comp_positions_are_reported(text, fragment):
    messages = errors_of(text)
    assert any(fragment in m for m in messages), messages
    assert not any("only used with method" in m for m in messages), messages  # comps still mean diff
