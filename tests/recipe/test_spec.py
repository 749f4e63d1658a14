"""Recipe loading and validation: parsed values, every error with its line, hints."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from reduce.model.errors import RecipeError
from reduce.recipe import (RecipeSpec, ReferenceSpec, TargetSpec, load_recipe, loads_recipe,
                           reference_from_string, target_from_string)

from ._blocks import REGISTRY

GOOD = textwrap.dedent("""\
    version: 1
    description: test chain
    calibration:
      - Scale: {factor: 2}
      - Needs: {size: 5}
    detection:
      - Scale
    psf: {Scale: {mode: add}, Model: {sigma: 2}}
    photometry:
      - Scale:
          radii: {start: 1, stop: 3, n: 5}
          margin: [2, 3]
          weights: [[1, 2], [3, 4]]
          n: 4.0
          factor: "1e-3"
    reference: {frame: best, sample: 7}
    target: {ra: "12:30:00", dec: "-45:30:00"}
    differential: {exclude: [3], sigma_clip: {sky: 3}, bin: 0.005}
    missing_calibration: fail
    outputs: {plot: false}
    """)


def load(text, **kw):
    kw.setdefault("check_chain", False)  # toy blocks: the chain check has its own tests
    return loads_recipe(textwrap.dedent(text), path="r.yaml", registry=REGISTRY, **kw)


def errors_of(text) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load(text)
    assert info.value.exit_code == 2
    return info.value.messages


def test_valid_recipe_values_are_coerced_and_defaults_filled():
    spec = load(GOOD)
    assert isinstance(spec, RecipeSpec) and spec.description == "test chain"
    assert [b.name for b in spec.sections["calibration"]] == ["Scale", "Needs"]
    assert spec.sections["calibration"][0].params == {"factor": 2.0}
    assert isinstance(spec.sections["calibration"][0].params["factor"], float)
    assert spec.sections["calibration"][1].line == 5
    assert [b.name for b in spec.sections["psf"]] == ["Scale", "Model"]  # mapping form keeps order
    p = spec.sections["photometry"][0].params
    assert p["radii"] == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert p["margin"] == (2, 3) and p["n"] == 4 and isinstance(p["n"], int)
    assert p["weights"] == [[1.0, 2.0], [3.0, 4.0]] and p["factor"] == pytest.approx(1e-3)
    assert spec.reference == ReferenceSpec("best", None, 7)
    assert spec.target.kind == "sky"
    assert spec.target.ra == pytest.approx(187.5) and spec.target.dec == pytest.approx(-45.5)
    d = spec.differential
    assert (d.method, d.exclude, d.sigma_clip, d.bin) == ("autodiff", (3,), {"sky": 3.0}, 0.005)
    assert spec.missing_calibration == "fail"
    assert (spec.outputs.plot, spec.outputs.csv) == (False, True)
    assert spec.text == textwrap.dedent(GOOD) and spec.raw["version"] == 1
    assert len(spec.sha256) == 64


def test_resolved_dict_round_trips():
    spec = load(GOOD)
    again = load(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    assert again.to_dict() == spec.to_dict()
    assert again.sections["photometry"][0].params == spec.sections["photometry"][0].params


def test_every_error_is_collected_with_its_line():
    messages = errors_of("""\
        version: 2
        calibraton: []
        calibration:
          - Scal
          - Scale: {factr: 2, mode: mull}
          - Scale: {n: 2.5, flag: "yes", radii: [1, x]}
          - Needs: {frames: [a.fits]}
          - Scale: {factor: -1}
          - Model: {model: 3}
        reference: bestt
        target: {x: 3, z: 4}
        missing_calibration: maybe
        differential: {method: autodif, bin: -1}
        outputs: {csv: 1}
        """)
    expected = [
        (1, "unsupported recipe version 2"),
        (2, "unknown section 'calibraton' (did you mean 'calibration'"),
        (4, "unknown block 'Scal' in 'calibration' (did you mean 'Scale'?)"),
        (5, "Scale: unknown parameter 'factr' (did you mean 'factor'?)"),
        (5, "Scale.mode: 'mull' is not one of 'mul', 'add' (did you mean 'mul'?)"),
        (6, "Scale.n: expected an integer, got a number 2.5"),
        (6, "Scale.flag: expected true or false"),
        (6, "Scale.radii: item 1: expected a number"),
        (7, "Needs: 'frames' is supplied by the runner"),
        (7, "Needs: missing required parameter 'size'"),
        (8, "Scale: factor must be positive, got -1.0"),
        (9, "Model: 'model' is supplied by the runner"),
        (10, "invalid reference 'bestt' (did you mean 'best'?)"),
        (11, "unknown key 'z' in 'target'"),
        (12, "invalid missing_calibration 'maybe' (warn or fail)"),
        (13, "unknown differential method 'autodif' (did you mean 'autodiff'?)"),
        (13, "bin must be a positive width in days"),
        (14, "outputs csv must be true or false"),
    ]
    for line, text in expected:
        assert any(m.startswith(f"r.yaml:{line}: ") and text in m for m in messages), (line, text, messages)
    assert len(messages) == len(expected), messages
    lines = [int(m.split(":")[1]) for m in messages]
    assert lines == sorted(lines)


def test_constructor_check_runs_on_the_valid_parameters_of_a_partly_bad_block():
    messages = errors_of("""\
        calibration:
          - Scale: {factor: -2, n: oops}
        """)
    assert any("Scale.n: expected an integer" in m for m in messages)
    assert any("factor must be positive" in m for m in messages)


@pytest.mark.parametrize("text, line, fragment", [
    ("calibration:\n  - Scale: {factor: 2\n  - Needs\n", 2, "flow mapping"),
    ("version: 1\ncalibration:\n\t- Scale\n", 3, "indent with spaces"),
    ("version: 1\ntarget: [1, 2\n", 2, "YAML syntax error"),
    ("a: b\n  c: d\n", 2, "YAML syntax error"),
])
def test_yaml_syntax_errors_carry_the_line(text, line, fragment):
    with pytest.raises(RecipeError) as info:
        loads_recipe(text, path="bad.yaml", registry=REGISTRY, check_chain=False)
    (message,) = info.value.messages
    assert message.startswith(f"bad.yaml:{line}: ") and fragment in message, message


def test_duplicate_keys_are_reported():
    messages = errors_of("""\
        calibration:
          - Scale: {factor: 2, factor: 3}
        target: 1
        target: 2
        """)
    assert any(m.startswith("r.yaml:2: duplicate key 'factor'") for m in messages)
    assert any(m.startswith("r.yaml:4: duplicate key 'target' (first written on line 3)") for m in messages)


def test_list_item_with_two_blocks_is_an_indentation_hint():
    messages = errors_of("photometry:\n  - Scale:\n    factor: 2\n")
    assert messages == ["r.yaml:2: one block per list item, found Scale, factor (indent the parameters "
                        "under the block name, or start each block with '- ')"]


@pytest.mark.parametrize("text, fragment", [
    ("", "the recipe is empty"),
    ("- Scale\n", "a recipe is a mapping of sections"),
    ("calibration: Scale\n", "section 'calibration' must be a list of blocks"),
    ("calibration:\n  - Scale: 3\n", "parameters of Scale must be a mapping"),
    ("target: -1\n", "target index must be >= 0"),
    ("target: {x: 3}\n", "target needs both x and y"),
    ("target: {ra: 400, dec: 0}\n", "ra must be in [0, 360)"),
    ("target: {x: -1, y: 2}\n", "target x must be a pixel coordinate >= 0"),
    ("target: [1, 2]\n", "invalid target"),
    ("reference: -3\n", "reference index must be >= 0"),
    ("reference: {frame: first, sample: 3}\n", "only used with frame: best"),
    ("differential: {method: diff}\n", "needs a non-empty 'comps'"),
    ("differential: {comps: [1, 1]}\n", "lists a star twice"),
    ("differential: {comps: [1], method: autodiff}\n", "only used with method: diff"),
    ("differential: {sigma_clip: {sky: 0}}\n", "expected a positive number"),
    ("outputs: {pdf: true}\n", "unknown key 'pdf' in 'outputs'"),
])
def test_section_errors(text, fragment):
    messages = errors_of(text)
    assert any(fragment in m for m in messages), messages


def test_differential_comps_imply_diff():
    spec = load("differential: {comps: [1, 2, 4]}\n")
    assert spec.differential.method == "diff" and spec.differential.comps == (1, 2, 4)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml", registry=REGISTRY)
    with pytest.raises(RecipeError, match="is a directory"):
        load_recipe(tmp_path, registry=REGISTRY)
    p = tmp_path / "r.yaml"
    p.write_text("calibration:\n  - Scale: {factor: 0}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(p, registry=REGISTRY)
    assert info.value.messages == [f"{p}:2: Scale: factor must be positive, got 0.0"]


@pytest.mark.parametrize("text, expected", [
    ("3", TargetSpec("index", index=3)),
    ("auto", TargetSpec()),
    ("300.5, 200", TargetSpec("pixel", x=300.5, y=200.0)),
    ("424,286@HATP-32171220013343.FITS", TargetSpec("pixel", x=424.0, y=286.0, frame="HATP-32171220013343.FITS")),
    ("10, 20 @ light/f 1.fits", TargetSpec("pixel", x=10.0, y=20.0, frame="light/f 1.fits")),
    ("187.5 -45.5", TargetSpec("sky", ra=187.5, dec=-45.5)),
    ("12:30:00 -45:30:00", TargetSpec("sky", ra=187.5, dec=-45.5)),
    ("12h30m00s +45d30m00s", TargetSpec("sky", ra=187.5, dec=45.5)),
    ("12 30 00 -00 30 00", TargetSpec("sky", ra=187.5, dec=-0.5)),
])
def test_target_from_string(text, expected):
    got = target_from_string(text)
    assert got.kind == expected.kind and got.index == expected.index
    for f in ("x", "y", "ra", "dec"):
        assert getattr(got, f) == pytest.approx(getattr(expected, f))
    assert got.frame == expected.frame


@pytest.mark.parametrize("text", ["abc", "1,2,3", "-3,4", "10 95", "12:61:00 10:00:00", "1 2 3",
                                  "10,20@", "3@f.fits", "@f.fits"])
def test_target_from_string_rejects(text):
    with pytest.raises(ValueError):
        target_from_string(text)


def test_reference_from_string_and_overrides():
    assert reference_from_string("middle") == ReferenceSpec("middle")
    assert reference_from_string("12") == ReferenceSpec("index", 12)
    with pytest.raises(ValueError, match="did you mean 'first'"):
        reference_from_string("frist")
    spec = load(GOOD)
    other = spec.with_overrides(target="10,20", reference="first")
    assert other.target == TargetSpec("pixel", x=10.0, y=20.0) and other.reference == ReferenceSpec("first")
    assert spec.target.kind == "sky"  # the original is unchanged (frozen)
    with pytest.raises(ValueError):
        spec.with_overrides(target="nonsense")


def test_summary_names_the_chain():
    text = "\n".join(load(GOOD).summary())
    assert "calibration:   Scale(factor=2.0) -> Needs(size=5)" in text
    assert "best of 7 frames" in text and "RA 187.500000 Dec -45.500000" in text
    assert "outputs:       csv, ecsv, fits, provenance" in text


def test_differential_options_reach_fluxes_keywords():
    auto = load("differential: {max_comps: 8, reject: 2, exclude: [5], scatter: binned, bin: 0.01}\n").differential
    assert auto.fluxes_kwargs() == {"method": "binned", "dt": 0.01, "exclude": [5], "max_comps": 8, "reject": 2.0}
    diff = load("differential: {comps: [1, 2], weights: [1, 3], aperture: 4}\n").differential
    assert diff.fluxes_kwargs() == {"method": "p2p", "comps": [1, 2], "weights": [1.0, 3.0], "aperture": 4}
    assert load("differential: {}\n").differential.fluxes_kwargs() == {"method": "p2p", "exclude": []}


@pytest.mark.parametrize("text, fragment", [
    ("differential: {comps: [1, 2], weights: [1]}\n", "weights has 1 values for 2 comparison stars"),
    ("differential: {max_comps: 0}\n", "max_comps must be an integer >= 1"),
    ("differential: {comps: [1], max_comps: 3}\n", "'max_comps' is only used with method: autodiff"),
    ("differential: {weights: [1]}\n", "'weights' is only used with method: diff"),
    ("differential: {scatter: binned}\n", "scatter: binned needs a bin width"),
    ("differential: {scatter: rms}\n", "unknown scatter measure 'rms'"),
    ("differential: {reject: -1}\n", "reject must be a positive number"),
])
def test_differential_option_errors(text, fragment):
    messages = errors_of(text)
    assert any(fragment in m for m in messages), messages


def test_pixel_target_on_a_named_frame_in_a_recipe():
    """{x, y, frame} validates and round-trips; a frame that is not a file name is reported."""
    spec = load("target: {x: 424, y: 286.5, frame: HATP-32171220013343.FITS}\n")
    assert spec.target == TargetSpec("pixel", x=424.0, y=286.5, frame="HATP-32171220013343.FITS")
    assert spec.to_dict()["target"] == {"x": 424.0, "y": 286.5, "frame": "HATP-32171220013343.FITS"}
    assert "on HATP-32171220013343.FITS" in str(spec.target)
    assert load("target: {x: 4, y: 5}\n").target.frame is None
    assert "first frame" in str(load("target: {x: 4, y: 5}\n").target)
    assert errors_of("target: {x: 4, y: 5, frame: 7}\n") == [
        "r.yaml:1: target frame must be a file name, got 7 (the name of a light frame, or its path "
        "relative to the night folder)"]
    assert "did you mean 'frame'" in errors_of("target: {x: 4, y: 5, fram: a.fits}\n")[0]


@pytest.mark.parametrize("text, fragment", [
    ("differential: {max_light_loss: 1.2}\n", "max_light_loss must be a fraction between 0 and 1"),
    ("differential: {max_light_loss: yes}\n", "max_light_loss must be a fraction"),
    ("differential: {outlier_guard: 5}\n", "outlier_guard must be a mapping or off"),
    ("differential: {outlier_guard: {sigma: -1}}\n", "outlier_guard sigma must be a positive number"),
    ("differential: {outlier_guard: {window: 3}}\n", "outlier_guard window must be an integer >= 5"),
    ("differential: {outlier_guard: {sigmas: 5}}\n", "unknown key 'sigmas'"),
])
def test_cloud_and_guard_options_are_validated(text, fragment):
    messages = errors_of(text)
    assert any(fragment in m and m.startswith("r.yaml:1:") for m in messages), messages


def test_cloud_and_guard_defaults_and_off():
    d = load("photometry: [Scale]\n").differential
    assert d.max_light_loss == 0.8 and d.outlier_guard == {"sigma": 5.0, "window": 15}
    off = load("photometry: [Scale]\ndifferential: {max_light_loss: off, outlier_guard: off}\n").differential
    assert off.max_light_loss is None and off.outlier_guard is None
    assert off.to_plain()["outlier_guard"] == "off" and off.to_plain()["max_light_loss"] == "off"
    mine = load("photometry: [Scale]\ndifferential: {max_light_loss: 0.5, outlier_guard: {sigma: 7}}\n")
    assert mine.differential.max_light_loss == 0.5
    assert mine.differential.outlier_guard == {"sigma": 7.0, "window": 15}
    again = load("photometry: [Scale]\n" + yaml.safe_dump({"differential": off.to_plain()})).differential
    assert again.max_light_loss is None and again.outlier_guard is None  # the resolved recipe round-trips
