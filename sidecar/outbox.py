"""One client's outgoing frames: in order, coalesced, bounded, never blocking the hub.

The hub hands every subscriber each new state with `push()`, which never blocks.
When nothing is queued and the socket has room, the frames are written right
there in one non-blocking send: no task switch stands between a satisfy and its
readers (the fast path, measured in benchmarks/push.py). Otherwise they wait in
an ordered queue in which a full state is a *slot*: a newer state replaces an
unsent one in place, so a slow reader gets the newest state, not a backlog.
Events and responses queue behind it, bounded.

The sender task (`run()`) writes only what the socket buffer takes without
blocking, always keeping room for one final error frame, and otherwise waits for
the socket to become writable. A reader that makes no progress for `send_timeout`,
or falls MAX_OUTBOX frames behind, is dropped there and then: what is queued is
discarded and a final `slow_consumer` error goes out (it always fits), unless the
reader is inside a frame the socket cut, which then only ends.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
from collections import deque
from collections.abc import Sequence
from typing import Final

import anyio

from agentctx._core.errors import E_SLOW_CONSUMER
from agentctx._core.protocol import Error, Message, encode_message

__all__ = ["FINAL_FRAME_TIMEOUT", "FINAL_RESERVE", "MAX_OUTBOX", "Outbox"]

log = logging.getLogger(__name__)

MAX_OUTBOX: Final = 1024  # queued events + responses before a client counts as stuck
FINAL_FRAME_TIMEOUT: Final = 1.0  # best effort to tell a closed client why
# The kernel counts its own bookkeeping against SO_SNDBUF too (SIOCOUTQ is in the same
# units), so each write is charged this allowance on top of its bytes (per SKB_CHUNK
# of it: a large write is queued as several buffers)...
WRITE_OVERHEAD: Final = 1024
SKB_CHUNK: Final = 4096
# ...and this much is always left free, so the final error frame fits.
FINAL_RESERVE: Final = 2048
_STATE_SLOT: Final = b""  # marker in the queue: "the newest state goes here"
_INT = struct.Struct("i")


class Outbox:
    """The write side of one connection. `push()` and `send()` never block."""

    def __init__(self, raw: socket.socket, *, send_timeout: float) -> None:
        self.name = "?"  # the client's name from its hello, for the log
        self.send_timeout = send_timeout
        self.closing = False
        self._raw = raw
        self._fd = raw.fileno()
        self._sndbuf = raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # An upper bound of what SIOCOUTQ would say: it was exact when last asked, and
        # only our own writes make it grow. While the bound leaves room, no need to ask
        # (an ioctl per subscriber per state, on the fan-out's hot path).
        self._queued_bound = 0
        self._queue: deque[bytes] = deque()
        self._state: bytes | None = None  # the newest unsent state (its slot is queued)
        self._unsent: memoryview | None = None  # the rest of a batch the socket cut short
        # Part of `_unsent` was sent: the client is inside a frame, so nothing else
        # (a final error) may be written before the rest of it.
        self._cut = False
        self._final: bytes | None = None
        self._dropped = False  # not keeping up: queue discarded, ending now
        self._waiting: anyio.CancelScope | None = None  # a wait for room in the socket
        self._wake = anyio.Event()

    # --- producers (never block) ----------------------------------------------------

    def push(self, state: bytes, events: Sequence[bytes] = (), joined: bytes = b"") -> None:
        """A new full state and the events it reflects (the hub's Subscriber); *joined*
        is all of them as one string, when the caller has it (the hub joins once for
        every subscriber)."""
        if self.closing:
            return
        if not self._queue and self._unsent is None:
            # The fast path, kept to builtins: it runs for every subscriber right after
            # a rare event woke the daemon, when each Python call on the way costs
            # microseconds of cold caches (benchmarks/cold.py).
            data = joined or (state + b"".join(events) if events else state)
            size = len(data)
            charge = size + WRITE_OVERHEAD * (1 + size // SKB_CHUNK)  # _charge(size)
            fits = self._sndbuf - self._queued_bound - charge >= FINAL_RESERVE  # _room()
            if fits or self._room(FINAL_RESERVE, size) >= size:
                try:
                    sent = self._raw.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = -1  # broken: the sender finds out and ends the connection
                if sent == size:
                    self._queued_bound += charge
                    return
                self._wrote(sent)
                if sent > 0:  # a frame cut in two: its rest goes first
                    self._unsent = memoryview(data)[sent:]
                    self._cut = True
                    self._wake.set()
                    return
        if self._state is None:
            self._queue.append(_STATE_SLOT)
        self._state = state
        for frame in events:
            self.send(frame)
        self._wake.set()

    def send(self, frame: bytes) -> None:
        """Queue one whole frame (an answer, an event) behind what is already queued."""
        if self.closing:
            return
        if len(self._queue) >= MAX_OUTBOX:
            self._drop(f"{len(self._queue)} frames unread")
            return
        self._queue.append(frame)
        self._wake.set()

    def respond(self, msg: Message) -> None:
        self.send(encode_message(msg))

    def close(self, final: Error | None = None) -> None:
        """Accept nothing more; the sender flushes what is queued, then *final*, then ends."""
        if final is not None and self._final is None:
            log.info("client %s: %s: %s; closing", self.name, final.code, final.message)
            self._final = encode_message(final)
        self.closing = True
        self._wake.set()

    # --- the sender task --------------------------------------------------------------

    async def run(self) -> None:
        """Write until closed and flushed, or until the client is gone or stuck."""
        while not self._dropped:
            if self._unsent is None:
                if not self._queue:
                    if self.closing:
                        break
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                self._unsent = memoryview(self._take_all())
                self._cut = False
            if not await self._write_some() and not self._dropped:
                return  # the client is gone
        if self._dropped:
            if self._cut:
                return  # inside a frame: the error cannot be told, only the end
            self._unsent = None  # whole frames not begun: the error goes instead
        if self._final is not None:
            self._unsent = memoryview(self._final)
            with anyio.move_on_after(FINAL_FRAME_TIMEOUT):
                while self._unsent is not None and await self._write_some(reserve=0):
                    pass

    def _take_all(self) -> bytes:
        """Everything queued, in order, as one write (fewer syscalls)."""
        batch = []
        while self._queue:
            item = self._queue.popleft()
            if item == _STATE_SLOT:
                assert self._state is not None
                item, self._state = self._state, None
            batch.append(item)
        return b"".join(batch)

    async def _write_some(self, reserve: int = FINAL_RESERVE) -> bool:
        """Write what fits of the unsent bytes; wait for room when none does.
        False when the client is gone, or was stuck and has been dropped."""
        assert self._unsent is not None
        room = self._room(reserve, len(self._unsent))
        if room > 0:
            try:
                sent = self._raw.send(self._unsent[:room])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                log.debug("client %s: gone", self.name)  # it closed or died: nothing to do
                return False
            self._wrote(sent)
            self._unsent = self._unsent[sent:] if sent < len(self._unsent) else None
            self._cut = self._unsent is not None and (self._cut or sent > 0)
            if sent:
                return True
        # The socket is writable again once the peer has read enough (for a Unix
        # stream: down to a quarter of the buffer), which leaves room for a write.
        try:
            with anyio.move_on_after(self.send_timeout) as self._waiting:  # or _drop()
                await anyio.wait_writable(self._raw)
                return True
        finally:
            self._waiting = None
        if reserve and not self._dropped:
            self._drop(f"not reading for {self.send_timeout:g}s")
        return False

    def _room(self, reserve: int, want: int) -> int:
        """Bytes that fit in the send buffer now, keeping *reserve* free: at least
        *want* by the bound alone, else as the kernel says."""
        room = self._sndbuf - self._queued_bound - _charge(want) - reserve + want
        if room >= want:
            return room
        try:
            queued: int = _INT.unpack(fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:  # a closed socket: let the send itself fail and say so
            return self._sndbuf
        self._queued_bound = queued
        return self._sndbuf - queued - WRITE_OVERHEAD - reserve

    def _wrote(self, sent: int) -> None:
        if sent > 0:
            self._queued_bound += _charge(sent)

    def _drop(self, why: str) -> None:
        """A reader that is not keeping up: what is queued is discarded, the sender stops
        waiting for room, and a final `slow_consumer` error goes out if the client is
        not inside a frame (FINAL_RESERVE kept room for it)."""
        log.warning("client %s: %s; dropping it", self.name, why)
        self._queue.clear()
        self._state = None
        self._final = encode_message(Error(code=E_SLOW_CONSUMER, message=why))
        self.closing = self._dropped = True
        if self._waiting is not None:
            self._waiting.cancel()
        self._wake.set()


def _charge(size: int) -> int:
    """What a write of *size* bytes adds to the send queue's count, at most."""
    return size + WRITE_OVERHEAD * (1 + size // SKB_CHUNK)
