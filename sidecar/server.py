"""The socket server: accept loop and one `Client` per connection.

Each client has a reader (its requests, in order) and a sender that owns the
socket's write side. What the sender writes comes from one ordered outbox in
which a full state is a *slot*: a newer state replaces an unsent one in place,
so a slow reader gets the newest state, not a backlog. Events and responses are
queued in order behind it and bounded; a client that cannot keep up, or whose
socket stays full past a deadline, is dropped. Every handler runs under a guard,
so nothing one client does can take the listener or another client down.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import struct
import termios
from collections import deque
from collections.abc import Sequence
from typing import Final

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup

from agentctx.errors import FrameTooLarge, ProtocolError
from agentctx.framing import FrameDecoder
from agentctx.protocol import (
    E_BAD_FRAME,
    E_BAD_REQUEST,
    E_EXPECTED_HELLO,
    E_FRAME_TOO_LARGE,
    E_HELLO_TIMEOUT,
    E_INTERNAL,
    E_SLOW_CONSUMER,
    E_TOO_MANY_CLIENTS,
    E_UNSUPPORTED_PROTO,
    PROTO_VERSION,
    Ack,
    BadMessage,
    Bump,
    Error,
    Get,
    Hello,
    Message,
    Ping,
    Pong,
    Reset,
    Satisfy,
    Welcome,
    decode_client,
    encode_message,
)
from agentctx.sync import peer_uid
from sidecar.hub import Hub, Rejected

__all__ = ["HELLO_TIMEOUT", "MAX_OUTBOX", "Client", "Server"]

log = logging.getLogger(__name__)

HELLO_TIMEOUT: Final = 5.0  # seconds a new connection has to say hello
MAX_OUTBOX: Final = 1024  # queued events + responses before a client counts as stuck
MAX_ACKS_PENDING: Final = 256  # requests of one client waiting for the disk at once
FINAL_FRAME_TIMEOUT: Final = 1.0  # best effort to tell a dropped client why
RECV_SIZE: Final = 65536
SERVER_NAME: Final = "agentctx-sidecar/0.1"
_STATE_SLOT: Final = b""  # marker in the outbox: "the newest state goes here"
ROOM_POLL: Final = 0.01  # how often a slow reader's socket is checked for room
WRITE_OVERHEAD: Final = 1024  # kernel bookkeeping per write, counted against SO_SNDBUF
FINAL_RESERVE: Final = 2048  # always left free for a final error frame


class _Drop(Exception):
    """Internal: end this client's connection (after sending its final frame)."""


def _peer_uid(stream: SocketStream) -> int | None:
    try:
        return peer_uid(stream.extra(SocketAttribute.raw_socket))
    except OSError:
        return None


class Client:
    """One connection. Hub-facing side: push() (never blocks)."""

    def __init__(self, stream: SocketStream, hub: Hub, *, max_frame: int, send_timeout: float):
        self.stream = stream
        self.hub = hub
        self.name = "?"
        self.send_timeout = send_timeout
        self._decoder = FrameDecoder(max_frame)
        self._out: deque[bytes] = deque()
        self._state: bytes | None = None
        self._wake = anyio.Event()
        self._final: bytes | None = None
        self._closing = False
        self._sending = False  # the sender task is inside stream.send()
        self._tg: TaskGroup | None = None
        self._acks_pending = 0
        self._acks_done = anyio.Event()
        self._partial: bytes | None = None  # the rest of a frame a direct write cut short
        self._raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
        self._fd = self._raw.fileno()
        self._sndbuf = self._raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    # --- hub side -----------------------------------------------------------------

    def push(self, state: bytes, events: Sequence[bytes] = ()) -> None:
        """A new full state and the events it reflects.

        When nothing is queued and the socket has room, they are written right here,
        in one non-blocking send: no task switch stands between a satisfy and its
        readers (the fast path, measured in benchmarks/push.py). Otherwise they go to
        the outbox, where the state takes the coalescing slot."""
        if self._closing:
            return
        if not self._out and not self._sending and self._partial is None:
            data = state + b"".join(events) if events else state
            if self._room_for(len(data)):
                try:
                    sent = self._raw.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = -1  # broken: let the sender find out and drop the client
                if sent == len(data):
                    return
                if sent > 0:
                    self._partial = data[sent:]  # a frame cut in two: its rest goes first
                    self._wake.set()
                    return
        if self._state is None:
            self._out.append(_STATE_SLOT)
        self._state = state
        for frame in events:
            self._queue(frame)
        self._wake.set()

    # --- outbox -------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        if self._closing:
            return
        if len(self._out) >= MAX_OUTBOX:
            log.warning("client %s: %d frames unread; dropping it", self.name, len(self._out))
            self._close_with(Error(code=E_SLOW_CONSUMER, message="too many unread frames"))
            return
        self._out.append(frame)
        self._wake.set()

    def _respond(self, msg: Message) -> None:
        self._queue(encode_message(msg))

    def _close_with(self, error: Error | None) -> None:
        """Stop reading; the sender flushes what is queued, then *error*, then closes."""
        if error is not None and self._final is None:
            self._final = encode_message(error)
        self._closing = True
        self._wake.set()

    def _room_for(self, size: int) -> bool:
        """Whether *size* more bytes fit in the socket's send buffer with room to spare
        for a final error frame. The kernel counts buffer overhead too (SIOCOUTQ is in
        the same units as SO_SNDBUF), hence the per-write allowance."""
        try:
            queued: int = struct.unpack("i", fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return True
        return queued == 0 or queued + size + WRITE_OVERHEAD + FINAL_RESERVE <= self._sndbuf

    def _pending_size(self) -> int:
        return sum(len(i) for i in self._out) + (len(self._state) if self._state else 0)

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            # A reader that falls behind: wait (states keep coalescing meanwhile) rather
            # than block mid-frame, so the final error below always fits in the buffer.
            stuck_since = anyio.current_time()
            while self._out and not self._room_for(self._pending_size()):
                if anyio.current_time() - stuck_since > self.send_timeout:
                    self._drop_stuck()
                await anyio.sleep(ROOM_POLL)
            batch: list[bytes] = []
            if self._partial is not None:
                batch.append(self._partial)
                self._partial = None
            while self._out:
                item = self._out.popleft()
                if item == _STATE_SLOT:
                    assert self._state is not None
                    item, self._state = self._state, None
                batch.append(item)
            if batch:
                # One write per wake-up: fewer syscalls, and the room check above means
                # it does not block (the timeout is a last resort: then no final frame).
                self._sending = True
                try:
                    with anyio.fail_after(self.send_timeout):
                        await self.stream.send(b"".join(batch))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    log.debug("client %s: gone", self.name)  # it closed or died: nothing to do
                    raise _Drop from None
                except TimeoutError:
                    log.warning(
                        "client %s: socket full for %.1fs; dropping it",
                        self.name,
                        self.send_timeout,
                    )
                    raise _Drop from None
                finally:
                    self._sending = False
            if self._closing and not self._out:
                if self._final is not None:
                    with anyio.move_on_after(FINAL_FRAME_TIMEOUT):
                        await self.stream.send(self._final)
                raise _Drop

    def _drop_stuck(self) -> None:
        log.warning("client %s: not reading for %.1fs; dropping it", self.name, self.send_timeout)
        final = encode_message(
            Error(code=E_SLOW_CONSUMER, message=f"not reading for {self.send_timeout:g}s")
        )
        with contextlib.suppress(OSError):  # non-blocking: FINAL_RESERVE kept room for it
            self._raw.send(final)
        raise _Drop

    # --- reader -------------------------------------------------------------------

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
                self._close_with(
                    Error(code=E_HELLO_TIMEOUT, message=f"no hello within {HELLO_TIMEOUT:g}s")
                )
                return
            if not frames or not self._hello(frames[0]):
                return
            await self._handle_all(frames[1:])
            while not self._closing:
                frames = await self._frames()
                if not frames:
                    return
                await self._handle_all(frames)
        except FrameTooLarge as exc:
            self._close_with(Error(code=E_FRAME_TOO_LARGE, message=str(exc)))
        except ProtocolError as exc:  # zero-length frame: framing is lost
            self._close_with(Error(code=E_BAD_FRAME, message=str(exc)))

    def _hello(self, frame: bytes) -> bool:
        try:
            msg = decode_client(frame)
        except BadMessage as exc:
            self._close_with(
                Error(code=E_EXPECTED_HELLO, message=f"first frame must be hello ({exc.message})")
            )
            return False
        if not isinstance(msg, Hello):
            self._close_with(
                Error(
                    code=E_EXPECTED_HELLO,
                    id=getattr(msg, "id", None),
                    message=f"first frame must be hello, got {type(msg).__name__.lower()}",
                )
            )
            return False
        if msg.proto != PROTO_VERSION:
            self._close_with(
                Error(
                    code=E_UNSUPPORTED_PROTO,
                    message=f"protocol {msg.proto} unsupported; this sidecar speaks "
                    f"{PROTO_VERSION}",
                )
            )
            return False
        self.name = msg.client or "?"
        hub = self.hub
        self._respond(
            Welcome(
                proto=PROTO_VERSION,
                server=SERVER_NAME,
                boot_id=hub.boot_id,
                tick_interval=hub.config.sidecar.tick_interval,
            )
        )
        if msg.subscribe:
            hub.subscribers.add(self)
            self.push(encode_message(hub.state()))
        return True

    async def _handle_all(self, frames: list[bytes]) -> None:
        for frame in frames:
            if self._closing:
                return
            await self._handle(frame)

    async def _handle(self, frame: bytes) -> None:
        try:
            msg = decode_client(frame)
        except BadMessage as exc:
            self._respond(
                Error(code=exc.code, message=exc.message, id=exc.id, request_id=exc.request_id)
            )
            return
        if isinstance(msg, Get):
            self._respond(self.hub.state(id=msg.id))
        elif isinstance(msg, Ping):
            self._respond(Pong(id=msg.id))
        elif isinstance(msg, Satisfy | Bump | Reset):
            try:
                seq = await self.hub.submit(msg)  # applied and pushed, in arrival order
            except Rejected as exc:
                self._respond(
                    Error(code=exc.code, message=exc.message, id=msg.id, request_id=msg.request_id)
                )
                return
            # The ack waits for the disk in its own task, so the next request is read and
            # applied meanwhile: pipelined requests share fsyncs (group commit).
            if self._acks_pending >= MAX_ACKS_PENDING or self._tg is None:
                await self._ack_when_durable(msg, seq)
            else:
                self._tg.start_soon(self._ack_when_durable, msg, seq)
        else:  # a second hello
            self._respond(Error(code=E_BAD_REQUEST, message="hello was already received"))

    async def _ack_when_durable(self, msg: Satisfy | Bump | Reset, seq: int) -> None:
        self._acks_pending += 1
        try:
            await self.hub.wait_durable(seq)
        except Rejected as exc:
            self._respond(
                Error(code=exc.code, message=exc.message, id=msg.id, request_id=msg.request_id)
            )
        else:
            self._respond(Ack(id=msg.id, seq=seq))
        finally:
            self._acks_pending -= 1
            if not self._acks_pending:
                self._acks_done.set()
                self._acks_done = anyio.Event()

    # --- lifetime -----------------------------------------------------------------

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._send_loop)
                try:
                    await self._read_loop()
                    while self._acks_pending:  # a client that half-closed still gets its acks
                        await self._acks_done.wait()
                except Exception:
                    log.exception(
                        "client %s: handler failed; closing this connection only", self.name
                    )
                    self._close_with(Error(code=E_INTERNAL, message="internal error"))
                else:
                    self._close_with(None)  # reader done: let the sender flush, then close
        except* _Drop:
            pass
        finally:
            self.hub.subscribers.discard(self)
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()


class Server:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.clients = 0
        self.uid = os.getuid()

    async def serve(self, listener: SocketListener) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and friends: back off, keep serving
                    log.error("accept failed: %s", exc)
                    await anyio.sleep(0.1)
                    continue
                tg.start_soon(self._guarded, stream)

    async def _guarded(self, stream: SocketStream) -> None:
        """Run one client; whatever happens stays inside this connection."""
        settings = self.hub.config.sidecar
        try:
            uid = _peer_uid(stream)
            if uid != self.uid:
                log.warning("refused a connection from uid %s", uid)
                return  # closed in finally, before a single byte is sent
            if self.clients >= settings.max_clients:
                with anyio.move_on_after(FINAL_FRAME_TIMEOUT):
                    await stream.send(
                        encode_message(
                            Error(
                                code=E_TOO_MANY_CLIENTS,
                                message=f"connection cap of {settings.max_clients} reached",
                            )
                        )
                    )
                return
            self.clients += 1
            try:
                client = Client(
                    stream,
                    self.hub,
                    max_frame=settings.max_frame_bytes,
                    send_timeout=settings.client_send_timeout,
                )
                await client.serve()
            finally:
                self.clients -= 1
        except Exception:
            log.exception("client connection failed (closed; the server is unaffected)")
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
