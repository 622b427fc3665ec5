"""The durable state file, and the live snapshot read back as a typed State.

The durable state is written with `atomic_write(durable=True)` (temp + fsync +
rename + fsync of the directory); the live snapshot lives on tmpfs, where fsync
buys nothing, and is written with `durable=False`.

The durable file carries a CRC32 of its body so a bit flip is detected, not
believed. The file primitives (atomic, symlink-safe) live in agentctx._core.files.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Annotated, Final

import msgspec

from agentctx._core.errors import ProtocolError, StoreError
from agentctx._core.files import read_file
from agentctx._core.protocol import Event, State, state_from_dict
from agentctx._core.snapshot import read_snapshot_file
from sidecar.engine import DriveRuntime, Instant

__all__ = [
    "DURABLE_FORMAT",
    "Durable",
    "decode_durable",
    "encode_durable",
    "load_durable",
    "load_snapshot",
]

DURABLE_FORMAT: Final = 1


class Durable(msgspec.Struct, kw_only=True):
    """What must survive a crash: pressures, seq and the idempotency memory."""

    seq: Annotated[int, msgspec.Meta(ge=0)]
    # Never publish a seq above the lease without first saving a higher one, so a
    # restart can always start above every seq ever published (docs/design.md, "seq").
    seq_lease: Annotated[int, msgspec.Meta(ge=0)]
    last_tick: Instant
    saved_at: Instant
    boot_id: str
    drives: dict[str, DriveRuntime]
    # (request_id, seq of the ack) oldest first: a repeat gets its original ack.
    requests: list[tuple[str, int]] = []
    # drives a reload removed, as they were (a drive added back comes back there)
    retired: dict[str, DriveRuntime] = {}
    # real_time() - wall time at last_tick, within kernel boot `kernel_boot` (see
    # sidecar.clock): a restart in the same boot notices a clock step made meanwhile
    kernel_boot: str = ""
    clock_offset: float | None = None
    # events not yet known to be in the history: appended after this file is saved,
    # or at the next start (see agentctx._core.history)
    unlogged: list[Event] = []


class _Envelope(msgspec.Struct):
    format: int
    crc32: int
    body: msgspec.Raw


_durable_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_durable_decoder = msgspec.json.Decoder(Durable)


def encode_durable(state: Durable) -> bytes:
    body = _durable_encoder.encode(state)
    head = b'{"format":%d,"crc32":%d,"body":' % (DURABLE_FORMAT, zlib.crc32(body))
    return head + body + b"}\n"


def decode_durable(data: bytes, source: str) -> Durable:
    """Decode and verify a durable file, or raise StoreError saying what is wrong."""
    if not data.strip():
        raise StoreError(f"{source}: empty file")
    try:
        env = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise StoreError(f"{source}: unreadable ({exc})") from None
    if env.format != DURABLE_FORMAT:
        raise StoreError(f"{source}: format {env.format}, expected {DURABLE_FORMAT}")
    body = bytes(env.body)
    if zlib.crc32(body) != env.crc32:
        raise StoreError(f"{source}: checksum mismatch (file damaged)")
    try:
        return _durable_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise StoreError(f"{source}: invalid content ({exc})") from None


def load_durable(path: Path) -> Durable | None:
    data = read_file(path)
    return None if data is None else decode_durable(data, str(path))


def load_snapshot(path: Path) -> State | None:
    """The live snapshot as a typed State (None if absent); StoreError if unusable."""
    obj = read_snapshot_file(path)
    if obj is None:
        return None
    try:
        return state_from_dict(obj)
    except ProtocolError as exc:
        raise StoreError(f"{path}: {exc}") from None
