"""Who is at the other end of a Unix socket (SO_PEERCRED), checked both ways.

The daemon closes a peer of another uid before sending a byte; a client refuses a
"sidecar" served by another uid, whose state is not ours to trust. Works on the C
socket object (`_socket`): the hook path never imports `socket.py` (~6 ms).
"""

from __future__ import annotations

import _socket
import os
import struct

from agentctx._core.errors import DaemonUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agentctx._core.paths import StrPath

__all__ = ["check_server", "peer_uid"]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket.
    OSError if the socket is not connected (the peer is already gone)."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED.size)
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


def check_server(sock: _socket.socket, path: StrPath) -> None:
    """DaemonUnavailable unless the server at *path* runs as our own uid."""
    try:
        uid = peer_uid(sock)
    except OSError as exc:
        raise DaemonUnavailable(f"{path}: {exc.strerror or exc}") from None
    if uid != os.getuid():
        raise DaemonUnavailable(f"{path}: served by uid {uid}, not by us; not trusted")
