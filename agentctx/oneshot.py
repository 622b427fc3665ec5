"""`agentctx.read()`: the drive state once, fast, for hooks.

Socket first; the snapshot file when the socket is absent, refused, or silent
past the timeout. The result says which (`source`) and how old it is (`age_s`,
`stale`). Stdlib only: see agentctx.sync for why.
"""

from __future__ import annotations

import json
import time

from agentctx import paths
from agentctx.errors import DaemonUnavailable, ProtocolError, StoreError
from agentctx.files import read_file
from agentctx.framing import encode_frame
from agentctx.state import DriveState
from agentctx.sync import SyncConnection

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from agentctx.paths import StrPath

__all__ = ["DEFAULT_TIMEOUT", "read", "read_snapshot"]

DEFAULT_TIMEOUT: Final = 0.1
_GET_ID: Final = 1
_GET: Final = encode_frame(b'{"type":"get","id":1}')


def read(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    socket_path: StrPath | None = None,
    snapshot_path: StrPath | None = None,
    client: str = "agentctx.oneshot",
) -> DriveState:
    """The current drive state. Raises DaemonUnavailable when neither the socket nor
    the snapshot file gives one, StoreError when the snapshot exists but is unreadable."""
    try:
        return read_socket(timeout, socket_path=socket_path, client=client)
    except (DaemonUnavailable, ProtocolError):
        return read_snapshot(snapshot_path)


def read_socket(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    socket_path: StrPath | None = None,
    client: str = "agentctx.oneshot",
) -> DriveState:
    path = socket_path or paths.socket_path()
    deadline = time.monotonic() + timeout
    with SyncConnection.open(path, deadline, client, extra=_GET) as conn:
        msg = conn.answer(_GET_ID)
    if msg.get("type") != "state":
        raise ProtocolError(f"unexpected answer to get: {msg.get('type')}")
    return DriveState(_checked(msg, str(path)), "socket")


def read_snapshot(path: StrPath | None = None) -> DriveState:
    path = path or paths.snapshot_path()
    data = read_file(path)
    if data is None:
        raise DaemonUnavailable(f"no sidecar answering and no snapshot at {path}")
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from None
    return DriveState(_checked(obj, str(path)), "file")


def _checked(obj: Any, source: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("drives"), dict):
        raise StoreError(f"{source}: not a drive state (no 'drives' object)")
    checked: dict[str, Any] = obj
    return checked
