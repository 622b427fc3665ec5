"""What `subscribe()` and `follow()` share, without any I/O: frames and snapshot reads
in, updates out, in order, never a state older than one already handed out.

Both read the socket in the caller's own task or thread and hand over what one read
brought (a state and its events arrive in one write of the daemon) from `ready`:
no queue, task or thread stands between the socket and the caller.
"""

from __future__ import annotations

import abc
import os
from collections import deque
from pathlib import Path
from typing import Any, Final

import msgspec

from agentctx._core import paths
from agentctx._core.errors import ProtocolError, StoreError
from agentctx._core.snapshot import read_snapshot_file
from agentctx.state import STALE_MIN_S, STALE_TICKS, DriveEvent, DriveState, Transition

__all__ = [
    "BACKSTOP",
    "CONNECT_TIMEOUT",
    "NO_INOTIFY_POLL",
    "RECONNECT_MAX",
    "RECONNECT_MIN",
    "Feed",
    "Following",
    "SnapshotFile",
    "Update",
    "silence_for",
]

Update = DriveState | DriveEvent | Transition

# connect + welcome, per attempt; with socket activation a connect alone proves nothing
CONNECT_TIMEOUT: Final = 1.0
RECONNECT_MIN: Final = 0.05
RECONNECT_MAX: Final = 2.0
BACKSTOP: Final = 1.0  # re-read the snapshot at least this often while following it
# Without inotify (not Linux, or no instance left) the snapshot is polled this often:
# twenty stat calls a second cost next to nothing and keep the fallback within tens of ms.
NO_INOTIFY_POLL: Final = 0.05

_decode = msgspec.json.Decoder().decode


class _Head(msgspec.Struct):
    """What a follower reads of every frame: its type, and a state's place in order.
    Decoding only these skips the rest of the frame without building anything; their
    types are checked right there, in C (a state that gets them wrong is refused)."""

    type: Any = None
    seq: int = 0
    boot_id: str = ""
    tick_ts: float = 0.0
    stale: bool = False


_decode_head = msgspec.json.Decoder(_Head).decode
# How the daemon begins every event (msgspec writes a tagged struct's tag first): such
# a frame is decoded once, whole, instead of its head first (see Feed.frames).
_EVENT_PREFIX: Final = b'{"type":"event"'


class Following(abc.ABC):
    """What both followers (`Subscription`, `Follower`) are made of: who they are to
    the daemon, which socket and snapshot they follow, how they retry, and their feed.
    Each sets up its own parts (socket, buffers, tasks) in `_setup()`."""

    def __init__(
        self,
        *,
        client: str = "agentctx",
        socket_path: Path | None = None,
        snapshot_path: Path | None = None,
        reconnect_min: float = RECONNECT_MIN,
        reconnect_max: float = RECONNECT_MAX,
        backstop: float = BACKSTOP,
        connect_timeout: float = CONNECT_TIMEOUT,
        agent: str | None = None,
    ) -> None:
        self.client = client
        # the agent is resolved now (default: $AGENTCTX_AGENT), not at each reconnect
        self.socket_path = socket_path or Path(paths.socket_path(agent))
        self.snapshot_path = snapshot_path or Path(paths.snapshot_path(agent))
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.backstop = backstop
        self.connect_timeout = connect_timeout
        self.mode = "starting"
        self._feed = Feed()
        self._file = SnapshotFile(self.snapshot_path)
        self._setup()

    @abc.abstractmethod
    def _setup(self) -> None: ...


def silence_for(welcome: dict[str, Any]) -> float:
    """How long a live connection may stay silent before the daemon counts as hung:
    a few of its tick intervals (it sends a state every tick)."""
    return max(STALE_TICKS * float(welcome.get("tick_interval", 1.0)), STALE_MIN_S)


class Feed:
    """Updates ready to be handed out, and the newest state handed out or queued."""

    __slots__ = ("last", "ready")

    def __init__(self) -> None:
        self.last: DriveState | None = None
        self.ready: deque[Update] = deque()

    def frames(self, payloads: list[bytes]) -> None:
        """Decode the frames of one read into updates. ProtocolError on a frame that is
        not a JSON object; frames of other types (pong, error) are not for a reader."""
        ready = self.ready
        for payload in payloads:
            try:
                if payload.startswith(_EVENT_PREFIX):  # the head would say "event": skip it
                    ready.append(DriveEvent(_decode(payload)))
                    continue
                head = _decode_head(payload)
            except msgspec.DecodeError as exc:  # not JSON, not an object, a head field's type
                raise ProtocolError(f"bad frame from the sidecar: {exc}") from None
            kind = head.type
            if kind == "state":  # decoded when (if ever) its data is looked at
                fields = (head.seq, head.boot_id, head.tick_ts, head.stale)
                state = DriveState.lazy(payload, fields, _decode)
                if state.newer_than(self.last):
                    self.last = state
                    ready.append(state)
            elif kind == "event":
                ready.append(DriveEvent(_decode(payload)))

    def file_state(self, state: DriveState) -> None:
        """A state read from the snapshot file. One not yet handed out is replaced by
        a newer one: a slow reader in fallback gets the newest, not a backlog."""
        if not state.newer_than(self.last):
            return
        self.last = state
        ready = self.ready
        if ready and isinstance(ready[-1], DriveState) and ready[-1].source == "file":
            ready[-1] = state
        else:
            ready.append(state)

    def transition(self, mode: str, reason: str) -> None:
        self.ready.append(Transition(mode, reason))


class SnapshotFile:
    """Reads of the snapshot file for a follower: what changed since the last read,
    and why there was nothing (no file, damaged) for a view to show."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None  # why the last read gave no state; None: it did
        self._sig: tuple[int, int] | None = None

    def forget(self) -> None:
        """Read it whatever it looks like next time (on entering fallback)."""
        self._sig = None

    def read(self, only_if_changed: bool = False) -> DriveState | None:
        """The state in the file; None if there is none, it cannot be read, or
        *only_if_changed* and its (inode, mtime) are those of the last read."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._sig, self.problem = None, f"no snapshot at {self.path} ({exc.strerror})"
            return None
        sig = (st.st_ino, st.st_mtime_ns)
        if only_if_changed and sig == self._sig:
            return None
        self._sig = sig
        try:
            data = read_snapshot_file(self.path)
        except StoreError as exc:  # atomic renames never tear it; a person might
            self.problem = str(exc)
            return None
        if data is None:  # gone between the stat and the read
            self._sig, self.problem = None, f"no snapshot at {self.path}"
            return None
        state = DriveState(data, "file")
        try:
            state.seq, state.tick_ts  # noqa: B018 (ordering needs both as numbers)
        except (TypeError, ValueError):
            self.problem = f"{self.path}: not a drive state (seq, tick_ts)"
            return None
        self.problem = None
        return state
