"""Planning: which light group an unreadable or image-less file belongs to, and wrong-size frames."""
from __future__ import annotations

from reduce.index.groups import Group
from reduce.run.plan import _attach_unmeasured, _fold_wrong_sizes


def group(target, files, width=100, height=100, filter="V"):
    return Group(night="2024-03-15", telescope="T", filter=filter, type="light", target=target,
                 width=width, height=height, exposure=30.0, files=list(files))


def test_a_few_frames_of_another_size_become_rows_of_the_main_group():
    main = group("X", [f"/n/x_{i:03d}.fits" for i in range(12)])
    cropped = group("X", ["/n/x_100.fits"], width=60, height=40)
    other_target = group("Y", ["/n/y_000.fits"], width=60, height=40)
    kept, folded = _fold_wrong_sizes([main, cropped, other_target])
    assert kept == [main, other_target]
    assert folded == {id(main): [("/n/x_100.fits", "wrong size: 60x40 px, the group's frames are 100x100 px")]}


def test_many_frames_of_another_size_stay_a_group_of_their_own():
    """A change of binning mid-night is a second series, not bad frames."""
    main = group("X", [f"/n/x_{i:03d}.fits" for i in range(12)])
    binned = group("X", [f"/n/b_{i:03d}.fits" for i in range(6)], width=50, height=50)
    kept, folded = _fold_wrong_sizes([main, binned])
    assert kept == [main, binned] and folded == {}


def test_unmeasured_files_go_to_the_group_of_their_folder_and_name():
    v = group("X", ["/n/light/X_V_001.fits", "/n/light/X_V_002.fits"])
    r = group("X", ["/n/light/X_R_001.fits"], filter="R")
    elsewhere = group("Z", ["/m/Z_001.fits"])
    files = [("/n/light/X_V_003.fits", "empty file (0 bytes)"),   # V by its name
             ("/n/light/X_R_009.fits", "truncated"),              # R by its name
             ("/n/light/flat_001.fits", "truncated"),             # a flat by its name: no light group
             ("/n/light/other.fits", "truncated"),                # as close to V as to R: no group
             ("/q/X_V_004.fits", "truncated")]                    # no light frame in that folder
    out = _attach_unmeasured([v, r, elsewhere], files, config=None)
    assert out == {id(v): [("/n/light/X_V_003.fits", "empty file (0 bytes)")],
                   id(r): [("/n/light/X_R_009.fits", "truncated")]}
