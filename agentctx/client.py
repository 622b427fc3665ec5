"""An async (anyio) connection to the sidecar: hello, welcome, then frames.

Foreign exceptions are mapped here: anything that means "no usable sidecar"
(OSError, end of stream, a missing first frame, a peer of another uid) becomes
DaemonUnavailable; a frame that is not a JSON object becomes ProtocolError.
Frames are decoded into plain dicts with msgspec's untyped decoder: the subscriber's
receive path is the hot path of every fan-out, and the server is trusted (our uid).
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream

from agentctx.errors import DaemonUnavailable, FrameTooLarge, ProtocolError
from agentctx.framing import FrameDecoder, encode_frame
from agentctx.protocol import PROTO_VERSION, Hello, encode

__all__ = ["CONNECT_TIMEOUT", "Connection"]

CONNECT_TIMEOUT: Final = (
    1.0  # connect + welcome; with socket activation connect alone proves nothing
)
RECV_SIZE: Final = 1 << 16
_PEERCRED = struct.Struct("3i")
_decode = msgspec.json.Decoder().decode

_UNAVAILABLE = (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


class Connection:
    def __init__(self, stream: SocketStream, welcome: dict[str, Any]) -> None:
        self.stream = stream
        self.welcome = welcome
        self._decoder = FrameDecoder()
        self._frames: list[bytes] = []

    @classmethod
    async def open(
        cls, path: Path, *, client: str, subscribe: bool = True, within: float = CONNECT_TIMEOUT
    ) -> Connection:
        try:
            with anyio.fail_after(within):
                stream = await anyio.connect_unix(str(path))
                try:
                    _check_peer(stream, path)
                    hello = Hello(proto=PROTO_VERSION, client=client, subscribe=subscribe)
                    await stream.send(encode_frame(encode(hello)))
                    conn = cls(stream, {})
                    welcome = await conn.receive()
                except BaseException:
                    await anyio.aclose_forcefully(stream)
                    raise
        except TimeoutError:
            raise DaemonUnavailable(f"{path}: no welcome within {within:g}s") from None
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"{path}: {_why(exc)}") from None
        if welcome.get("type") != "welcome":
            await conn.aclose()
            raise DaemonUnavailable(
                f"{path}: refused: {welcome.get('code')}: {welcome.get('message')}"
            )
        conn.welcome = welcome
        return conn

    async def receive(self) -> dict[str, Any]:
        """The next frame as a dict. DaemonUnavailable when the connection ends."""
        while not self._frames:
            try:
                data = await self.stream.receive(RECV_SIZE)
            except _UNAVAILABLE as exc:
                raise DaemonUnavailable(f"connection lost: {_why(exc)}") from None
            try:
                self._frames.extend(self._decoder.feed(data))
            except FrameTooLarge as exc:
                raise ProtocolError(str(exc)) from None
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
            await self.stream.send(encode_frame(encode(msg)))
        except _UNAVAILABLE as exc:
            raise DaemonUnavailable(f"connection lost: {_why(exc)}") from None

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return "connection closed" if isinstance(exc, anyio.EndOfStream) else type(exc).__name__


def _check_peer(stream: SocketStream, path: Path) -> None:
    sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    if uid != os.getuid():
        raise DaemonUnavailable(f"{path}: served by uid {uid}, not by us; not trusted")
