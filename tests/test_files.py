"""Atomic, symlink-safe file primitives."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctx._core.errors import StoreError
from agentctx._core.files import atomic_write, clean_orphans, read_file


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    atomic_write(path, b"old", durable=False)
    atomic_write(path, b"new" * 1000, durable=False)
    assert path.read_bytes() == b"new" * 1000


def test_write_over_a_directory_cleans_its_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.mkdir()  # rename onto a directory fails after the temp was written
    with pytest.raises(StoreError):
        atomic_write(target, b"data", durable=True)
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_orphan_temps_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    (tmp_path / ".state.json.123.0.tmp").write_bytes(b"half")
    (tmp_path / ".other.json.1.0.tmp").write_bytes(b"not ours")
    assert clean_orphans(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.1.0.tmp"]


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not read")
    link = tmp_path / "state.json"
    link.symlink_to(secret)
    with pytest.raises(StoreError):
        read_file(link)
    atomic_write(link, b"replaced", durable=True)  # replaces the link, not its target
    assert secret.read_bytes() == b"do not read"
    assert not link.is_symlink() and link.read_bytes() == b"replaced"
