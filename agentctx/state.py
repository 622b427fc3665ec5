"""What a client holds: a drive state, where it came from, and how old it is.

`DriveState` is a thin view over the state JSON exactly as the daemon sends it
(the schema itself is `agentctx._core.protocol.State`): the hook fast path reads it
with the stdlib `json` module, so nothing here imports msgspec or anyio.
"""

from __future__ import annotations

import time

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = [
    "FUTURE_TOLERANCE_S",
    "STALE_MIN_S",
    "STALE_TICKS",
    "DriveEvent",
    "DriveState",
    "Transition",
]

STALE_TICKS: Final = 3  # older than this many tick intervals counts as stale...
STALE_MIN_S: Final = 5.0  # ...but never less than this (scheduling jitter on 1 s ticks)
# A tick stamped further than this in the reader's future means a clock was stepped
# (back, here, or forward, then): its age is unknowable, so it is not called fresh.
FUTURE_TOLERANCE_S: Final = 2.0


class DriveState:
    """A full drive state. `source` is "socket" or "file"; `age_s` is how long ago
    the daemon ticked it (at the time it was received); `stale` says whether that is
    more than a few tick intervals, i.e. the daemon is probably not running.

    A state read from the socket is decoded when `data` is first looked at: a
    follower hands out every state, and most are superseded unread (`Live` keeps the
    newest only); what ordering needs (`seq`, `boot_id`, `tick_ts`, `stale`) comes
    decoded."""

    __slots__ = ("_data", "_decode", "_head", "_raw", "received_at", "source")

    def __init__(self, data: dict[str, Any], source: str, received_at: float | None = None):
        self._data: dict[str, Any] | None = data
        self._raw = b""
        self._decode: Callable[[bytes], dict[str, Any]] | None = None
        # (seq, boot_id, tick_ts, marked_stale) of a lazy state, read before its data
        self._head: tuple[int, str, float, bool] | None = None
        self.source = source
        self.received_at = time.time() if received_at is None else received_at

    @classmethod
    def lazy(
        cls,
        raw: bytes,
        head: tuple[int, str, float, bool],
        decode: Callable[[bytes], dict[str, Any]],
        source: str = "socket",
    ) -> DriveState:
        """A state whose JSON *raw* is decoded by *decode* on first use of `data`;
        *head* is its (seq, boot_id, tick_ts, stale) as found in it, of those types
        (0, "", 0.0, False if absent)."""
        state = cls.__new__(cls)
        state._data = None
        state._raw = raw
        state._decode = decode
        state._head = head
        state.source = source
        state.received_at = time.time()
        return state

    def _field(self, index: int, key: str, default: Any) -> Any:
        """A head field: as pre-read (a lazy state), else from `data`."""
        head = self._head
        if head is not None:
            return head[index]
        assert self._data is not None  # only a lazy state has no data yet, and it has a head
        return self._data.get(key, default)

    @property
    def data(self) -> dict[str, Any]:
        """The state as the daemon sent it (the `State` schema, as a dict)."""
        data = self._data
        if data is None:  # two threads may both decode it: the same content either way
            assert self._decode is not None
            data = self._data = self._decode(self._raw)
            self._raw = b""
        return data

    @property
    def seq(self) -> int:
        return int(self._field(0, "seq", 0))

    @property
    def boot_id(self) -> str:
        return str(self._field(1, "boot_id", ""))

    @property
    def tick_ts(self) -> float:
        return float(self._field(2, "tick_ts", 0.0))

    @property
    def marked_stale(self) -> bool:
        """Marked stale by the sidecar that sent it (a follower cut off from its home
        re-serves its last state so)."""
        return bool(self._field(3, "stale", False))

    @property
    def tick_interval(self) -> float:
        return float(self.data.get("tick_interval", 1.0))

    @property
    def last_tick(self) -> str:
        return str(self.data.get("last_tick", ""))

    @property
    def origin(self) -> str | None:
        """The host whose sidecar computed this state, when shared over NATS."""
        origin = self.data.get("origin")
        return str(origin) if origin else None

    @property
    def drives(self) -> dict[str, dict[str, Any]]:
        """Drive name -> its fields (pressure, threshold, ratio, band, status, ...)."""
        drives: dict[str, dict[str, Any]] = self.data.get("drives", {})
        return drives

    @property
    def age_s(self) -> float:
        """Seconds between the daemon's tick and the moment this state was received."""
        return max(0.0, self.received_at - self.tick_ts)

    @property
    def clock_ahead_s(self) -> float:
        """How far the tick's time is in the reader's future (0 normally); more than
        FUTURE_TOLERANCE_S means a wall clock was stepped and `age_s` means nothing."""
        return max(0.0, self.tick_ts - self.received_at)

    @property
    def stale(self) -> bool:
        """Probably not current: older than a few ticks, or stamped in the future
        (a file whose age cannot be known; a live socket state is fresh by definition
        but for the one tick after a clock step). A follower marks the state it
        re-serves stale itself (`"stale": true`) while cut off from its home."""
        if self.marked_stale or self.clock_ahead_s > FUTURE_TOLERANCE_S:
            return True
        return self.age_s > max(STALE_TICKS * self.tick_interval, STALE_MIN_S)

    def newer_than(self, other: DriveState | None) -> bool:
        """Whether this state should replace *other* for a reader that must never go
        back. `seq` continues across daemon restarts, so it decides; only a daemon that
        lost its state (new boot_id, lower seq) is followed, and only if its tick is
        more recent."""
        if other is None:
            return True
        # (a lazy state's head as read, without a call: this runs at every state)
        seq, boot_id, tick_ts, stale = self._head or self._heads()
        other_seq, other_boot_id, other_tick_ts, other_stale = other._head or other._heads()
        if seq > other_seq:
            return True
        if seq == other_seq and stale != other_stale:
            return True  # a follower marking the same state stale, or fresh again
        return boot_id != other_boot_id and seq < other_seq and tick_ts > other_tick_ts

    def _heads(self) -> tuple[int, str, float, bool]:
        """(seq, boot_id, tick_ts, marked_stale), read from `data`. A follower compares
        them at every state, right after the read that woke it, where each Python call
        costs microseconds: a lazy state has them at hand, in `_head`."""
        return self.seq, self.boot_id, self.tick_ts, self.marked_stale

    def __repr__(self) -> str:
        return (
            f"DriveState(seq={self.seq}, source={self.source!r}, age_s={self.age_s:.1f}, "
            f"drives={sorted(self.drives)})"
        )


class DriveEvent:
    """A discrete change pushed by the daemon (band_changed, satisfied, bumped, reset):
    the wire `event` message (agentctx._core.protocol.Event) as the client sees it."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def drive(self) -> str:
        return str(self.data["drive"])

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    def __repr__(self) -> str:
        extra = (
            f" {self.data.get('from')}->{self.data.get('to')}"
            if self.kind == "band_changed"
            else ""
        )
        return f"DriveEvent({self.kind} {self.drive}{extra}, seq={self.seq})"


class Transition:
    """The subscription switched between the live socket and the snapshot file."""

    __slots__ = ("mode", "reason")

    def __init__(self, mode: str, reason: str) -> None:
        self.mode = mode  # "live" or "fallback"
        self.reason = reason

    def __repr__(self) -> str:
        return f"Transition({self.mode}: {self.reason})"
