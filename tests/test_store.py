"""Atomic files and the checksummed durable state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentctx._core.errors import StoreError
from agentctx._core.files import atomic_write
from sidecar.engine import DriveRuntime
from sidecar.store import Durable, decode_durable, encode_durable, load_durable


def sample() -> Durable:
    return Durable(
        seq=7,
        seq_lease=10007,
        last_tick=1.5e9,
        saved_at=1.5e9,
        boot_id="b",
        drives={"CARE": DriveRuntime(pressure=3.25, last_satisfied=1.4e9)},
        requests=[("r1", 5), ("r2", 7)],
    )


def test_durable_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, encode_durable(sample()), durable=True)
    assert load_durable(path) == sample()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_truncated_empty_and_flipped_are_detected() -> None:
    data = encode_durable(sample())
    with pytest.raises(StoreError, match="empty"):
        decode_durable(b"", "f")
    for cut in range(1, len(data) - 2):  # the last two bytes are "}\n"
        with pytest.raises(StoreError):
            decode_durable(data[:cut], "f")
    survivors = 0
    for i in range(len(data)):
        for bit in (0x01, 0x10):
            flipped = bytearray(data)
            flipped[i] ^= bit
            try:
                got = decode_durable(bytes(flipped), "f")
            except StoreError:
                continue
            # only flips that keep the meaning (e.g. whitespace, key spelling ignored) pass
            assert got == sample()
            survivors += 1
    assert survivors < len(data) // 10


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert load_durable(tmp_path / "nothing.json") is None
