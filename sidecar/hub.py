"""The hub: the one owner of drive state.

Ticks and requests are applied in order under one lock. Every change gets the
next `seq` and is published at once: one encoded frame, shared by every
subscriber, plus the new snapshot offered to its writer. A discrete event is
then acknowledged only once the durable state covering it is on disk (group
commit: concurrent requests share one fsync). Publishing before the fsync keeps
the push latency at socket speed; a crash in that window cannot lose anything a
client was told was accepted, because no ack went out, and a retry with the same
request_id is applied exactly once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final, Protocol

import anyio
import msgspec

from agentctx._core import history
from agentctx._core.config import Config
from agentctx._core.errors import E_NOT_DURABLE, RequestFailed, StoreError
from agentctx._core.files import atomic_write
from agentctx._core.framing import HEADER_SIZE
from agentctx._core.protocol import (
    SNAPSHOT_VERSION,
    Bump,
    DriveView,
    Event,
    Request,
    Satisfy,
    State,
    encode,
    encode_message,
)
from sidecar.clock import StepWatch, iso
from sidecar.engine import Engine
from sidecar.store import Durable, encode_durable
from sidecar.writer import LatestWriter

__all__ = [
    "REQUEST_MEMORY",
    "SEQ_LEASE",
    "Hub",
    "Serving",
    "Subscriber",
    "write_snapshot",
]

log = logging.getLogger(__name__)

REQUEST_MEMORY: Final = 1024  # request_ids remembered (durably) for idempotent repeats
SEQ_LEASE: Final = 10_000  # seqs reserved ahead in the durable state (see Durable.seq_lease)
SNAPSHOT_MODE: Final = 0o600


class Subscriber(Protocol):
    def push(self, state: bytes, events: Sequence[bytes] = (), joined: bytes = b"") -> None: ...


class Serving(Protocol):
    """What the server, its sessions and the spool drain need of a hub: this one, which
    computes the state, or a follower's (sidecar.follower), which receives it."""

    subscribers: set[Subscriber]
    boot_id: str

    @property
    def config(self) -> Config: ...

    def state(self, id: int | None = None) -> State: ...

    async def submit(self, req: Request, at: float | None = None) -> int: ...

    async def wait_durable(self, seq: int) -> int: ...

    async def recovered(self) -> None: ...


def write_snapshot(path: Path, state_json: bytes) -> None:
    """(A worker thread.) The live snapshot file: an encoded state, pretty-printed, since
    `cat` on this file is how a person debugs the daemon."""
    pretty = msgspec.json.format(state_json, indent=2) + b"\n"
    atomic_write(path, pretty, durable=False, mode=SNAPSHOT_MODE)


_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", lambda: None)


class Hub:
    def __init__(
        self,
        engine: Engine,
        *,
        boot_id: str,
        seq: int,
        durable_path: Path,
        snapshot_path: Path,
        requests: Iterable[tuple[str, int]] = (),
        clock: Callable[[], float] = time.time,
        steps: StepWatch | None = None,
        kernel_boot: str = "",
        history_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.boot_id = boot_id
        self.seq = seq
        self.clock = clock
        self.steps = steps  # None: trust the wall clock (tests with a fake clock)
        self.kernel_boot = kernel_boot
        self.origin: str | None = None  # this host's name, once states are shared (NATS)
        self.subscribers: set[Subscriber] = set()
        self.requests: OrderedDict[str, int] = OrderedDict(requests)
        self.last_save = 0.0
        # Every seq up to seq_lease may be published; the durable state must hold a
        # lease >= any published seq, so a restart can start above all of them.
        self.seq_lease = seq
        self.saved_lease = seq
        self.durable_path = durable_path
        self.snapshot_path = snapshot_path
        self.durable_writer: LatestWriter[Durable] = LatestWriter("durable state", self._save)
        self.durable_writer.written_seq = seq  # what we restored from is on disk already
        self.snapshot_writer: LatestWriter[bytes] = LatestWriter("snapshot", self._write_snapshot)
        # The history (None: kept nowhere): events not yet appended to it ride in every
        # durable save, and are appended right after it (see agentctx._core.history).
        self.history_dir = history_dir
        self.unlogged: list[Event] = []
        self.logged_upto: tuple[int, int] = (-1, -1)
        self._history_suspect = False  # an append failed: check what reached the file
        # Called with each publish's events, in order (the actions runner listens)
        self.listeners: list[Callable[[Sequence[Event]], None]] = []
        self._lock = anyio.Lock()

    @property
    def config(self) -> Config:
        return self.engine.config

    async def run(self) -> None:
        """The two file writers; run for the life of the hub."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.durable_writer.run)
            tg.start_soon(self.snapshot_writer.run)

    # --- views --------------------------------------------------------------------

    def state(self, id: int | None = None) -> State:
        """The full current state (as last ticked), tagged with *id* for a `get`."""
        eng = self.engine
        now = eng.last_tick
        drives = {}
        # A plain loop, no comprehension: a comprehension is one more function call,
        # and on a cold path each costs microseconds (see _publish).
        for name, spec, rt, ratio, band, cap, status in eng.readings(now):
            drives[name] = DriveView(
                pressure=rt.pressure,
                threshold=spec.threshold,
                status=status,
                description=spec.description,
                last_triggered=iso(rt.last_triggered),
                ratio=ratio,
                band=band,
                rate_per_hour=0.0 if spec.activity_driven else spec.rate_per_hour,
                max_pressure=cap,
                activity_driven=spec.activity_driven,
                last_satisfied=iso(rt.last_satisfied),
                last_event=iso(rt.last_event),
                prompt=spec.prompt,
                last_fired=iso(rt.last_fired),
            )
        return State(
            version=SNAPSHOT_VERSION,
            last_tick=iso(now) or "",
            seq=self.seq,
            boot_id=self.boot_id,
            tick_ts=now,
            tick_interval=eng.config.sidecar.tick_interval,
            drives=drives,
            id=id,
            origin=self.origin,
        )

    def durable(self) -> Durable:
        return Durable(
            seq=self.seq,
            seq_lease=self.seq_lease,
            last_tick=self.engine.last_tick,
            saved_at=self.clock(),
            boot_id=self.boot_id,
            drives=self.engine.runtime(),
            requests=list(self.requests.items()),
            retired=self.engine.retired(),
            unlogged=self._unlogged(),
            kernel_boot=self.kernel_boot,
            clock_offset=self.steps.offset if self.steps is not None else None,
        )

    # --- operations ---------------------------------------------------------------

    def now(self) -> float:
        """The wall clock's now, the engine rebased first if the clock was stepped."""
        now = self.clock()
        if self.steps is not None and (step := self.steps.sync(self.engine, now)):
            log.warning(
                "the wall clock was stepped %+.1fs; pressure follows the real time elapsed",
                step,
            )
        return now

    async def tick(self) -> None:
        """Advance to now and publish a state (and any band crossings)."""
        async with self._lock:
            changes = self.engine.advance(self.now())
            await self._publish(changes)

    async def apply(self, req: Request, at: float | None = None) -> int:
        """Apply a satisfy/bump/reset exactly once; return the seq of its state once durable.

        A repeated request_id is answered with the seq of its first application.
        *at* (a spooled request's creation time) applies it at that instant, clamped
        to [the engine's last tick, now], then catches up to now.
        Raises RequestFailed (unknown drive, bad values, or not durable).
        """
        return await self.wait_durable(await self.submit(req, at))

    async def submit(self, req: Request, at: float | None = None) -> int:
        """Apply and publish *req* (or find its earlier application); return its seq.
        Not yet durable: pair with `wait_durable(seq)` before acknowledging."""
        async with self._lock:
            seq = self.requests.get(req.request_id)
            if seq is None:
                seq = await self._apply(req, at)
        return seq

    async def recovered(self) -> None:
        """Return once the durable state can be saved again after a failure."""
        await self.durable_writer.recovered()

    async def wait_durable(self, seq: int) -> int:
        """Wait until the state at *seq* is on disk; RequestFailed(not_durable) if it
        cannot be (at once while the disk is failing: never a hang)."""
        try:
            await self.durable_writer.flush(seq)
        except StoreError as exc:
            # Applied and published, but not on disk: no ack. A later save covers
            # it; a retry with the same request_id is answered, never re-applied.
            raise RequestFailed(E_NOT_DURABLE, f"state could not be saved: {exc}") from None
        return seq

    async def _apply(self, req: Request, at: float | None) -> int:
        now = self.now()
        when = now if at is None else min(max(at, self.engine.last_tick), now)
        eng = self.engine  # RequestFailed: an unknown drive, bad values
        if isinstance(req, Satisfy):
            changes = eng.satisfy(req.drive, when, depth=req.depth, amount=req.amount)
        elif isinstance(req, Bump):
            changes = eng.bump(req.drive, when, req.amount)
        else:
            changes = eng.reset(req.drive, when)
        if when < now:
            changes += self.engine.advance(now)
        # Remember the request_id at once, under the seq it is about to be published
        # with (we hold the lock): every durable snapshot taken from here on, the seq
        # lease's included, must hold the change and its id together, or a retry
        # after a crash would apply it twice.
        seq = self.seq + 1
        self.requests[req.request_id] = seq
        while len(self.requests) > REQUEST_MEMORY:
            self.requests.popitem(last=False)
        await self._publish(changes, req)
        assert self.seq == seq
        self.durable_writer.offer(seq, self.durable())
        return seq

    async def reload(self, config: Config) -> None:
        async with self._lock:
            changes = self.engine.reconfigure(config, self.now())
            await self._publish(changes)

    async def save(self) -> None:
        """Save the durable state now (at start, then periodically); StoreError if that
        failed."""
        await self.durable_writer.written(self.durable_writer.offer(self.seq, self.durable()))

    def close(self) -> None:
        """Final saves at shutdown, with the event loop idle or gone."""
        self._save(self.durable())
        self.snapshot_writer.write_now()

    # --- internals ----------------------------------------------------------------

    def _unlogged(self) -> list[Event]:
        """The events not yet known to be in the history (pruned as they get there)."""
        upto = self.logged_upto
        self.unlogged = [e for e in self.unlogged if (e.seq, e.n) > upto]
        return list(self.unlogged)

    def _save(self, state: Durable) -> None:
        """(A worker thread.) The durable state, then the history lines it carries."""
        atomic_write(self.durable_path, encode_durable(state), durable=True)
        self.last_save = state.saved_at
        self.saved_lease = max(self.saved_lease, state.seq_lease)
        # Saves run one at a time, but the state each carries was taken on the loop,
        # possibly before the previous save appended some of its events: skip those.
        events = [e for e in state.unlogged if (e.seq, e.n) > self.logged_upto]
        if self.history_dir is not None and events:
            if self._history_suspect:  # a failed append may have written part of it
                history.repair_tail(self.history_dir)
                last = history.last_position(self.history_dir)
                events = [e for e in events if (e.seq, e.n) > last]
            self._history_suspect = True
            history.append(self.history_dir, [encode(e) for e in events])
            self._history_suspect = False
            newest = state.unlogged[-1]  # all of them are in the file now
            self.logged_upto = max(self.logged_upto, (newest.seq, newest.n))

    def _write_snapshot(self, state_json: bytes) -> None:
        write_snapshot(self.snapshot_path, state_json)

    async def _publish(self, changes: list[Event], request: Request | None = None) -> None:
        self.seq += 1
        if self.seq >= self.seq_lease - SEQ_LEASE // 2:  # renew early, in the background
            self.seq_lease = self.seq + SEQ_LEASE
            self.durable_writer.offer(self.seq, self.durable())
        if self.seq > self.saved_lease and self.durable_writer.healthy:
            # Right after start only (later the lease is renewed early): wait for it. A
            # failing disk never stops publishing; a restart then continues above the
            # snapshot's seq instead (see daemon.restore).
            try:
                await self.durable_writer.flush(self.seq)
            except StoreError as exc:
                log.error("could not save the seq lease: %s", exc)
        # From here to the last send is the push latency of a discrete event (timed
        # from its `ts`). It runs right after the daemon woke from idle, with cold
        # caches, where each Python call costs ~2 us rather than ~0.1: so, builtins
        # and C calls, one encode per frame, one join for every subscriber.
        state_frame = encode_message(self.state())
        event_frames: list[bytes] = []
        for n, event in enumerate(changes):
            event.seq, event.n = self.seq, n
            if request is not None and event.kind not in ("band_changed", "triggered"):
                event.request_id = request.request_id
                event.reason = request.reason
            event_frames.append(encode_message(event))
        joined = state_frame + b"".join(event_frames) if event_frames else state_frame
        for sub in list(self.subscribers):
            sub.push(state_frame, event_frames, joined)
        if self.subscribers:
            # The readers just woken go first: one placed on this core would otherwise
            # wait behind all that follows (the offers below, the ack, the file writes'
            # threads), which measured a second mode at +0.5 ms in 1 of 5 deliveries.
            _yield_cpu()
        # After the subscribers: their senders are woken first, the file write after.
        self.snapshot_writer.offer(self.seq, state_frame[HEADER_SIZE:])
        if changes:
            self.unlogged.extend(changes)
            if any(e.kind == "triggered" for e in changes):
                # a fired trigger is saved at once: a restart must never fire it again
                self.durable_writer.offer(self.seq, self.durable())
            for listener in self.listeners:
                listener(changes)

    async def record(self, changes: list[Event]) -> int:
        """Publish events that are not changes of pressure (an action started or
        finished); return the seq of the state that carries them."""
        async with self._lock:
            await self._publish(changes)
            self.durable_writer.offer(self.seq, self.durable())
            return self.seq
