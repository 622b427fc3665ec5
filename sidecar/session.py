"""One client connection: the hello, then its requests, in order, answered.

A session reads frames, checks the hello, and dispatches each request to the hub;
everything it sends goes through the connection's `Outbox`. A satisfy/bump/reset
is applied and pushed at once, in arrival order, but its ack waits for the disk in
a task of its own, so the next request is read and applied meanwhile: pipelined
requests share fsyncs (group commit). Whatever goes wrong stays in this session.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Final

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from agentctx._core.errors import (
    E_BAD_FRAME,
    E_BAD_REQUEST,
    E_EXPECTED_HELLO,
    E_FRAME_TOO_LARGE,
    E_HELLO_TIMEOUT,
    E_INTERNAL,
    E_UNSUPPORTED_PROTO,
    FrameTooLarge,
    ProtocolError,
    RequestFailed,
)
from agentctx._core.framing import RECV_SIZE, FrameDecoder
from agentctx._core.protocol import (
    PROTO_VERSION,
    Ack,
    Error,
    Get,
    Hello,
    Ping,
    Pong,
    Request,
    Welcome,
    decode_client,
    encode_message,
)
from agentctx._core.version import __version__
from sidecar.hub import Serving
from sidecar.outbox import Outbox

__all__ = ["HELLO_TIMEOUT", "MAX_ACKS_PENDING", "SERVER_NAME", "Session"]

log = logging.getLogger(__name__)

HELLO_TIMEOUT: Final = 5.0  # seconds a new connection has to say hello
MAX_ACKS_PENDING: Final = 256  # requests of one client waiting for the disk at once
SERVER_NAME: Final = f"agentctx-sidecar/{__version__}"


def _refusal(exc: RequestFailed, request: Request | None = None) -> Error:
    """The `error` frame answering a refused request."""
    return Error(
        code=exc.code,
        message=exc.message,
        id=request.id if request is not None else exc.id,
        request_id=request.request_id if request is not None else exc.request_id,
    )


class Session:
    def __init__(
        self, stream: SocketStream, hub: Serving, *, max_frame: int, send_timeout: float
    ) -> None:
        self.stream = stream
        self.hub = hub
        self.outbox = Outbox(stream.extra(SocketAttribute.raw_socket), send_timeout=send_timeout)
        self._decoder = FrameDecoder(max_frame)
        self._tg: TaskGroup | None = None
        self._acks_pending = 0
        self._acks_done = anyio.Event()

    async def serve(self) -> None:
        """Run the connection to its end; never raises (the caller closes the stream)."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._send)
                try:
                    await self._read_loop()
                    while self._acks_pending:  # a client that half-closed still gets its acks
                        await self._acks_done.wait()
                except Exception:
                    log.exception(
                        "client %s: handler failed; closing this connection only", self.outbox.name
                    )
                    self.outbox.close(Error(code=E_INTERNAL, message="internal error"))
                else:
                    self.outbox.close()  # reader done: the sender flushes, then it ends
        finally:
            self.hub.subscribers.discard(self.outbox)

    async def _send(self) -> None:
        await self.outbox.run()
        # The sender is done (flushed, peer gone, or a stuck peer dropped): end the reader
        # too. Shutting the socket down wakes its receive with an end of stream; cancelling
        # it instead races the selector (a read event already queued for that very
        # iteration then completes a cancelled future: asyncio's InvalidStateError).
        with contextlib.suppress(OSError):
            self.stream.extra(SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)

    # --- reading ----------------------------------------------------------------------

    async def _frames(self) -> list[bytes]:
        """The next frames from the socket; [] at end of stream."""
        while True:
            try:
                data = await self.stream.receive(RECV_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return []
            frames = self._decoder.feed(data)
            if frames:
                return frames

    async def _read_loop(self) -> None:
        try:
            frames: list[bytes] | None = None
            with anyio.move_on_after(HELLO_TIMEOUT):  # the hello alone is timed
                frames = await self._frames()
            if frames is None:
                self.outbox.close(
                    Error(code=E_HELLO_TIMEOUT, message=f"no hello within {HELLO_TIMEOUT:g}s")
                )
                return
            if not frames or not self._hello(frames[0]):
                return
            await self._handle_all(frames[1:])
            while not self.outbox.closing:
                frames = await self._frames()
                if not frames:
                    return
                await self._handle_all(frames)
        except FrameTooLarge as exc:
            self.outbox.close(Error(code=E_FRAME_TOO_LARGE, message=str(exc)))
        except ProtocolError as exc:  # a zero-length frame: the framing is lost
            self.outbox.close(Error(code=E_BAD_FRAME, message=str(exc)))

    def _hello(self, frame: bytes) -> bool:
        try:
            msg = decode_client(frame)
        except RequestFailed as exc:
            self.outbox.close(
                Error(code=E_EXPECTED_HELLO, message=f"first frame must be hello ({exc.message})")
            )
            return False
        if not isinstance(msg, Hello):
            self.outbox.close(
                Error(
                    code=E_EXPECTED_HELLO,
                    id=getattr(msg, "id", None),
                    message=f"first frame must be hello, got {type(msg).__name__.lower()}",
                )
            )
            return False
        if msg.proto != PROTO_VERSION:
            self.outbox.close(
                Error(
                    code=E_UNSUPPORTED_PROTO,
                    message=f"protocol {msg.proto} unsupported; this sidecar speaks "
                    f"{PROTO_VERSION}",
                )
            )
            return False
        self.outbox.name = msg.client or "?"
        hub = self.hub
        self.outbox.respond(
            Welcome(
                proto=PROTO_VERSION,
                server=SERVER_NAME,
                boot_id=hub.boot_id,
                tick_interval=hub.config.sidecar.tick_interval,
            )
        )
        if msg.subscribe:
            hub.subscribers.add(self.outbox)
            self.outbox.push(encode_message(hub.state()))
        return True

    # --- dispatch ---------------------------------------------------------------------

    async def _handle_all(self, frames: list[bytes]) -> None:
        for frame in frames:
            if self.outbox.closing:
                return
            await self._handle(frame)

    async def _handle(self, frame: bytes) -> None:
        try:
            msg = decode_client(frame)
        except RequestFailed as exc:
            self.outbox.respond(_refusal(exc))
            return
        if isinstance(msg, Get):
            self.outbox.respond(self.hub.state(id=msg.id))
        elif isinstance(msg, Ping):
            self.outbox.respond(Pong(id=msg.id))
        elif isinstance(msg, Hello):
            self.outbox.respond(Error(code=E_BAD_REQUEST, message="hello was already received"))
        else:
            try:
                seq = await self.hub.submit(msg)  # applied and pushed, in arrival order
            except RequestFailed as exc:
                self.outbox.respond(_refusal(exc, msg))
                return
            if self._acks_pending >= MAX_ACKS_PENDING or self._tg is None:
                await self._ack_when_durable(msg, seq)
            else:
                self._tg.start_soon(self._ack_when_durable, msg, seq)

    async def _ack_when_durable(self, msg: Request, seq: int) -> None:
        self._acks_pending += 1
        try:
            await self.hub.wait_durable(seq)
        except RequestFailed as exc:
            self.outbox.respond(_refusal(exc, msg))
        else:
            self.outbox.respond(Ack(id=msg.id, seq=seq))
        finally:
            self._acks_pending -= 1
            if not self._acks_pending:
                self._acks_done.set()
                self._acks_done = anyio.Event()
