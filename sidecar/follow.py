"""`agentctx-sidecar follow URL --agent NAME`: serve an agent whose home is elsewhere.

A follower has no engine and no durable state of its own: it watches the agent's
key in the KV bucket `agentctx` (an ordered consumer with a 1 s heartbeat, which
recovers from a lost server in about 2 s where kv.watch() takes 10-20 s) and
re-serves each state on the local socket and snapshot with the daemon's own
server, sessions and snapshot writer (`FollowerHub`). Requests are forwarded to
the home (`Forwarder`); requests clients spooled while it was cut off are drained
from the local spool dir once NATS is back, exactly once (their request_ids).

It holds the same claim as a daemon (the runtime and state dirs: one sidecar per
agent per host), speaks sd_notify the same way, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import socket
import uuid
from typing import Final

import anyio
from anyio.abc import SocketListener
from nats.aio.msg import Msg

from agentctx._core.errors import StoreError
from agentctx._core.files import clean_orphans
from agentctx._core.layout import Layout
from sidecar.claim import Claim
from sidecar.drain import watch_spool
from sidecar.follower import KEEPALIVE, FollowerHub
from sidecar.forward import Forwarder, is_delete, watch
from sidecar.nats_config import NatsSettings
from sidecar.nats_conn import (
    STATE_BUCKET,
    NatsLink,
    agent_key,
    events_subject,
    retry,
    unsubscribe,
)
from sidecar.notify import Notifier
from sidecar.server import Server
from sidecar.store import load_snapshot

__all__ = ["Follower"]

log = logging.getLogger(__name__)

STATUS_EVERY: Final = 5  # keep-alive rounds between two STATUS= updates to systemd


class Follower:
    def __init__(self, settings: NatsSettings, layout: Layout, agent: str | None) -> None:
        self.layout = layout
        self.key = agent_key(agent)
        self.link = NatsLink(settings, name=f"agentctx-follower {self.key}")
        self.forwarder = Forwarder(self.link, self.key)
        self.hub = FollowerHub(
            boot_id=uuid.uuid4().hex,
            snapshot_path=layout.snapshot,
            forward=self.forwarder.forward,
            connected=lambda: self.link.connected,
            reconnected=self._reconnected,
        )
        self.server: Server | None = None
        self.notifier = Notifier()

    def run(self) -> None:
        """Until SIGTERM/SIGINT; AgentctxError when the dirs are not ours to take."""
        with Claim(self.layout) as sock:
            self._restore()
            try:
                anyio.run(self._main, sock)
            finally:
                self.hub.snapshot_writer.write_now()
                log.info("stopped at seq %d", self.hub.seq)

    def _restore(self) -> None:
        clean_orphans(self.layout.snapshot)
        try:
            snapshot = load_snapshot(self.layout.snapshot)
        except StoreError as exc:
            log.warning("last snapshot unusable: %s", exc)
            return
        if snapshot is not None:
            self.hub.restore(snapshot)
            log.info("serving the last state seen (seq %d, stale) until NATS answers", snapshot.seq)

    async def _main(self, sock: socket.socket) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.serve, sock)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        log.info("SIGHUP: nothing to reload (a follower has no config)")
                        continue
                    log.info("%s: stopping", signal.Signals(signum).name)
                    break
                self.notifier.stopping()
                tg.cancel_scope.cancel()

    async def serve(self, sock: socket.socket) -> None:
        listener = await SocketListener.from_socket(sock)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(self.link.run)
            tg.start_soon(self.hub.snapshot_writer.run)
            tg.start_soon(self.forwarder.run)
            tg.start_soon(self._follow_states)
            tg.start_soon(self._follow_events)
            tg.start_soon(self._keep_fresh)
            # Up, if not yet serving: a client that connects meanwhile waits in the
            # backlog, then falls back to the (absent) snapshot: "no state yet".
            self.notifier.ready(self._status())
            await self.hub.has_state.wait()
            self.server = Server(self.hub)
            tg.start_soon(self.server.serve, listener)
            tg.start_soon(watch_spool, self.hub, self.layout.spool)
            log.info("ready: agent %r from NATS, socket %s", self.key, self.layout.socket)

    async def _reconnected(self) -> None:
        await self.link.changed()
        await self.link.wait_connected()
        await self.forwarder.watching.wait()

    async def _follow_states(self) -> None:
        await self.link.ready.wait()

        async def on_state(msg: Msg) -> None:
            if not is_delete(msg):
                self.hub.offer(msg.data)

        sub = await watch(self.link, STATE_BUCKET, self.key, on_state, last=True)
        try:
            await anyio.sleep_forever()
        finally:
            await unsubscribe(sub)

    async def _follow_events(self) -> None:
        await self.link.ready.wait()
        nc = self.link.nc

        async def on_event(msg: Msg) -> None:
            self.hub.event(msg.data)

        # a core subscription: nats-py makes it again after a reconnect by itself
        await retry("NATS events", lambda: nc.subscribe(events_subject(self.key), cb=on_event))

    async def _keep_fresh(self) -> None:
        """Stale marks, keep-alives, and systemd's watchdog and STATUS=, from one loop."""
        rounds = 0
        while True:
            self.hub.check()
            self.notifier.watchdog()
            rounds += 1
            if rounds % STATUS_EVERY == 0:
                self.notifier.status(self._status())
            await anyio.sleep(KEEPALIVE)

    def _status(self) -> str:
        clients = self.server.clients if self.server is not None else 0
        state = self.hub.current
        if state is None:
            return f"following {self.key}: no state yet, {clients} clients"
        freshness = "STALE (cut off from the home)" if state.stale else "live"
        return f"following {self.key}: seq {state.seq} {freshness}, {clients} clients"
