"""`agentctx.read()`: the drive state once, fast, for hooks.

Socket first; the snapshot file when the socket is absent, refused, or silent
past the timeout. The result says which (`source`) and how old it is (`age_s`,
`stale`). Stdlib only: see agentctx.blocking for why.
"""

from __future__ import annotations

import time

from agentctx._core import paths
from agentctx._core.errors import DaemonUnavailable, ProtocolError
from agentctx._core.snapshot import read_snapshot_file
from agentctx.blocking import GET_FRAME, GET_ID, BlockingConnection
from agentctx.state import DriveState

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from agentctx._core.paths import StrPath

__all__ = ["DEFAULT_TIMEOUT", "read", "read_snapshot", "read_socket"]

DEFAULT_TIMEOUT: Final = 0.1


_FOREVER = float("inf")


def read(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    socket_path: StrPath | None = None,
    snapshot_path: StrPath | None = None,
    client: str = "agentctx.oneshot",
    agent: str | None = None,
) -> DriveState:
    """The current drive state of *agent* (default: `$AGENTCTX_AGENT`, else the unnamed
    one). Raises DaemonUnavailable when neither the socket nor the snapshot file gives
    one, StoreError when the snapshot exists but is unreadable."""
    try:
        return read_socket(timeout, socket_path=socket_path, client=client, agent=agent)
    except (DaemonUnavailable, ProtocolError):
        return read_snapshot(snapshot_path, agent=agent)


def read_socket(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    socket_path: StrPath | None = None,
    client: str = "agentctx.oneshot",
    agent: str | None = None,
) -> DriveState:
    """The state from the sidecar's socket; DaemonUnavailable if none answers in time."""
    if not 0 <= timeout < _FOREVER:  # NaN fails this too
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    path = socket_path or paths.socket_path(agent)
    deadline = time.monotonic() + timeout
    with BlockingConnection.open(path, deadline, client, extra=GET_FRAME) as conn:
        msg = conn.answer(GET_ID)
    if msg.get("type") != "state" or not isinstance(msg.get("drives"), dict):
        raise ProtocolError(f"{path}: not a drive state in answer to get: {msg.get('type')}")
    return DriveState(msg, "socket")


def read_snapshot(path: StrPath | None = None, *, agent: str | None = None) -> DriveState:
    """The state from the snapshot file. DaemonUnavailable if there is none, StoreError
    if it cannot be read or is not a drive state."""
    path = path or paths.snapshot_path(agent)
    data = read_snapshot_file(path)
    if data is None:
        raise DaemonUnavailable(f"no sidecar answering and no snapshot at {path}")
    return DriveState(data, "file")
