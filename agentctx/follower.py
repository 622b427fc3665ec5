"""`agentctx.follow()`: every state and event, live, as a plain blocking iterator.

    with agentctx.follow() as updates:
        for update in updates:            # DriveState | DriveEvent | Transition
            ...

The same guarantees as `subscribe()`, for code without an event loop: the socket
is read by the iterating thread itself (one blocking `recv` per wake-up, the
states and events it brought handed out in order); when the socket goes away or
stays silent past a few tick intervals it says `Transition("fallback", ...)` and
follows the snapshot file, waiting in one `poll()` on an inotify watch of the
directory, a wake-up pipe and the next reconnect attempt (backoff); back on the
socket it says `Transition("live", ...)`. It never hands out a state older than
one it already gave (`DriveState.newer_than`).

`close()` may be called from any thread: it wakes the iterating thread at once
(a shutdown of the socket, a byte in the wake-up pipe), which then stops.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from types import TracebackType

import msgspec

from agentctx._core import inotify
from agentctx._core.errors import DaemonUnavailable, ProtocolError, StoreError
from agentctx._core.framing import MAX_FRAME_LIMIT, RECV_SIZE, FrameDecoder, encode_frame
from agentctx._core.peercred import check_server
from agentctx.blocking import hello_payload
from agentctx.feed import (
    NO_INOTIFY_POLL,
    Following,
    Update,
    silence_for,
)
from agentctx.state import DriveState

__all__ = ["Follower", "follow"]

_TIMEVAL = struct.Struct("ll")  # struct timeval, for SO_RCVTIMEO
_decode = msgspec.json.Decoder().decode
_POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR


class Follower(Following):
    """A blocking iterator of updates; see the module docstring."""

    def _setup(self) -> None:
        self._decoder = FrameDecoder(MAX_FRAME_LIMIT)
        # One receive buffer, reused: `recv(n)` would allocate n bytes per read.
        self._buffer = memoryview(bytearray(RECV_SIZE))
        self._silence = 0.0
        # Shared with close() (any thread), under the lock:
        self._lock = threading.Lock()
        self._busy = False  # a thread is inside __next__: it releases what is open
        self._sock: socket.socket | None = None  # connected or connecting
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False  # set last: __del__ releases what is open only if set
        # Fallback only (the iterating thread's own):
        self._watch: inotify.DirWatch | None = None
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        self._delay = self.reconnect_min
        self._next_connect = 0.0
        self._next_backstop = 0.0

    @property
    def last(self) -> DriveState | None:
        """The newest state handed out (or about to be)."""
        return self._feed.last

    @property
    def file_problem(self) -> str | None:
        """Why the snapshot gave nothing when last read in fallback; None if it did."""
        return self._file.problem

    def __enter__(self) -> Follower:
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Follower:
        return self

    def __next__(self) -> Update:
        ready = self._feed.ready
        with self._lock:
            if self._busy:  # one socket, one buffer, one decoder: one reader at a time
                raise RuntimeError(
                    "this follow() is being iterated in another thread; give each its own"
                )
            if self._closed:
                raise StopIteration
            if ready:  # the rest of what the last read brought
                return ready.popleft()
            self._busy = True
        try:
            while not ready and not self._closed:
                if self.mode == "live":
                    self._read_live()
                elif self.mode == "starting":
                    if (why := self._connect()) is not None:
                        self._start_fallback(why)
                else:
                    self._fallback_step()
            if self._closed:
                raise StopIteration
            return ready.popleft()
        finally:
            with self._lock:
                self._busy = False
                if self._closed:
                    self._release()

    def close(self) -> None:
        """Stop, from any thread: the iterating thread (if any) returns at once."""
        with self._lock:  # the iterating thread releases the descriptors under it too
            if self._closed:
                return
            self._closed = True
            if not self._busy:
                self._release()
                return
            if self._sock is not None:  # wakes a blocked recv (or welcome wait) with EOF
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):  # wakes the poll of the fallback
                os.write(self._wake_w, b"!")

    def __del__(self) -> None:  # iterated without `with` and dropped: no descriptor leaks
        if not getattr(self, "_closed", True):
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Close every descriptor (under the lock, by the last one out)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._wake_r >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def _set_sock(self, sock: socket.socket | None) -> bool:
        """Make *sock* the one close() shuts down; False (and *sock* closed) if closed."""
        with self._lock:
            if self._sock is not None and self._sock is not sock:
                self._sock.close()
            self._sock = sock
            if self._closed and sock is not None:
                sock.close()
                self._sock = None
                return False
        return True

    # --- live -----------------------------------------------------------------------

    def _read_live(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            size = sock.recv_into(self._buffer)
        except BlockingIOError:  # SO_RCVTIMEO ran out: nothing for a few ticks
            return self._lost(f"no state from the sidecar for {self._silence:g}s")
        except OSError as exc:
            return self._lost(f"connection lost: {exc.strerror or exc}")
        if not size:
            return self._lost("connection lost: connection closed")
        try:
            self._feed.frames(self._decoder.feed(self._buffer[:size]))
        except ProtocolError as exc:
            self._lost(str(exc))

    def _lost(self, reason: str) -> None:
        self._set_sock(None)
        if not self._closed:
            self._start_fallback(reason)

    def _connect(self) -> str | None:
        """Connect, hello, welcome; None once live, else why not."""
        path = str(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        if not self._set_sock(sock):
            return "closed"
        decoder = FrameDecoder(MAX_FRAME_LIMIT)
        try:
            deadline = time.monotonic() + self.connect_timeout
            sock.settimeout(self.connect_timeout)
            sock.connect(path)
            check_server(sock, path)
            sock.sendall(encode_frame(hello_payload(self.client, True)))
            frames: list[bytes] = []
            while not frames:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(RECV_SIZE)
                if not data:
                    raise DaemonUnavailable(f"{path}: connection closed")
                frames = decoder.feed(data)
            welcome = _decode(frames[0])
            if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
                got = welcome if isinstance(welcome, dict) else {}
                raise DaemonUnavailable(f"{path}: refused: {got.get('code')}: {got.get('message')}")
            # Blocking reads from here on, each bounded by SO_RCVTIMEO: one syscall per
            # read (a socket timeout would poll() before every recv).
            self._silence = silence_for(welcome)
            sock.settimeout(None)
            secs = int(self._silence)
            usecs = int((self._silence - secs) * 1e6)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.pack(secs, usecs))
        except TimeoutError:
            self._set_sock(None)
            return f"{path}: no welcome within {self.connect_timeout:g}s"
        except OSError as exc:
            self._set_sock(None)
            return f"{path}: {exc.strerror or exc}"
        except (DaemonUnavailable, ProtocolError, msgspec.DecodeError) as exc:
            self._set_sock(None)
            return str(exc)
        self._decoder = decoder
        self._close_watch()  # live: the daemon rewrites the file every tick, unwatched
        self.mode = "live"
        self._feed.transition("live", f"connected to {path}")
        try:
            self._feed.frames(frames[1:])
        except ProtocolError as exc:
            self._lost(str(exc))
        return None

    # --- fallback -------------------------------------------------------------------

    def _start_fallback(self, reason: str) -> None:
        if self._closed:
            return
        self.mode = "fallback"
        self._feed.transition("fallback", reason)
        self._file.forget()
        self._arm()  # before reading: a write after the read is then reported
        self._read_file()
        now = time.monotonic()
        self._delay = self.reconnect_min
        self._next_connect = now + self._delay
        self._next_backstop = now + self._backstop()

    def _backstop(self) -> float:
        return self.backstop if self._watch is not None else NO_INOTIFY_POLL

    def _arm(self) -> None:
        """Watch the directory if it can be (and is not watched yet)."""
        if self._watch is None and inotify.available():
            try:
                self._watch = inotify.DirWatch(self.snapshot_path.parent)
            except StoreError:  # no inotify instance left: poll
                return
            self._poll.register(self._watch.fileno(), select.POLLIN)
        watch = self._watch
        if watch is None or watch.armed:
            return
        try:
            watch.arm()
        except StoreError:  # no watch left: poll
            self._close_watch()

    def _close_watch(self) -> None:
        if self._watch is not None:
            self._poll.unregister(self._watch.fileno())
            self._watch.close()
            self._watch = None

    def _read_file(self, only_if_changed: bool = False) -> None:
        state = self._file.read(only_if_changed)
        if state is not None:
            self._feed.file_state(state)

    def _fallback_step(self) -> None:
        """Wait for a file change, the backstop or the next reconnect; act on it."""
        now = time.monotonic()
        if now >= self._next_connect:
            if self._connect() is None:  # still down: why was said when fallback began
                return
            self._delay = min(self._delay * 2, self.reconnect_max)
            self._next_connect = time.monotonic() + self._delay
        timeout = max(0.0, min(self._next_connect, self._next_backstop) - time.monotonic())
        ready = {fd for fd, _ in self._poll.poll(timeout * 1000)}
        if self._closed:
            return
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 64)
        watch = self._watch
        if watch is not None and watch.fileno() in ready:
            names = watch.changed()
            if names is None or self.snapshot_path.name in names:
                self._read_file(only_if_changed=names is None)
        if time.monotonic() >= self._next_backstop:  # a missed event, a replaced directory
            if watch is not None and watch.armed:
                watch.verify()
            self._arm()
            self._read_file(only_if_changed=True)
            self._next_backstop = time.monotonic() + self._backstop()


# `with agentctx.follow(...) as updates:` reads better than the class name.
follow = Follower
