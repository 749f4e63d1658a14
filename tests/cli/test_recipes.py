"""`reduce validate` and `reduce blocks`."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import reduce.blocks as block_module
from reduce.cli import cli

from ..recipe._blocks import REGISTRY


# the steps every recipe needs to make a light curve (validate checks the chain), in real blocks
CHAIN = ("detection:\n  - PointSourceDetection\nphotometry:\n  - AlignReferenceSources\n"
         "  - AperturePhotometry: {scale: pixels}\n")


@pytest.fixture
def runner(monkeypatch):
    real = block_module.registry()
    monkeypatch.setattr(block_module, "registry", lambda: {**real, **REGISTRY})
    monkeypatch.setenv("COLUMNS", "100")
    return CliRunner()


def test_validate_valid_recipe_prints_the_chain(runner, tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("calibration:\n  - Scale: {factor: 2}\n  - Needs: {size: 3}\nreference: middle\ntarget: 4\n"
                 + CHAIN)
    result = runner.invoke(cli, ["validate", str(p)])
    assert result.exit_code == 0, result.output
    assert f"{p}: valid recipe" in result.stdout
    assert "Scale(factor=2.0) -> Needs(size=3)" in result.stdout
    assert "middle frame" in result.stdout and "source #4" in result.stdout


def test_validate_reports_every_error_and_exits_2(runner, tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("psf:\n  - Model\n" + CHAIN)
    bad = tmp_path / "bad.yaml"
    bad.write_text("calibration:\n  - Scael\n  - Scale: {factor: x}\nreference: frist\n")
    result = runner.invoke(cli, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    err = result.stderr.splitlines()
    assert f"{bad}:2: unknown block 'Scael' in 'calibration' (did you mean 'Scale'?)" in err
    assert f"{bad}:3: Scale.factor: expected a number, got a string 'x'" in err
    assert f"{bad}:4: invalid reference 'frist' (did you mean 'first'?)" in err
    assert f"{bad}: 3 problems" in err
    assert f"{good}: valid recipe" in result.stdout


def test_validate_yaml_error_and_missing_file(runner, tmp_path):
    bad = tmp_path / "syntax.yaml"
    bad.write_text("version: 1\ncalibration:\n  - Scale: [1,\n")
    result = runner.invoke(cli, ["validate", str(bad), str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert f"{bad}:3: YAML syntax error" in result.stderr
    assert "none.yaml: no such recipe file" in result.stderr


def test_blocks_lists_names_docs_and_parameters(runner):
    result = runner.invoke(cli, ["blocks"])
    assert result.exit_code == 0, result.output
    for name in REGISTRY:
        assert name in result.stdout
    assert "Multiply the pixels by" in result.stdout
    assert "factor: float = 1.0" in result.stdout
    assert "size: int (required)" in result.stdout
    assert "frames" not in result.stdout  # runner-supplied parameters are not offered


def test_blocks_name_shows_full_doc_and_all_parameters(runner):
    result = runner.invoke(cli, ["blocks", "Needs"])
    assert result.exit_code == 0, result.output
    assert "A block with a required parameter" in result.stdout
    assert "required" in result.stdout and "runner" in result.stdout
    result = runner.invoke(cli, ["blocks", "Scale"])
    assert "'mul' | 'add'" in result.stdout and "list[float] | None" in result.stdout
    assert "longer description" in result.stdout


def test_blocks_unknown_name_is_a_usage_error(runner):
    from reduce.model.errors import UsageError

    result = runner.invoke(cli, ["blocks", "Scal"])
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
    assert "did you mean 'Scale'?" in str(result.exception)


def test_plain_text_drops_rest_markup():
    from reduce.cli.recipes import plain_text

    doc = ("Collect into a :class:`~reduce.lightcurve.fluxes.Fluxes` (``self.fluxes``), see :func:`reduce.x.f` "
           "and :mod:`.asterism`, :ref:`the guide <guide>`, `default role`; the equation::\n\n    a = b")
    assert plain_text(doc) == ("Collect into a Fluxes (self.fluxes), see reduce.x.f and asterism, "
                               "the guide, default role; the equation:\n\n    a = b")


def test_real_blocks_render_as_plain_text_with_every_parameter_form(monkeypatch):
    """Every shipped block: no reST left in `reduce blocks` (overview and details), and list
    parameters say they take the {start, stop, n} form the shipped recipes use."""
    import reduce.console
    from reduce.blocks import registry

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(reduce.console, "_console", None)  # made again, at this width
    runner = CliRunner()
    overview = runner.invoke(cli, ["blocks"])
    assert overview.exit_code == 0, overview.output
    texts = [overview.stdout]
    for name in registry():
        result = runner.invoke(cli, ["blocks", name])
        assert result.exit_code == 0, result.output
        texts.append(result.stdout)
    for text in texts:
        for markup in ("``", ":class:", ":func:", ":mod:", ":meth:", "::\n"):
            assert markup not in text, (markup, text[:400])
    assert "radii: list[float] | None = None *" in overview.stdout
    assert "{start: A, stop: B, n: N}" in overview.stdout
    detail = runner.invoke(cli, ["blocks", "AperturePhotometry"]).stdout
    assert "list of numbers or {start, stop, n} | null" in detail
    assert "radii: {start: 0.5, stop: 4.0, n: 30}" in detail
    trim = runner.invoke(cli, ["blocks", "Trim"]).stdout
    assert "integer | list of 2 items (integer, integer) | null" in trim
