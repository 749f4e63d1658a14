"""Headers, recipes and --target read sky angles with the one parser: the same text, the same angle."""
import pytest

from reduce.index.headers import describe
from reduce.model.angles import dec_degrees, parse_angle, ra_degrees
from reduce.recipe.fields import target_from_string


@pytest.mark.parametrize("text, ra", [("12:30:00", 187.5), ("12h30m00s", 187.5), ("12 30 00", 187.5),
                                      ("187.5", 187.5), ("180:30:00", 180.5)])
def test_recipe_and_header_agree_on_ra(text, ra):
    assert ra_degrees(text) == pytest.approx(ra)
    assert target_from_string(f"{text.replace(' ', ':')} +10:00:00").ra == pytest.approx(ra)


def test_dec_is_degrees_with_its_sign():
    assert dec_degrees("-05:30:00") == pytest.approx(-5.5)
    assert dec_degrees("-00:30:00") == pytest.approx(-0.5)
    assert dec_degrees("95:00:00") is None


@pytest.mark.parametrize("text", ["12:75:00", "12:30:61", "a:b:c", "", "1:2:3:4"])
def test_unreadable_angles_are_refused_everywhere(text):
    assert parse_angle(text)[0] is None
    with pytest.raises(ValueError):
        target_from_string(f"{text} +10:00:00" if text else "x y")


def test_header_pointing_uses_the_same_rule():
    info = describe({"NAXIS": 2, "NAXIS1": 10, "NAXIS2": 10, "IMAGETYP": "Light Frame", "OBJECT": "T",
                     "DATE-OBS": "2024-03-15T03:00:00", "RA": "12:30:00", "DEC": "-05:30:00"}, "x.fits")
    assert info.ra == pytest.approx(187.5) and info.dec == pytest.approx(-5.5)
