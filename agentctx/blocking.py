"""A blocking, stdlib-only connection to the sidecar, for short-lived processes.

Hooks start a fresh Python for every prompt, so this path imports nothing heavy
(no msgspec, no asyncio/anyio). It even uses the C module `_socket` directly:
`socket.py` wraps it in enums and imports `selectors`, which measured ~6 ms of a
~40 ms hook; the C socket object has every method used here. Every call takes an
absolute deadline; "down" means no answer before it, which also covers socket
activation (connect succeeds, nobody speaks) and a hung daemon.

The two messages this path writes itself (`hello`, `get`) are hand copies of the
msgspec schema in agentctx._core.protocol, made to save the import; a test keeps
each equal to what the schema encodes (tests/test_protocol.py).
"""

from __future__ import annotations

import _socket
import os
import time

from agentctx._core import fastjson
from agentctx._core.errors import DaemonUnavailable, ProtocolError
from agentctx._core.framing import RECV_SIZE, FrameDecoder, encode_frame
from agentctx._core.peercred import check_server

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from agentctx._core.paths import StrPath

__all__ = ["GET_FRAME", "GET_ID", "PROTO", "BlockingConnection", "hello_payload"]

PROTO: Final = 1  # == protocol.PROTO_VERSION
GET_ID: Final = 1
GET_FRAME: Final = encode_frame(b'{"type":"get","id":1}')  # == encode_message(Get(id=GET_ID))


def hello_payload(client: str, subscribe: bool) -> bytes:
    """The `hello` message as JSON (== protocol.encode(Hello(...)), keys in that order)."""
    return fastjson.dumps(
        {"type": "hello", "proto": PROTO, "client": client, "subscribe": subscribe},
        compact=True,
    ).encode()


class BlockingConnection:
    """One connection, every call bounded by the absolute *deadline* (monotonic)."""

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
    ) -> BlockingConnection:
        """Connect, check the server is us, send hello (and *extra* frames in the
        same write). DaemonUnavailable when there is no usable socket."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        conn = cls(sock, deadline)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(os.fspath(path))
            check_server(sock, path)
            sock.sendall(encode_frame(hello_payload(client, subscribe)) + extra)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"{path}: {exc.strerror or exc}") from None
        except DaemonUnavailable:
            sock.close()
            raise
        return conn

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self) -> dict[str, Any]:
        """The next frame as a dict; DaemonUnavailable at the deadline or on EOF."""
        while not self._frames:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise DaemonUnavailable("no answer from the sidecar in time")
            try:
                self.sock.settimeout(left)
                data = self.sock.recv(RECV_SIZE)
            except TimeoutError:
                raise DaemonUnavailable("no answer from the sidecar in time") from None
            except OSError as exc:
                raise DaemonUnavailable(f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise DaemonUnavailable("the sidecar closed the connection")
            self._frames.extend(self._decoder.feed(data))
        try:
            msg = fastjson.loads(self._frames.pop(0))
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
