"""Product file names: one safe stem per group (reduce.io.names)."""
from __future__ import annotations

import datetime as dt

import pytest

from reduce.io.names import safe_stem


@pytest.mark.parametrize("parts, expected", [
    (("2024-05-01", "T1", "HAT-P-32/b", "r'"), "2024-05-01_T1_HAT-P-32_b_r"),
    ((dt.date(2024, 5, 1), "Tel 60cm", "KIC 8462852", "I+z"), "2024-05-01_Tel_60cm_KIC_8462852_I+z"),
    (("../..", "..", "../x", "/etc/passwd"), "unknown_unknown_x_etc_passwd"),
    ((None, "", "  ", "V"), "unknown_unknown_unknown_V"),
    (("2024", "Télescope", "NGC\\1234", ".hidden"), "2024_Telescope_NGC_1234_hidden"),
])
def test_safe_stem(parts, expected, tmp_path):
    stem = safe_stem(*parts)
    assert stem == expected
    path = tmp_path / f"{stem}.csv"
    assert path.resolve().parent == tmp_path.resolve() and not stem.startswith(".") and "/" not in stem
