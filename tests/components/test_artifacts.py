from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from components import artifacts


def test_atomic_write_keeps_previous_bytes_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    artifacts.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), artifacts.atomic_path(target) as tmp:
        tmp.write_bytes(b"half-writ")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_dir_replaces_the_whole_folder_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    with artifacts.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError), artifacts.atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with artifacts.atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_sha256_matches_hashlib_and_file_uri_reads_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"a" * 3_000_000)
    assert artifacts.sha256_file(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    assert artifacts.sha256_uri(path.as_uri()) == artifacts.sha256_file(path)
