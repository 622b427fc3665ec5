"""An async (anyio) connection to the sidecar: hello, welcome, then frames.

Foreign exceptions are mapped here: anything that means "no usable sidecar"
(OSError, end of stream, a missing first frame, a peer of another uid, silence
past a few tick intervals) becomes DaemonUnavailable; a frame that is not a JSON
object becomes ProtocolError. The subscriber's receive path is the hot path of
every fan-out: `payloads()` hands out the raw frames of one read, decoded by the
caller (agentctx.feed), and the silence watchdog costs nothing per message.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream

from agentctx._core.errors import DaemonUnavailable, FrameTooLarge, ProtocolError
from agentctx._core.framing import MAX_FRAME_LIMIT, RECV_SIZE, FrameDecoder, encode_frame
from agentctx._core.peercred import check_server
from agentctx._core.protocol import PROTO_VERSION, Hello, encode
from agentctx.feed import CONNECT_TIMEOUT, silence_for

__all__ = ["CONNECT_TIMEOUT", "HIGH_WATER", "Connection"]

# Bytes read ahead for a reader that is not keeping up: past HIGH_WATER the socket
# is left unread (the daemon then coalesces states, and in the end drops a reader
# that never catches up) until the reader takes what was read.
HIGH_WATER: Final = 1 << 20
_decode = msgspec.json.Decoder().decode

_UNAVAILABLE = (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


def _hung(silence: float) -> DaemonUnavailable:
    return DaemonUnavailable(f"no state from the sidecar for {silence:g}s")


class _AnyioPipe:
    """Frames in, bytes out over an anyio socket stream (any backend: trio, asyncio)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
        self.decoder = FrameDecoder(MAX_FRAME_LIMIT)  # the daemon is trusted: its limit
        self._frames: list[bytes] = []
        self.silence: float | None = None
        # When the current wait for data began; a read cancelled by its caller (a
        # redraw timeout) does not restart it, data does: silence is counted in
        # wall time, not per call.
        self._waiting_since: float | None = None

    def watch_silence(self, silence: float) -> None:
        self.silence = silence

    def take(self) -> list[bytes]:
        """The whole frames read so far ([] if none)."""
        frames, self._frames = self._frames, []
        return frames

    async def readable(self) -> None:
        """Read until at least one whole frame is in."""
        while not self._frames:
            try:
                self._frames = self.decoder.feed(await self._read())
            except FrameTooLarge as exc:
                raise ProtocolError(str(exc)) from None

    async def _read(self) -> bytes:
        if self.silence is None:
            return await self.stream.receive(RECV_SIZE)
        if self._waiting_since is None:
            self._waiting_since = anyio.current_time()
        with anyio.CancelScope(deadline=self._waiting_since + self.silence) as scope:
            data = await self.stream.receive(RECV_SIZE)
            self._waiting_since = None
            return data
        assert scope.cancelled_caught
        raise _hung(self.silence)

    async def write(self, data: bytes) -> None:
        await self.stream.send(data)

    async def close(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class _AsyncioPipe(asyncio.BufferedProtocol):
    """The same on asyncio's own transport, which keeps the socket registered with
    the selector: anyio's stream re-arms it for every read (two epoll_ctl calls and an
    extra loop pass per message), which measured ~30 % of a subscriber's latency.

    A buffered protocol: the transport reads into one buffer of ours, reused, and
    frames are cut out of it right there. A plain protocol is handed a fresh bytes
    object per read, which asyncio allocates at 256 KiB: an mmap, page faults and a
    munmap per message, measured at half of a subscriber's CPU per delivery.
    Silence is one timer per silence period, not one per read."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.buffer = memoryview(bytearray(RECV_SIZE))
        self.decoder = FrameDecoder(MAX_FRAME_LIMIT)  # the daemon is trusted: its limit
        self.ready: list[bytes] = []  # whole frames not yet taken
        self.buffered = 0  # their bytes
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.raw: socket.socket
        self.silence: float | None = None
        self.last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def connect(cls, path: Path) -> _AsyncioPipe:
        loop = asyncio.get_running_loop()
        transport, pipe = await loop.create_unix_connection(cls, str(path))
        pipe.raw = transport.get_extra_info("socket")
        return pipe

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.silence is not None:
            self.last_data = self.loop.time()
        try:
            frames = self.decoder.feed(self.buffer[:nbytes])
        except FrameTooLarge as exc:
            self._end(ProtocolError(str(exc)))
            if self.transport is not None:
                self.transport.abort()
            return
        if not frames:
            return
        self.ready += frames
        self.buffered += sum(map(len, frames))
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._end(anyio.EndOfStream())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or anyio.EndOfStream())

    def _end(self, why: BaseException) -> None:
        self.lost = self.lost or why
        if self._timer is not None:
            self._timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def watch_silence(self, silence: float) -> None:
        self.silence = silence
        self.last_data = self.loop.time()
        self._timer = self.loop.call_at(self.last_data + silence, self._check_silence)

    def _check_silence(self) -> None:
        assert self.silence is not None
        loop = self.loop
        if self.ready:  # the reader is behind, the daemon is not silent
            self.last_data = loop.time()
        due = self.last_data + self.silence
        if loop.time() < due:
            self._timer = loop.call_at(due, self._check_silence)
            return
        self._end(_hung(self.silence))
        if self.transport is not None:
            self.transport.abort()

    def take(self) -> list[bytes]:
        """The whole frames received so far ([] if none); once they are all taken,
        why the connection ended (if it did)."""
        frames = self.ready
        if frames:
            self.ready, self.buffered = [], 0
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
        elif self.lost is not None:
            raise self.lost
        return frames

    def readable(self) -> asyncio.Future[None]:
        """Done when frames arrive or the connection ends. A future, not a coroutine:
        the reader's task awaits it directly, one frame less to resume per wake-up."""
        waiter = self.waiter = self.loop.create_future()
        if self.ready or self.lost is not None:
            waiter.set_result(None)
        return waiter

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise anyio.BrokenResourceError
        self.transport.write(data)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.abort()


async def _connect(path: Path) -> _AnyioPipe | _AsyncioPipe:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio): the portable path
        return _AnyioPipe(await anyio.connect_unix(str(path)))
    return await _AsyncioPipe.connect(path)


class Connection:
    def __init__(self, pipe: _AnyioPipe | _AsyncioPipe, welcome: dict[str, Any]) -> None:
        self.pipe = pipe
        self.welcome = welcome
        self._frames: list[bytes] = []  # read along with the welcome

    @classmethod
    async def open(
        cls, path: Path, *, client: str, subscribe: bool = True, within: float = CONNECT_TIMEOUT
    ) -> Connection:
        """Connect and say hello; with *subscribe*, a silent daemon (nothing for a few
        of its tick intervals) later fails a read with DaemonUnavailable."""
        try:
            with anyio.fail_after(within):
                pipe = await _connect(path)
                try:
                    check_server(pipe.raw, path)
                    hello = Hello(proto=PROTO_VERSION, client=client, subscribe=subscribe)
                    await pipe.write(encode_frame(encode(hello)))
                    conn = cls(pipe, {})
                    welcome = await conn.receive()
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await pipe.close()
                    raise
        except TimeoutError:
            raise DaemonUnavailable(f"{path}: no welcome within {within:g}s") from None
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"{path}: {_why(exc)}") from None
        except ProtocolError as exc:  # garbage instead of a welcome: not a usable sidecar
            raise DaemonUnavailable(f"{path}: {exc}") from None
        if welcome.get("type") != "welcome":
            await conn.aclose()
            raise DaemonUnavailable(
                f"{path}: refused: {welcome.get('code')}: {welcome.get('message')}"
            )
        conn.welcome = welcome
        if subscribe:
            pipe.watch_silence(silence_for(welcome))
        return conn

    def take(self) -> list[bytes]:
        """The whole frames received so far ([] if none), undecoded. DaemonUnavailable
        once the connection ended (or fell silent) and all of them were taken,
        ProtocolError on a frame above the limit."""
        if self._frames:
            frames, self._frames = self._frames, []
            return frames
        try:
            return self.pipe.take()
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"connection lost: {_why(exc)}") from None

    def readable(self) -> Awaitable[None]:
        """Wait for frames (or the end: `take()` then says so). Cancelling it loses
        nothing."""
        pipe = self.pipe
        return pipe.readable() if isinstance(pipe, _AsyncioPipe) else self._anyio_readable(pipe)

    async def _anyio_readable(self, pipe: _AnyioPipe) -> None:
        try:
            await pipe.readable()
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"connection lost: {_why(exc)}") from None

    async def payloads(self) -> list[bytes]:
        """The whole frames of the next read (at least one), undecoded."""
        while not (frames := self.take()):
            await self.readable()
        return frames

    async def receive(self) -> dict[str, Any]:
        """The next frame as a dict. DaemonUnavailable when the connection ends."""
        if not self._frames:
            self._frames = await self.payloads()
        payload = self._frames.pop(0)
        try:
            msg = _decode(payload)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"bad frame from the sidecar: {exc}") from None
        if not isinstance(msg, dict):
            raise ProtocolError("bad frame from the sidecar: not an object")
        return msg

    async def send(self, msg: msgspec.Struct) -> None:
        try:
            await self.pipe.write(encode_frame(encode(msg)))
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"connection lost: {_why(exc)}") from None

    async def aclose(self) -> None:
        await self.pipe.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return "connection closed" if isinstance(exc, anyio.EndOfStream) else type(exc).__name__
