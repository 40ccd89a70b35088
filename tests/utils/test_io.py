"""Atomic writes: all or nothing, and a place that cannot be written is named as the user gave it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes


def test_written_whole_or_not_at_all(tmp_path: Path):
    atomic_write_bytes(tmp_path / "sub" / "a.bin", b"first")
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="crashed"):
        with atomic_path(tmp_path / "sub" / "a.bin") as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("crashed")
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"first"  # the old file is intact
    assert sorted(path.name for path in (tmp_path / "sub").iterdir()) == ["a.bin"]  # no temporary left


def test_a_place_that_cannot_be_written_names_the_requested_file(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(NeroDataError, match=r"notes\.txt/mesh\.ply: cannot write here \("):
        atomic_write_bytes(tmp_path / "notes.txt" / "mesh.ply", b"data")
    with pytest.raises(NeroDataError, match=r"mesh\.ply: cannot write here \(No space left on device\)"):
        with atomic_path(tmp_path / "mesh.ply"):
            raise OSError(28, "No space left on device")  # as write() and close() raise it: no file name
    with pytest.raises(NeroDataError, match=r"mesh\.ply: cannot write here \(Permission denied\)"):
        with atomic_path(tmp_path / "mesh.ply") as temporary:
            raise OSError(13, "Permission denied", str(temporary))
    assert list(tmp_path.iterdir()) == [tmp_path / "notes.txt"]
    with pytest.raises(FileNotFoundError):  # an error about another file is not renamed
        with atomic_path(tmp_path / "mesh.ply"):
            (tmp_path / "missing-input.ply").read_bytes()
