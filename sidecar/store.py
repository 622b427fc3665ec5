"""Atomic files: the live snapshot and the durable state.

Both are written to a temp file in the same directory and renamed over the old
one, so a reader (or a crash) only ever sees the whole old or the whole new file.
The durable state is also fsync'd before the rename and its directory after it:
without the first, a power cut can leave the new name pointing at an empty file;
without the second, the rename itself may not have reached the disk. The live
snapshot lives on tmpfs, where fsync buys nothing.

The durable file carries a CRC32 of its body so a bit flip is detected, not
believed. Files are opened with O_NOFOLLOW so a planted symlink is never followed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import zlib
from pathlib import Path
from typing import Annotated, Final

import msgspec

from agentctx.errors import ProtocolError, StoreError
from agentctx.protocol import State, decode_state

__all__ = [
    "DURABLE_FORMAT",
    "DriveRecord",
    "Durable",
    "atomic_write",
    "clean_orphans",
    "decode_durable",
    "encode_durable",
    "load_durable",
    "load_snapshot",
    "read_file",
]

log = logging.getLogger(__name__)

DURABLE_FORMAT: Final = 1
MAX_STATE_FILE: Final = 16 << 20  # a state is a few KiB; refuse to slurp anything absurd
_TMP_SUFFIX: Final = ".tmp"
_counter = itertools.count()

Pressure = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
Instant = Annotated[float, msgspec.Meta(ge=0.0, le=1e11)]


class DriveRecord(msgspec.Struct, kw_only=True):
    pressure: Pressure
    last_triggered: Instant | None = None
    last_satisfied: Instant | None = None


class Durable(msgspec.Struct, kw_only=True):
    """What must survive a crash: pressures, seq and the idempotency memory."""

    seq: Annotated[int, msgspec.Meta(ge=0)]
    # Never publish a seq above the lease without first saving a higher one, so a
    # restart can always start above every seq ever published (DESIGN.md, seq).
    seq_lease: Annotated[int, msgspec.Meta(ge=0)]
    last_tick: Instant
    saved_at: Instant
    boot_id: str
    drives: dict[str, DriveRecord]
    # (request_id, seq of the ack) oldest first: a repeat gets its original ack.
    requests: list[tuple[str, int]] = []


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


def read_file(path: Path, limit: int = MAX_STATE_FILE) -> bytes | None:
    """The bytes of *path*, None if absent. Never follows a symlink; StoreError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise StoreError(f"{path}: larger than {limit} bytes")
    return data


def load_durable(path: Path) -> Durable | None:
    data = read_file(path)
    return None if data is None else decode_durable(data, str(path))


def load_snapshot(path: Path) -> State | None:
    data = read_file(path)
    if data is None:
        return None
    try:
        return decode_state(data)
    except ProtocolError as exc:
        raise StoreError(f"{path}: {exc}") from None


def atomic_write(path: Path, data: bytes, *, durable: bool, mode: int = 0o600) -> None:
    """Replace *path* with *data* atomically; with ``durable``, crash-safely too.

    A failed write leaves the old file intact and no temp file behind. After an
    fsync error the data may be lost from the page cache (Linux drops dirty pages
    it could not write), so the caller must write a fresh file, never fsync again.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}{_TMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise StoreError(f"{tmp}: cannot create: {exc.strerror}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StoreError(f"{path}: cannot write: {exc.strerror}") from None
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot open for fsync: {exc.strerror}") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StoreError(f"{directory}: fsync failed: {exc.strerror}") from None
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def clean_orphans(path: Path) -> int:
    """Remove temp files a crashed writer of *path* left behind; return how many."""
    removed = 0
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(_TMP_SUFFIX):
            _unlink_quietly(Path(entry.path))
            removed += 1
    if removed:
        log.info("removed %d orphan temp file(s) of %s", removed, path)
    return removed
