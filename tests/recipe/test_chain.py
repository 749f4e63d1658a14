"""`reduce validate` checks the chain the runner would build: a recipe that cannot make a light
curve is an error naming what is missing, and NaN/inf are refused wherever a number is expected."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reduce.cli import cli
from reduce.model.errors import RecipeError
from reduce.recipe import loads_recipe

DEFAULT = (Path(__file__).resolve().parents[2] / "recipes" / "default.yaml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(RecipeError) as exc:
        loads_recipe(text, path="r.yaml")
    return exc.value.messages


def test_version_only_recipe_names_every_missing_step():
    msgs = problems("version: 1\n")
    assert len(msgs) == 3, msgs
    assert any("no block detects the stars (add PointSourceDetection to 'detection')" in m for m in msgs)
    assert any("no block aligns each frame" in m and "AlignReferenceSources" in m for m in msgs)
    assert any("no block measures the stars' fluxes" in m and "AperturePhotometry" in m for m in msgs)


def test_recipe_without_aperture_photometry_is_refused_at_its_section():
    text = "\n".join(ln for ln in DEFAULT.splitlines() if "AperturePhotometry" not in ln)
    msgs = problems(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("photometry:"))
    assert msgs == [f"r.yaml:{line}: this recipe cannot make a light curve: no block measures the "
                    "stars' fluxes in apertures (add AperturePhotometry to 'photometry')"]


def test_block_before_its_input_names_the_block_and_its_provider():
    text = "\n".join(ln for ln in DEFAULT.splitlines() if "PointSourceDetection" not in ln)
    msgs = problems(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "Cutouts" in ln)
    assert msgs[0] == (f"r.yaml:{line}: Cutouts needs 'sources', which no earlier block makes "
                       "(add PointSourceDetection before it)")
    assert len(msgs) == 1  # one message per missing input, not one per block using it


def test_pixel_apertures_need_no_fwhm():
    text = ("detection: [PointSourceDetection]\nphotometry:\n  - AlignReferenceSources\n"
            "  - AperturePhotometry: {radii: [4, 6], scale: pixels}\n"
            "  - AnnulusBackground: {inner: 10, outer: 15, scale: pixels}\n")
    assert loads_recipe(text).sections["photometry"]
    with_fwhm = text.replace("scale: pixels}\n  - Ann", "scale: fwhm}\n  - Ann")
    assert any("AperturePhotometry needs 'fwhm'" in m and "Moffat2D" in m for m in problems(with_fwhm))


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "'nan'", "'inf'"])
def test_nan_and_inf_are_refused_wherever_a_number_is_expected(value):
    msgs = problems(DEFAULT.replace("threshold: 5", f"threshold: {value}"))
    assert len(msgs) == 1 and "PointSourceDetection.threshold: expected a finite number" in msgs[0]
    ranged = DEFAULT.replace("start: 0.5", f"start: {value}")
    assert any("AperturePhotometry.radii" in m and "finite" in m for m in problems(ranged))
    listed = DEFAULT.replace("{start: 0.5, stop: 4.0, n: 30}", f"[1.0, {value}]")
    assert any("AperturePhotometry.radii" in m and "finite" in m for m in problems(listed))
    for field in ("bin: 0.005", "sigma_clip: {sky: 3}"):
        key = field.split(":")[0]
        bad = DEFAULT.replace(field, field.replace("0.005", value).replace("3}", f"{value}}}"))
        assert any(key in m for m in problems(bad)), field


def test_validate_command_exits_2_on_a_recipe_that_cannot_run(tmp_path):
    p = tmp_path / "v1.yaml"
    p.write_text("version: 1\n")
    result = CliRunner().invoke(cli, ["validate", str(p)])
    assert result.exit_code == 2
    assert "cannot make a light curve" in result.stderr and "3 problems" in result.stderr
