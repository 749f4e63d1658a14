"""Atomic writes: the old file or the complete new one, never half; no temp files left."""
from __future__ import annotations

import os
import stat

import pytest

import reduce.io.atomic as atomic
from reduce.io.atomic import OutputError, atomic_write, atomic_write_bytes, atomic_write_text


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writes_text_and_bytes_with_normal_permissions(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "one\ntwo\n")
    assert p.read_text() == "one\ntwo\n"
    b = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert b.read_bytes() == b"\x00\x01"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o666 & ~umask  # as open() would, not mkstemp's 0600
    assert leftovers(tmp_path) == []


def test_replacing_keeps_the_existing_permissions(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and stat.S_IMODE(p.stat().st_mode) == 0o640


def test_exception_inside_the_block_leaves_the_old_file(tmp_path):
    p = tmp_path / "table.csv"
    p.write_text("previous\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(p) as f:
            f.write("half of a new fi")
            raise RuntimeError("boom")
    assert p.read_text() == "previous\n" and leftovers(tmp_path) == []


def test_injected_oserror_during_write(tmp_path, monkeypatch):
    p = tmp_path / "x.fits"
    p.write_bytes(b"old content")

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write_bytes(p, b"new content" * 1000)
    assert p.read_bytes() == b"old content" and leftovers(tmp_path) == []


def test_injected_oserror_during_replace(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OutputError, match="I/O error"):
        atomic_write_text(p, "{}")
    assert not p.exists() and leftovers(tmp_path) == []


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


def test_unwritable_directory_is_a_clear_error(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root ignores directory permissions: simulate what the OS would say
            def denied(*a, **k):
                raise PermissionError(13, "Permission denied")
            monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
        with pytest.raises(OutputError, match="is not writable"):
            atomic_write_text(ro / "a.txt", "x")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_bad_mode():
    with pytest.raises(ValueError):
        with atomic_write("x", "a"):
            pass
