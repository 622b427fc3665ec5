"""A follower's hub: it receives the agent's states instead of computing them.

It stands where `sidecar.hub.Hub` stands for the server, the sessions and the
spool drain (`Serving`), so the socket, the protocol and the snapshot file are
exactly a sidecar's, and hooks and clients on this host work unchanged.

- A state is taken only if its `seq` is above the one served: never an older
  seq to a local client, whatever NATS redelivers (a consumer reset, a re-watch,
  a recreated bucket). Events are held until the state that carries them is
  served, so "state first, then its events" holds here too.
- While cut off (no connection, or no state from the home for a few of its
  ticks) the last state is served marked `"stale": true`, with its own tick time
  (so its true age); a fresh state clears the mark.
- Something is pushed at least every KEEPALIVE (the same state again when nothing
  changed), so clients never take the quiet for a dead sidecar: the welcome's
  tick interval says so.
- A request is forwarded to the home (`forward`), answered with the home's seq
  once the state reflecting it is served here: the protocol's ack order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import anyio
import msgspec

from agentctx._core.config import Config, Settings
from agentctx._core.errors import E_UNAVAILABLE, RequestFailed
from agentctx._core.framing import encode_frame
from agentctx._core.protocol import Event, Request, Spooled, State, encode
from sidecar.hub import Subscriber, write_snapshot
from sidecar.writer import LatestWriter

__all__ = ["KEEPALIVE", "STATE_WAIT", "FollowerHub", "Forward"]

log = logging.getLogger(__name__)

KEEPALIVE: Final = 1.0  # the longest a client goes without a frame (the welcome's tick)
STALE_TICKS: Final = 3  # the home silent this many of its ticks: cut off...
STALE_MIN_S: Final = 5.0  # ...but never sooner (the clients' own rule, agentctx.state)
STATE_WAIT: Final = 10.0  # a receipt's state not served in this long: answered unavailable
MAX_HELD_EVENTS: Final = 1024  # events waiting for their state

# Sends a request to the home and returns its seq there, or raises RequestFailed.
Forward = Callable[[Spooled], Awaitable[int]]

_decode_state = msgspec.json.Decoder(State).decode
_decode_event = msgspec.json.Decoder(Event).decode


class FollowerHub:
    def __init__(
        self,
        *,
        boot_id: str,
        snapshot_path: Path,
        forward: Forward,
        connected: Callable[[], bool],
        reconnected: Callable[[], Awaitable[None]],
    ) -> None:
        self.boot_id = boot_id
        self.snapshot_path = snapshot_path
        self._forward = forward
        self._connected = connected
        self._reconnected = reconnected
        # No drives of its own: only the serving settings (welcome's tick = KEEPALIVE).
        self._config = Config(drives={}, sidecar=Settings(tick_interval=KEEPALIVE))
        self.subscribers: set[Subscriber] = set()
        self.current: State | None = None
        self._frame = b""
        self._received = -math.inf  # monotonic time of the last new state
        self._pushed = -math.inf
        self._held: list[tuple[int, bytes]] = []
        self._served = anyio.Event()  # set (and replaced) at every new state
        self.has_state = anyio.Event()
        self.snapshot_writer: LatestWriter[bytes] = LatestWriter("snapshot", self._write)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def seq(self) -> int:
        return -1 if self.current is None else self.current.seq

    # --- Serving ----------------------------------------------------------------------

    def state(self, id: int | None = None) -> State:
        assert self.current is not None, "served only once a state is known"
        return msgspec.structs.replace(self.current, id=id)

    async def submit(self, req: Request, at: float | None = None) -> int:
        """Forward *req* (made at *at*, default now) and return the home's seq for it.
        RequestFailed: the home's refusal, or E_UNAVAILABLE when it cannot be reached
        (the client spools it then; its request_id makes a repeat harmless)."""
        return await self._forward(Spooled(made_at=time.time() if at is None else at, request=req))

    async def wait_durable(self, seq: int) -> int:
        """Wait until the state at *seq* is served here (the home made it durable)."""
        with anyio.move_on_after(STATE_WAIT):
            while self.seq < seq:
                await self._served.wait()
            return seq
        raise RequestFailed(E_UNAVAILABLE, f"the state at seq {seq} did not arrive in time")

    async def recovered(self) -> None:
        """Return at the next (re)connection: the spool drain tries again then."""
        await self._reconnected()

    # --- from NATS --------------------------------------------------------------------

    def restore(self, state: State) -> None:
        """Serve the last state this follower served (its snapshot) until NATS gives a
        newer one: marked stale, and the floor below which nothing is taken."""
        self._publish(msgspec.structs.replace(state, stale=True, id=None))

    def offer(self, data: bytes) -> None:
        """A state from the home, as put in KV."""
        try:
            state = _decode_state(data)
        except msgspec.DecodeError as exc:
            log.error("NATS: not a state, ignored: %s", exc)
            return
        if state.seq <= self.seq:
            return  # a redelivery, a re-watch, or older than what was served
        self._received = time.monotonic()
        held = [frame for seq, frame in self._held if seq <= state.seq]
        self._held = [(seq, frame) for seq, frame in self._held if seq > state.seq]
        self._publish(msgspec.structs.replace(state, stale=False, id=None), held)

    def event(self, data: bytes) -> None:
        """An event from the home: pushed behind its state, held until that is served."""
        try:
            seq = _decode_event(data).seq
        except msgspec.DecodeError as exc:
            log.error("NATS: not an event, ignored: %s", exc)
            return
        frame = encode_frame(data)
        if seq > self.seq:
            self._held = [*self._held[-(MAX_HELD_EVENTS - 1) :], (seq, frame)]
            return
        for sub in list(self.subscribers):
            sub.push(self._frame, (frame,))  # the same state again: clients skip it

    def check(self) -> None:
        """Every KEEPALIVE: mark the state stale (or fresh) as it is, else keep alive."""
        current = self.current
        if current is None:
            return
        now = time.monotonic()
        silence = max(STALE_TICKS * current.tick_interval, STALE_MIN_S)
        stale = not self._connected() or now - self._received > silence
        if stale != current.stale:
            if stale:
                log.warning("cut off from the home sidecar: serving seq %d as stale", current.seq)
            self._publish(msgspec.structs.replace(current, stale=stale))
        elif now - self._pushed >= KEEPALIVE:
            for sub in list(self.subscribers):
                sub.push(self._frame)
            self._pushed = now

    # --- internals --------------------------------------------------------------------

    def _publish(self, state: State, events: list[bytes] | None = None) -> None:
        self.current = state
        state_json = encode(state)
        self._frame = encode_frame(state_json)
        for sub in list(self.subscribers):
            sub.push(self._frame, events or ())
        self._pushed = time.monotonic()
        self.snapshot_writer.offer(state.seq, state_json)
        self.has_state.set()
        served, self._served = self._served, anyio.Event()
        served.set()

    def _write(self, state_json: bytes) -> None:
        write_snapshot(self.snapshot_path, state_json)
