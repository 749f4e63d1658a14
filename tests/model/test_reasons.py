"""Flag reasons are grouped by kind: one line per kind, with its count and range."""
from reduce.model.reasons import group_reasons


def test_forty_sky_outliers_make_one_line_with_their_range():
    flagged = [(f"f{i}.fits", 64, f"sky outlier: {3.1 + 0.1 * (i % 27):.1f} sigma from its trend (> 3)")
               for i in range(40)]
    flagged += [("a.fits", 64, "target outlier: 7.3 sigma from its neighbours (> 5)"),
                ("b.fits", 512, "Moffat2D: fwhm=0.65"), ("c.fits", 512 | 64, "Moffat2D: fwhm=0.7")]
    groups = group_reasons(flagged)
    assert groups[0] == {"reason": "sky outlier: 3.1-5.7 sigma from its trend (> 3)", "frames": 40,
                         "flag": 64, "range": [3.1, 5.7]}
    assert {"reason": "Moffat2D: fwhm=0.65-0.7", "frames": 2, "flag": 576, "range": [0.65, 0.7]} in groups
    assert {"reason": "target outlier: 7.3 sigma from its neighbours (> 5)", "frames": 1, "flag": 64,
            "range": None} in groups
    assert len(groups) == 3


def test_no_flags_no_groups():
    assert group_reasons([]) == []
