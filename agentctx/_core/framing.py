"""Length-prefixed framing of wire protocol v1, as pure functions.

A frame is a 4-byte unsigned big-endian length N, then N bytes of UTF-8 JSON.
1 <= N <= max_frame. Nothing here touches a socket, so every edge case (split
headers, oversize lengths, empty frames) is testable with plain bytes.

Stdlib only: the hook fast path frames its two messages with this module.
"""

from __future__ import annotations

import struct

from agentctx._core.errors import FrameTooLarge, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "MAX_FRAME_LIMIT",
    "RECV_SIZE",
    "FrameDecoder",
    "encode_frame",
    "frame_header",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

DEFAULT_MAX_FRAME: Final = 1 << 20  # 1 MiB: a full state is a few KiB; near this is hostile
# The most `max_frame_bytes` may be set to. Clients accept frames up to this: the
# daemon is trusted (our uid) and refuses any config whose state would not fit.
MAX_FRAME_LIMIT: Final = 64 << 20
# Bytes asked of the kernel per read, by every reader of the socket (daemon and
# clients): a full state and its events in one read, without a large buffer per client.
RECV_SIZE: Final = 1 << 16
_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
# The header of a payload of N bytes: the check-free form of encode_frame() for callers
# whose payload cannot be empty (an encoded message), as one C call.
frame_header = _HEADER.pack


def encode_frame(payload: bytes) -> bytes:
    """Prefix *payload* with its length."""
    if not payload:
        raise ProtocolError("empty frame")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental frame splitter: feed it bytes, get whole payloads back.

    The length is checked as soon as the 4 header bytes are in, so an oversize
    frame is refused before a single byte of its body is buffered.
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add *data*; return every payload it completes.

        *data* may be a view of a receive buffer the caller reuses: nothing keeps a
        reference to it. Whole frames are cut straight out of it (one copy each);
        only an incomplete tail is buffered.

        Raises FrameTooLarge for a header above max_frame and ProtocolError for
        a zero-length frame. After either, the stream is unusable: close it.
        """
        buf = self._buf
        if buf:  # a partial frame is pending: continue it
            buf += data
            data = buf
        frames: list[bytes] = []
        start = 0
        end = len(data)
        while end - start >= HEADER_SIZE:
            (size,) = _HEADER.unpack_from(data, start)
            if size == 0:
                self._keep(data, start)
                raise ProtocolError("zero-length frame")
            if size > self.max_frame:
                self._keep(data, start)
                raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
            if end - start - HEADER_SIZE < size:
                break
            body_start = start + HEADER_SIZE
            frames.append(bytes(data[body_start : body_start + size]))
            start = body_start + size
        if start < end or data is buf:  # (not the usual whole frames: no call for those)
            self._keep(data, start)
        return frames

    def _keep(self, data: bytes | bytearray | memoryview, start: int) -> None:
        """Buffer what is left of *data* from *start* (nothing, usually)."""
        if data is self._buf:
            if start:
                del self._buf[:start]
        elif start < len(data):
            self._buf = bytearray(data[start:])
