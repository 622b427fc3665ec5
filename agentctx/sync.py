"""A blocking, stdlib-only connection to the sidecar, for short-lived processes.

Hooks start a fresh Python for every prompt, so this path imports nothing heavy
(no msgspec, no asyncio/anyio). It even uses the C module `_socket` directly:
`socket.py` wraps it in enums and imports `selectors`, which measured ~6 ms of a
~40 ms hook; the C socket object has every method used here. Every call takes an
absolute deadline; "down" means no answer before it, which also covers socket
activation (connect succeeds, nobody speaks) and a hung daemon.
"""

from __future__ import annotations

import _socket
import json
import os
import struct
import time

from agentctx.errors import DaemonUnavailable, ProtocolError
from agentctx.framing import FrameDecoder, encode_frame

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentctx.paths import StrPath

__all__ = ["SyncConnection", "check_server", "peer_uid"]

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
PROTO = 1


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    return int(uid)


def check_server(sock: _socket.socket, path: StrPath) -> None:
    """Refuse a sidecar socket served by another uid: its state is not ours to trust."""
    uid = peer_uid(sock)
    if uid != os.getuid():
        raise DaemonUnavailable(f"{path}: served by uid {uid}, not by us; not trusted")


class SyncConnection:
    def __init__(self, sock: _socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self._decoder = FrameDecoder()
        self._frames: list[bytes] = []

    @classmethod
    def open(
        cls,
        path: StrPath,
        deadline: float,
        client: str,
        subscribe: bool = False,
        extra: bytes = b"",
    ) -> SyncConnection:
        """Connect, check the server is us, send hello (and *extra* frames in the
        same write). DaemonUnavailable when there is no usable socket."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        conn = cls(sock, deadline)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(os.fspath(path))
            check_server(sock, path)
            hello = {"type": "hello", "proto": PROTO, "client": client, "subscribe": subscribe}
            sock.sendall(encode_frame(json.dumps(hello).encode()) + extra)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"{path}: {exc.strerror or exc}") from None
        except DaemonUnavailable:
            sock.close()
            raise
        return conn

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, payload: bytes) -> None:
        try:
            self.sock.settimeout(max(0.001, self.deadline - time.monotonic()))
            self.sock.sendall(encode_frame(payload))
        except OSError as exc:
            raise DaemonUnavailable(f"send failed: {exc.strerror or exc}") from None

    def recv(self) -> dict[str, Any]:
        """The next frame as a dict; DaemonUnavailable at the deadline or on EOF."""
        while not self._frames:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise DaemonUnavailable("no answer from the sidecar in time")
            try:
                self.sock.settimeout(left)
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                raise DaemonUnavailable("no answer from the sidecar in time") from None
            except OSError as exc:
                raise DaemonUnavailable(f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise DaemonUnavailable("the sidecar closed the connection")
            self._frames.extend(self._decoder.feed(data))
        try:
            msg = json.loads(self._frames.pop(0))
        except ValueError as exc:
            raise ProtocolError(f"bad frame from the sidecar: {exc}") from None
        if not isinstance(msg, dict):
            raise ProtocolError("bad frame from the sidecar: not an object")
        return msg

    def answer(self, id: int) -> dict[str, Any]:
        """Frames until the one answering request *id* (welcome etc. skipped)."""
        while True:
            msg = self.recv()
            if msg.get("id") == id:
                return msg
            if msg.get("type") == "error" and msg.get("id") is None:
                raise DaemonUnavailable(f"sidecar error: {msg.get('code')}: {msg.get('message')}")
