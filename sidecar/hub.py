"""The hub: the one owner of drive state.

Ticks and requests go through one lock, in order. Every change gets the next
`seq`, is saved durably first when it is a discrete event (so an ack is never
given for something a crash could lose), then published to every subscriber at
once (one encoded frame shared by all) and offered to the snapshot writer.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import anyio

from agentctx.errors import StoreError
from agentctx.framing import encode_frame
from agentctx.protocol import (
    SNAPSHOT_VERSION,
    Bump,
    DriveView,
    Event,
    Request,
    Reset,
    Satisfy,
    State,
    encode,
)
from sidecar.config import Config
from sidecar.engine import Change, DriveRuntime, Engine, UnknownDrive
from sidecar.snapshot import SnapshotWriter
from sidecar.store import DriveRecord, Durable, atomic_write, encode_durable

__all__ = ["REQUEST_MEMORY", "SEQ_LEASE", "Hub", "Rejected", "Subscriber", "iso"]

log = logging.getLogger(__name__)

REQUEST_MEMORY: Final = 4096  # request_ids remembered for idempotent repeats
SEQ_LEASE: Final = 10_000  # seqs reserved ahead in the durable state (see Durable.seq_lease)


class Subscriber(Protocol):
    def push_state(self, frame: bytes) -> None: ...
    def push_event(self, frame: bytes) -> None: ...


class Rejected(Exception):
    """A request the hub refused; becomes an `error` frame with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class Hub:
    def __init__(
        self,
        engine: Engine,
        *,
        boot_id: str,
        seq: int,
        durable_path: Path,
        snapshot: SnapshotWriter,
        requests: Iterable[tuple[str, int]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.boot_id = boot_id
        self.seq = seq
        self.seq_lease = seq  # nothing reserved yet: the first publish saves a lease
        self.durable_path = durable_path
        self.snapshot = snapshot
        self.clock = clock
        self.subscribers: set[Subscriber] = set()
        self.requests: OrderedDict[str, int] = OrderedDict(requests)
        self.last_save = 0.0
        self._lock = anyio.Lock()

    @property
    def config(self) -> Config:
        return self.engine.config

    # --- state views --------------------------------------------------------------

    def state(self, id: int | None = None) -> State:
        """The full current state (as last ticked), tagged with *id* for a `get`."""
        eng = self.engine
        now = eng.last_tick
        drives = {}
        for name in eng.names:
            spec = eng.spec(name)
            drives[name] = DriveView(
                pressure=eng.pressure(name),
                threshold=spec.threshold,
                status=eng.status(name, now),
                description=spec.description,
                last_triggered=iso(eng.last_triggered(name)),
                ratio=eng.ratio(name),
                band=eng.band(name),
                rate_per_hour=0.0 if spec.activity_driven else spec.rate_per_hour,
                max_pressure=eng.max_pressure(name),
                activity_driven=spec.activity_driven,
                last_satisfied=iso(eng.last_satisfied(name)),
                prompt=spec.prompt,
            )
        return State(
            version=SNAPSHOT_VERSION,
            last_tick=iso(now) or "",
            seq=self.seq,
            boot_id=self.boot_id,
            tick_ts=now,
            tick_interval=self.config.sidecar.tick_interval,
            drives=drives,
            id=id,
        )

    def durable(self) -> Durable:
        return Durable(
            seq=self.seq,
            seq_lease=self.seq_lease,
            last_tick=self.engine.last_tick,
            saved_at=self.clock(),
            boot_id=self.boot_id,
            drives={
                n: DriveRecord(
                    pressure=r.pressure,
                    last_triggered=r.last_triggered,
                    last_satisfied=r.last_satisfied,
                )
                for n, r in self.engine.runtime().items()
            },
            requests=list(self.requests.items()),
        )

    # --- operations ---------------------------------------------------------------

    async def tick(self) -> None:
        """Advance to now and publish a state (and any band crossings)."""
        async with self._lock:
            changes = self.engine.advance(self.clock())
            await self._publish(changes)

    async def apply(self, req: Request, at: float | None = None) -> int:
        """Apply a satisfy/bump/reset exactly once; return the seq of its state.

        A repeated request_id is answered with the seq of its first application.
        *at* (a spooled request's creation time) applies it at that instant when
        that is later than the engine's last tick; otherwise at the current time.
        """
        async with self._lock:
            known = self.requests.get(req.request_id)
            if known is not None:
                return known
            now = self.clock() if at is None else max(at, self.engine.last_tick)
            try:
                changes = self._mutate(req, now)
            except UnknownDrive as exc:
                raise Rejected("unknown_drive", str(exc)) from None
            except ValueError as exc:
                raise Rejected("bad_request", str(exc)) from None
            if at is not None:  # caught up to the request's instant; now the present
                changes += self.engine.advance(self.clock())
            self._next_seq()
            self.requests[req.request_id] = self.seq
            while len(self.requests) > REQUEST_MEMORY:
                self.requests.popitem(last=False)
            try:
                await self._save()
            except StoreError as exc:
                # Applied in memory but not durable: no ack. The next save (periodic
                # or the next event) persists it, and a retry with the same
                # request_id is answered from memory, never applied twice.
                log.error(
                    "durable save failed; request %s not acknowledged: %s", req.request_id, exc
                )
                await self._publish(changes, new_seq=False, request=req)
                raise Rejected("not_durable", f"state could not be saved: {exc}") from None
            await self._publish(changes, new_seq=False, request=req)
            return self.seq

    def _mutate(self, req: Request, now: float) -> list[Change]:
        eng = self.engine
        if isinstance(req, Satisfy):
            return eng.satisfy(req.drive, now, depth=req.depth, amount=req.amount)
        if isinstance(req, Bump):
            return eng.bump(req.drive, now, req.amount)
        assert isinstance(req, Reset)
        return eng.reset(req.drive, now)

    async def reload(self, config: Config) -> None:
        async with self._lock:
            changes = self.engine.reconfigure(config, self.clock())
            await self._publish(changes)

    async def save(self) -> None:
        """Periodic / final durable save."""
        async with self._lock:
            await self._save()

    def save_sync(self) -> None:
        """Final save at shutdown, when the event loop is already gone."""
        self._write_durable(self.durable())

    # --- internals ----------------------------------------------------------------

    def _next_seq(self) -> bool:
        """Take the next seq; True when the lease grew and must be saved first."""
        self.seq += 1
        if self.seq < self.seq_lease:
            return False
        self.seq_lease = self.seq + SEQ_LEASE
        return True

    async def _save(self) -> None:
        state = self.durable()
        await anyio.to_thread.run_sync(self._write_durable, state)

    def _write_durable(self, state: Durable) -> None:
        atomic_write(self.durable_path, encode_durable(state), durable=True)
        self.last_save = state.saved_at

    async def _publish(
        self, changes: list[Change], *, new_seq: bool = True, request: Request | None = None
    ) -> None:
        if new_seq and self._next_seq():
            try:
                await self._save()
            except StoreError as exc:
                log.error("could not save the seq lease: %s", exc)
        state_json = encode(self.state())
        self.snapshot.offer(self.seq, state_json)
        state_frame = encode_frame(state_json)
        event_frames = [encode_frame(encode(self._event(c, request))) for c in changes]
        for sub in list(self.subscribers):
            sub.push_state(state_frame)
            for frame in event_frames:
                sub.push_event(frame)

    def _event(self, change: Change, request: Request | None) -> Event:
        discrete = change.kind != "band_changed"
        return Event(
            seq=self.seq,
            kind=change.kind,
            drive=change.drive,
            ts=change.ts,
            pressure=change.pressure,
            ratio=change.ratio,
            band=change.band,
            from_band=change.from_band,
            to_band=change.to_band,
            request_id=request.request_id if request is not None and discrete else None,
            reason=request.reason if request is not None and discrete else None,
            depth=change.depth,
            amount=change.amount,
        )


def runtime_from(durable: Durable) -> dict[str, DriveRuntime]:
    return {
        n: DriveRuntime(r.pressure, r.last_triggered, r.last_satisfied)
        for n, r in durable.drives.items()
    }
