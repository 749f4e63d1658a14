"""Provenance records: checksums, versions, determinism, atomic JSON + YAML."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from reduce.model.flags import Flag
from reduce.io.provenance import (content_checksum, file_checksum, package_versions, provenance_record,
                                  to_plain, write_provenance)
from reduce.recipe import loads_recipe

from ..recipe._blocks import REGISTRY


@pytest.fixture
def night(tmp_path):
    d = tmp_path / "night"
    d.mkdir()
    rng = np.random.default_rng(1)
    paths = []
    for i in range(6):
        p = d / f"light_{i:03d}.fits"
        p.write_bytes(rng.integers(0, 255, 3000 + 1000 * i, dtype=np.uint8).tobytes())
        paths.append(p)
    return d, paths


@pytest.fixture
def spec():
    return loads_recipe("calibration:\n  - Scale: {factor: 2}\ntarget: {x: 10, y: 20}\n",
                        path="recipes/r.yaml", registry=REGISTRY, check_chain=False)


def record_for(spec, night, **kw):
    d, paths = night
    args = dict(recipe_spec=spec, config_source="built-in", inputs=paths,
                calibration={"bias": [d / "bias_1.fits"], "flats": [], "why": "same telescope"},
                reference=paths[2], aperture={"index": 7, "radius": np.float64(4.5)},
                comparisons=np.array([1, 3]), weights=np.array([0.25, 0.75]),
                flagged=[(paths[4], int(Flag.NO_SOURCES | Flag.UNREADABLE), "no stars")],
                extra={"nan": float("nan")}, root=d)
    args.update(kw)
    return provenance_record(**args)


def test_record_contents(spec, night):
    d, paths = night
    rec = record_for(spec, night)
    assert rec["schema"] == 1 and rec["config"] == "built-in"
    assert [e["file"] for e in rec["inputs"]] == [p.name for p in paths]  # relative to the night
    for entry, p in zip(rec["inputs"], paths):
        assert entry["size"] == p.stat().st_size
        assert entry["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert rec["reference"] == "light_002.fits"
    assert rec["recipe"]["text"] == spec.text and rec["recipe"]["sha256"] == spec.sha256
    assert rec["recipe"]["resolved"]["target"] == {"x": 10.0, "y": 20.0}
    assert rec["missing_calibration"] == "warn"
    assert rec["calibration"] == {"bias": ["bias_1.fits"], "flats": [], "why": "same telescope"}
    assert rec["aperture"] == {"index": 7, "radius": 4.5} and rec["weights"] == [0.25, 0.75]
    assert rec["comparisons"] == [1, 3]
    assert rec["flagged"] == [{"file": "light_004.fits", "flags": 3, "names": ["UNREADABLE", "NO_SOURCES"],
                               "reason": "no stars"}]
    assert rec["extra"] == {"nan": None}
    sw = rec["software"]
    assert sw["numpy"] == np.__version__ and {"reduce", "scipy", "astropy", "photutils", "sep", "python"} <= set(sw)


def test_known_checksums_are_reused(spec, night):
    d, paths = night
    rec = record_for(spec, night, checksums={str(paths[0]): "f" * 64})
    assert rec["inputs"][0]["sha256"] == "f" * 64
    assert rec["inputs"][1]["sha256"] == file_checksum(paths[1])


def test_deterministic_apart_from_created(spec, night):
    a = record_for(spec, night)
    b = record_for(spec, night, created="2000-01-01T00:00:00+00:00")
    assert a["created"] != b["created"] and content_checksum(a) == content_checksum(b)
    text = json.dumps(a)
    import getpass
    import socket
    assert socket.gethostname() not in text and getpass.getuser() not in text.replace(str(night[0]), "")
    night[1][0].write_bytes(b"changed")
    assert content_checksum(record_for(spec, night)) != content_checksum(a)


def test_write_json_and_yaml(spec, night, tmp_path):
    rec = record_for(spec, night)
    out = tmp_path / "out"
    out.mkdir()
    written = write_provenance(rec, out / "x_provenance.json")
    assert [p.name for p in written] == ["x_provenance.json", "x_provenance.yaml"]
    from_json = json.loads(written[0].read_text())
    from_yaml = yaml.safe_load(written[1].read_text())
    assert from_json == from_yaml == to_plain(rec)
    assert "text: |" in written[1].read_text()  # the recipe text stays readable
    assert sorted(p.name for p in out.iterdir()) == ["x_provenance.json", "x_provenance.yaml"]


def test_package_versions_handles_missing():
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v["numpy"] == np.__version__ and v["surely-not-installed-pkg"] is None


@pytest.mark.parametrize("note", ["plain ≥ µ é", "an emoji \U0001F52D"])
def test_yaml_text_is_the_python_emitters(spec, night, tmp_path, note):
    """The (libyaml) YAML is the very text of PyYAML's Python emitter, emoji included."""
    from reduce.io.provenance import _yaml_dump

    rec = record_for(spec, night)
    rec["extra"] = {"note": note}
    written = write_provenance(rec, tmp_path / "p.json")
    assert written[1].read_text(encoding="utf-8") == _yaml_dump(to_plain(rec), libyaml=False)
