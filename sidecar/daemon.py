"""The daemon's life: claim its files, restore, serve, tick, reload, stop cleanly.

Tasks (one task group): the tick loop, the snapshot writer, the accept loop and
the signal loop. SIGTERM/SIGINT cancel the group; what follows runs with the
loop idle: a final durable save, the last snapshot, the socket removed (the
snapshot stays: clients read it exactly when the daemon is down).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import SocketListener, TaskStatus

from agentctx._core.config import Config, load_config
from agentctx._core.errors import ConfigError, StoreError
from agentctx._core.files import clean_orphans
from agentctx._core.layout import Layout
from agentctx._core.protocol import State
from sidecar.claim import bind_socket, ensure_private_dir, hold_lock
from sidecar.drain import drain, watch_spool
from sidecar.engine import DriveRuntime, Engine
from sidecar.hub import Hub
from sidecar.notify import Notifier, activated_socket
from sidecar.server import Server
from sidecar.store import Durable, load_durable, load_snapshot

__all__ = ["SEQ_UNKNOWN_MARGIN", "Daemon", "restore"]

log = logging.getLogger(__name__)

STATUS_INTERVAL: Final = 5.0  # seconds between STATUS= updates to systemd

# With no readable durable state we do not know the seq lease: start this far
# above the snapshot's seq so no client ever sees a seq go back.
SEQ_UNKNOWN_MARGIN: Final = 1_000_000


@dataclass
class Restored:
    engine: Engine
    seq: int
    requests: list[tuple[str, int]] = field(default_factory=list)
    source: str = "defaults"


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


def restore(config: Config, layout: Layout, now: float) -> Restored:
    """Rebuild the engine from the durable state (else the snapshot, else zero).

    The engine stays at the restored instant: spooled requests are applied at the
    time they were made, then the first tick catches up to *now* by wall clock.
    Damaged files are reported, never fatal."""
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
        seq = max(durable.seq, durable.seq_lease)
        restored = Restored(
            Engine.create(config, min(durable.last_tick, now), durable.drives),
            seq,
            list(durable.requests),
            f"durable state {layout.durable}",
        )
    elif snap is not None:
        restored = Restored(
            Engine.create(config, min(snap.tick_ts, now), _from_snapshot(snap)),
            snap.seq + SEQ_UNKNOWN_MARGIN,
            [],
            f"snapshot {layout.snapshot}",
        )
    else:
        restored = Restored(Engine.create(config, now), 0)
    if snap is not None:
        restored.seq = max(restored.seq, snap.seq)
    log.info(
        "restored from %s; %.0fs to catch up; seq continues above %d",
        restored.source,
        now - restored.engine.last_tick,
        restored.seq,
    )
    return restored


class Daemon:
    def __init__(self, config: Config, layout: Layout, config_path: Path | None = None) -> None:
        self.config = config
        self.layout = layout
        self.config_path = config_path
        self.boot_id = uuid.uuid4().hex
        self.hub: Hub | None = None
        self.server: Server | None = None
        self.notifier = Notifier()

    @contextlib.contextmanager
    def claimed(self) -> Iterator[socket.socket]:
        """Private dirs, the lock, then the socket: held for the daemon's life."""
        if not os.environ.get("AGENTCTX_RUNTIME_DIR") and not os.environ.get("XDG_RUNTIME_DIR"):
            log.warning(
                "XDG_RUNTIME_DIR is not set; using the private fallback %s", self.layout.runtime
            )
        ensure_private_dir(self.layout.runtime)
        ensure_private_dir(self.layout.state)
        with hold_lock(self.layout.lock):
            sock = activated_socket()
            if sock is not None:  # systemd owns this socket: never unlink or rebind it
                log.info("using the socket passed by systemd (socket activation)")
                try:
                    yield sock
                finally:
                    sock.close()
                return
            sock = bind_socket(self.layout.socket)
            ino = os.stat(self.layout.socket).st_ino
            try:
                yield sock
            finally:
                sock.close()
                with contextlib.suppress(OSError):
                    if os.stat(self.layout.socket).st_ino == ino:
                        os.unlink(self.layout.socket)

    def run(self) -> None:
        """Run until SIGTERM/SIGINT. Raises AgentctxError subclasses for start-up refusals."""
        with self.claimed() as sock:
            self.open()
            try:
                anyio.run(self._main, sock)
            finally:
                self.close()

    def open(self, now: float | None = None) -> Hub:
        """Restore state and build the hub (call with the files claimed)."""
        restored = restore(self.config, self.layout, time.time() if now is None else now)
        self.hub = Hub(
            restored.engine,
            boot_id=self.boot_id,
            seq=restored.seq,
            durable_path=self.layout.durable,
            snapshot_path=self.layout.snapshot,
            requests=restored.requests,
        )
        return self.hub

    def close(self) -> None:
        """Final durable save and snapshot, with the event loop idle or gone."""
        if self.hub is None:
            return
        try:
            self.hub.close()
        except StoreError as exc:
            log.error("final save failed: %s", exc)
        log.info("stopped at seq %d", self.hub.seq)

    async def _main(self, sock: socket.socket) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with anyio.create_task_group() as tg:
                await tg.start(self.serve, sock)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        self.notifier.reloading()
                        await self.reload()
                        self.notifier.ready(self._status())
                    else:
                        log.info("%s: stopping", signal.Signals(signum).name)
                        break
                self.notifier.stopping()
                tg.cancel_scope.cancel()

    async def serve(
        self, sock: socket.socket, *, task_status: TaskStatus[Hub] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve on the listening *sock* until cancelled; reports the hub once ready."""
        hub = self.hub or self.open()
        listener = await SocketListener.from_socket(sock)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(hub.run)
            await hub.save()  # the restored state, before anyone relies on it
            await drain(hub, self.layout.spool)  # requests made while we were down, in order
            await hub.tick()  # catch up the rest of the downtime
            await hub.snapshot_writer.flush(hub.seq)
            self.server = Server(hub)
            tg.start_soon(self.server.serve, listener)
            tg.start_soon(self._tick_loop, hub)
            tg.start_soon(watch_spool, hub, self.layout.spool)
            log.info(
                "ready: %d drives, socket %s, snapshot %s",
                len(hub.engine.names),
                self.layout.socket,
                self.layout.snapshot,
            )
            self.notifier.ready(self._status())  # listening, first snapshot on disk
            task_status.started(hub)

    def _status(self) -> str:
        hub = self.hub
        if hub is None:
            return "starting"
        clients = self.server.clients if self.server is not None else 0
        hot = [
            n for n in hub.engine.names if hub.engine.status(n, hub.engine.last_tick) == "triggered"
        ]
        return (
            f"{len(hub.engine.names)} drives ({', '.join(hot) or 'none'} triggered), "
            f"{clients} clients, seq {hub.seq}"
        )

    async def _tick_loop(self, hub: Hub) -> None:
        """Ticks, periodic saves, STATUS= and the watchdog ping, all from this one loop:
        if it hangs, the pings stop and systemd restarts us. It wakes at least every
        half watchdog interval, whatever the tick interval (900 s ticks are fine)."""
        ping_every = self.notifier.watchdog_interval
        now = anyio.current_time()
        next_tick = now + hub.config.sidecar.tick_interval
        next_ping = now
        next_status = now + STATUS_INTERVAL
        while True:
            now = anyio.current_time()
            if ping_every is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + ping_every
            if now >= next_tick:
                await hub.tick()
                interval = hub.config.sidecar.tick_interval
                next_tick += interval
                if next_tick < now:  # we fell behind (suspend, overload): skip, don't burst
                    next_tick = now + interval
                if time.time() - hub.last_save >= hub.config.sidecar.save_interval:
                    try:
                        await hub.save()
                    except StoreError as exc:
                        log.error("periodic durable save failed: %s", exc)
            if now >= next_status:
                self.notifier.status(self._status())
                next_status = now + STATUS_INTERVAL
            wake = min(next_tick, next_status, next_ping if ping_every is not None else next_tick)
            await anyio.sleep(max(0.0, wake - anyio.current_time()))

    async def reload(self) -> None:
        """Re-read the config file; a bad one is refused and the old one kept."""
        hub = self.hub
        assert hub is not None
        if self.config_path is None:
            log.info("SIGHUP: no config file in use; nothing to reload")
            return
        try:
            config = await anyio.to_thread.run_sync(
                lambda: load_config(self.config_path, required=False)
            )
        except ConfigError as exc:
            log.error("SIGHUP: new config refused, keeping the old one: %s", exc)
            return
        await hub.reload(config)
        log.info("SIGHUP: config reloaded from %s (%d drives)", config.source, len(config.drives))
