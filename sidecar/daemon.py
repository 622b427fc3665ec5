"""The daemon's life: claim its files, restore, serve, tick, reload, stop cleanly.

Tasks (one task group): the start-up and then the server, the tick loop, the
spool watcher and the claim keeper; the main task handles signals from the first
moment, so SIGTERM during a long start-up (a big spool to drain) stops at once.
What follows a stop runs with the loop idle: a final durable save, the last
snapshot, the socket removed (the snapshot stays: clients read it exactly when
the daemon is down).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import SocketListener, TaskGroup, TaskStatus

from agentctx._core.config import DEFAULT_SOURCE, Config, load_config
from agentctx._core.errors import AgentctxError, ConfigError, StoreError
from agentctx._core.layout import Layout
from sidecar.actions import Actions
from sidecar.claim import Claim
from sidecar.clock import kernel_boot_id
from sidecar.drain import drain, watch_spool
from sidecar.engine import STEP_TOLERANCE_S
from sidecar.hub import Hub
from sidecar.nats_config import NatsSettings
from sidecar.notify import Notifier
from sidecar.restore import restore
from sidecar.server import Server

__all__ = ["CLAIM_CHECK_INTERVAL", "Daemon"]

log = logging.getLogger(__name__)

STATUS_INTERVAL: Final = 5.0  # seconds between STATUS= updates to systemd
CLAIM_CHECK_INTERVAL: Final = 2.0  # how soon a vanished runtime dir is put back
CLOCK_CHECK_INTERVAL: Final = 2.0  # how soon a wall-clock step is ticked, whatever the tick


def _first_error(group: BaseExceptionGroup[BaseException]) -> AgentctxError | None:
    """The first of our errors inside a (nested) exception group, if any."""
    for exc in group.exceptions:
        if isinstance(exc, AgentctxError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (inner := _first_error(exc)) is not None:
            return inner
    return None


class Daemon:
    def __init__(
        self,
        config: Config,
        layout: Layout,
        config_path: Path | None = None,
        *,
        nats: NatsSettings | None = None,
        agent: str | None = None,
    ) -> None:
        self.config = config
        self.layout = layout
        # Shared over NATS as *agent* when set (docs/multi-host.md); None: local only.
        self.nats = nats
        self.agent = agent
        # The file the config came from: SIGHUP reloads it (None: built-in drives only).
        self.config_path = config_path
        self.boot_id = uuid.uuid4().hex
        self.hub: Hub | None = None
        self.server: Server | None = None
        self.claim: Claim | None = None
        self.notifier = Notifier()
        self.started = anyio.Event()

    @contextlib.contextmanager
    def claimed(self) -> Iterator[socket.socket]:
        """Private dirs, the locks, then the socket: held for the daemon's life."""
        if not os.environ.get("AGENTCTX_RUNTIME_DIR") and not os.environ.get("XDG_RUNTIME_DIR"):
            log.warning(
                "XDG_RUNTIME_DIR is not set; using the private fallback %s", self.layout.runtime
            )
        claim = Claim(self.layout)
        with claim as sock:
            self.claim = claim
            try:
                yield sock
            finally:
                self.claim = None

    def run(self) -> None:
        """Run until SIGTERM/SIGINT. Start-up refusals and failures raise one of our
        errors (one line each), never a group of them."""
        with self.claimed() as sock:
            self.open()
            try:
                anyio.run(self._main, sock)
            except BaseExceptionGroup as group:
                first = _first_error(group)
                if first is None:
                    raise
                raise first from None
            finally:
                self.close()

    def open(self, now: float | None = None) -> Hub:
        """Restore state and build the hub (call with the files claimed)."""
        boot = kernel_boot_id()
        restored = restore(self.config, self.layout, time.time() if now is None else now, boot)
        self.hub = Hub(
            restored.engine,
            boot_id=self.boot_id,
            seq=restored.seq,
            durable_path=self.layout.durable,
            snapshot_path=self.layout.snapshot,
            requests=restored.requests,
            steps=restored.steps,
            kernel_boot=boot,
            history_dir=self.layout.state,
        )
        if self.nats is not None:  # states name the host that computed them
            self.hub.origin = os.uname().nodename
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
                tg.start_soon(self.serve, sock)  # not awaited: signals count from now on
                tg.start_soon(self._settle)
                async for signum in signals:
                    if signum != signal.SIGHUP:
                        log.info("%s: stopping", signal.Signals(signum).name)
                        break
                    if not self.started.is_set():
                        log.warning("SIGHUP during start-up: ignored (send it again once ready)")
                        continue
                    self.notifier.reloading()
                    await self.reload()
                    self.notifier.ready(self._status())
                self.notifier.stopping()
                tg.cancel_scope.cancel()

    async def _settle(self) -> None:
        """Once serving, put the start-up heap (modules, config, the restored state:
        alive as long as the daemon) out of the cyclic collector's reach. A full
        collection otherwise walks all of it, ~3 ms, and now and then inside a push."""
        await self.started.wait()
        gc.freeze()

    async def serve(
        self, sock: socket.socket, *, task_status: TaskStatus[Hub] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve on the listening *sock* until cancelled; reports the hub once ready."""
        hub = self.hub or self.open()
        listener = await SocketListener.from_socket(sock)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(hub.run)
            tg.start_soon(Actions(hub, self.layout.actions).run)  # before the first trigger
            try:
                await hub.save()  # the restored state, before anyone relies on it
            except StoreError as exc:
                log.error(
                    "serving WITHOUT durability until the state dir is writable again "
                    "(requests are answered not_durable): %s",
                    exc,
                )
            await drain(hub, self.layout.spool)  # requests made while we were down, in order
            await hub.tick()  # catch up the rest of the downtime
            await hub.snapshot_writer.flush(hub.seq)  # StoreError: cannot serve, say why
            self.server = Server(hub)
            tg.start_soon(self.server.serve, listener)
            tg.start_soon(self._tick_loop, hub)
            tg.start_soon(watch_spool, hub, self.layout.spool)
            if self.nats is not None:  # after the server: NATS never delays a start
                from sidecar.nats_link import HomeLink  # nats-py: an optional dependency

                tg.start_soon(HomeLink(hub, self.nats, self.agent).run)
            if self.claim is not None:
                tg.start_soon(self._keep_claim, hub, tg)
            log.info(
                "ready: %d drives, socket %s, snapshot %s",
                len(hub.engine.names),
                self.layout.socket,
                self.layout.snapshot,
            )
            self.notifier.ready(self._status())  # listening, first snapshot on disk
            self.started.set()
            task_status.started(hub)

    def _status(self) -> str:
        hub = self.hub
        if hub is None:
            return "starting"
        clients = self.server.clients if self.server is not None else 0
        hot = [
            n for n in hub.engine.names if hub.engine.status(n, hub.engine.last_tick) == "triggered"
        ]
        durable = "" if hub.durable_writer.healthy else ", NOT DURABLE (state dir failing)"
        return (
            f"{len(hub.engine.names)} drives ({', '.join(hot) or 'none'} triggered), "
            f"{clients} clients, seq {hub.seq}{durable}"
        )

    async def _tick_loop(self, hub: Hub) -> None:
        """Ticks, periodic saves, STATUS= and the watchdog ping, all from this one loop:
        if it hangs, the pings stop and systemd restarts us. It wakes at least every
        half watchdog interval, whatever the tick interval (900 s ticks are fine), and
        ticks at once when the wall clock was stepped (the tick is timed on the
        monotonic clock, so nothing else would notice before the next tick)."""
        ping_every = self.notifier.watchdog_interval
        now = anyio.current_time()
        next_tick = now + hub.config.sidecar.tick_interval
        next_ping = now
        next_status = now + STATUS_INTERVAL
        wall_offset = time.time() - now
        while True:
            now = anyio.current_time()
            if abs(time.time() - now - wall_offset) > STEP_TOLERANCE_S:
                wall_offset = time.time() - now
                next_tick = now
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
                    with contextlib.suppress(StoreError):  # the writer has said why, once
                        await hub.save()
            if now >= next_status:
                self.notifier.status(self._status())
                next_status = now + STATUS_INTERVAL
            wake = min(next_tick, next_status, now + CLOCK_CHECK_INTERVAL)
            if ping_every is not None:
                wake = min(wake, next_ping)
            await anyio.sleep(max(0.0, wake - anyio.current_time()))

    async def _keep_claim(self, hub: Hub, tg: TaskGroup) -> None:
        """Notice the runtime dir, lock or socket vanishing, and put them back.
        Raises (stopping the daemon) when they cannot be: someone else took them."""
        claim = self.claim
        assert claim is not None and self.server is not None
        while True:
            await anyio.sleep(CLAIM_CHECK_INTERVAL)
            lost = await anyio.to_thread.run_sync(claim.lost)
            if not lost:
                continue
            log.warning(
                "%s vanished under the running daemon; putting them back",
                ", ".join(str(p) for p in lost),
            )
            sock = await anyio.to_thread.run_sync(claim.reclaim)
            if sock is not None:
                tg.start_soon(self.server.serve, await SocketListener.from_socket(sock))
            await hub.tick()  # and the snapshot, now rather than at the next tick

    async def reload(self) -> None:
        """Re-read the config file. A bad, unreadable or missing one is refused and the
        old config kept; drives it removes are named, and kept aside (see Engine)."""
        hub = self.hub
        assert hub is not None
        path = self.config_path
        if path is None:
            log.info("SIGHUP: no config file in use; nothing to reload")
            return
        on_defaults = hub.config.source == DEFAULT_SOURCE

        def load() -> Config | None:
            if on_defaults and not path.exists():
                return None
            return load_config(path, required=True)

        try:
            config = await anyio.to_thread.run_sync(load)
        except ConfigError as exc:
            log.error("SIGHUP: new config refused, keeping the old one: %s", exc)
            return
        if config is None:
            log.info("SIGHUP: still no config file at %s; the built-in drives stay", path)
            return
        before = set(hub.engine.names)
        await hub.reload(config)
        log.info("SIGHUP: config reloaded from %s (%d drives)", config.source, len(config.drives))
        if removed := sorted(before - set(config.drives)):
            log.warning(
                "SIGHUP: drive(s) %s removed; their pressure is kept in case they come back",
                ", ".join(removed),
            )
        if added := sorted(set(config.drives) - before):
            log.info("SIGHUP: drive(s) %s added", ", ".join(added))
