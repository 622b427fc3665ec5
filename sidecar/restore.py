"""Rebuilding the drive state at start: the durable state, else the snapshot, else zero.

Damaged files are reported, never fatal. `seq` continues above everything ever
published: above the durable state's lease, and above the snapshot's seq — by a
wide margin when the snapshot shows the lease was not kept (no readable durable
state, or a disk that failed while the daemon went on publishing), since the last
states published may not have reached the snapshot either (docs/design.md,
"Durability and seq").

The engine stays at the restored instant: spooled requests are then applied at
the time they were made, and the first tick catches up to now by the real time
that passed (sidecar.clock), or by the wall clock when that is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from agentctx._core import history
from agentctx._core.config import Config
from agentctx._core.errors import StoreError
from agentctx._core.files import clean_orphans
from agentctx._core.layout import Layout
from agentctx._core.protocol import State, encode
from sidecar.clock import StepWatch
from sidecar.engine import DriveRuntime, Engine
from sidecar.store import Durable, load_durable, load_snapshot

__all__ = ["SEQ_UNKNOWN_MARGIN", "Restored", "restore"]

log = logging.getLogger(__name__)

# When the lease cannot be trusted, start this far above the snapshot's seq.
SEQ_UNKNOWN_MARGIN: Final = 1_000_000


@dataclass
class Restored:
    engine: Engine
    seq: int
    requests: list[tuple[str, int]] = field(default_factory=list)
    source: str = "defaults"
    steps: StepWatch = field(default_factory=StepWatch)


def _instant(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _from_snapshot(snap: State) -> dict[str, DriveRuntime]:
    return {
        name: DriveRuntime(
            pressure=v.pressure,
            last_triggered=_instant(v.last_triggered),
            last_satisfied=_instant(v.last_satisfied),
            last_event=_instant(v.last_event),
        )
        for name, v in snap.drives.items()
    }


def _from_durable(config: Config, durable: Durable, now: float, kernel_boot: str) -> Restored:
    same_boot = bool(kernel_boot) and durable.kernel_boot == kernel_boot
    if same_boot and durable.clock_offset is not None:
        # real time since the last tick is known: the first tick credits exactly that,
        # whatever was done to the wall clock meanwhile
        start, steps = durable.last_tick, StepWatch(durable.clock_offset)
    else:
        start, steps = min(durable.last_tick, now), StepWatch()  # back in time: re-anchor
    engine = Engine.create(config, start, durable.drives, retired=durable.retired)
    if removed := sorted(set(durable.drives) - set(config.drives)):
        log.warning(
            "drive(s) %s not in the config; their pressure is kept in case they come back",
            ", ".join(removed),
        )
    return Restored(engine, max(durable.seq, durable.seq_lease), list(durable.requests), "", steps)


def _catch_up_history(layout: Layout, durable: Durable) -> None:
    """Append what the last durable save carried but a crash kept from the history."""
    missing = durable.unlogged
    try:
        if cut := history.repair_tail(layout.state):
            log.warning("history: cut %d bytes of a line a crash left half-written", cut)
        last = history.last_position(layout.state)
        missing = [e for e in durable.unlogged if (e.seq, e.n) > last]
        history.append(layout.state, [encode(e) for e in missing])
    except (StoreError, OSError) as exc:
        log.error("history: could not catch up, %d event(s) missing: %s", len(missing), exc)
        return
    if missing:
        log.info("history: appended %d event(s) a crash had kept from it", len(missing))


def restore(config: Config, layout: Layout, now: float, kernel_boot: str = "") -> Restored:
    for path in (layout.durable, layout.snapshot):
        if removed := clean_orphans(path):
            log.info("removed %d orphan temp file(s) of %s", removed, path)
    durable: Durable | None = None
    snap: State | None = None
    try:
        durable = load_durable(layout.durable)
    except StoreError as exc:
        log.error("durable state unusable, falling back to the snapshot: %s", exc)
    try:
        snap = load_snapshot(layout.snapshot)
    except StoreError as exc:
        log.warning("live snapshot unusable: %s", exc)
    if durable is not None:
        _catch_up_history(layout, durable)
        restored = _from_durable(config, durable, now, kernel_boot)
        restored.source = f"durable state {layout.durable}"
    elif snap is not None:
        restored = Restored(
            Engine.create(config, min(snap.tick_ts, now), _from_snapshot(snap)),
            snap.seq,
            source=f"snapshot {layout.snapshot}",
        )
    else:
        restored = Restored(Engine.create(config, now), 0)
    if snap is not None and snap.seq >= restored.seq:
        restored.seq = snap.seq + SEQ_UNKNOWN_MARGIN  # the lease was not kept
    log.info(
        "restored from %s; %.0fs to catch up; seq continues above %d",
        restored.source,
        now - restored.engine.last_tick,
        restored.seq,
    )
    return restored
