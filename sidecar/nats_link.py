"""The home sidecar's side of NATS: its states out, requests from followers in.

`HomeLink.run()` runs beside the hub (in the daemon's task group) and does three
things, none of which the hub ever waits for:

- **Mirror**: a hub subscriber whose `push()` only keeps the newest state frame;
  one task puts it into KV `agentctx`/NAME. Older states never pending are simply
  skipped, so after an outage the newest goes first. Nothing is put while the
  connection is down: nats-py would buffer it and flush it late, and the hub's
  path must never wait on NATS (docs/multi-host.md).
- **Events** follow each put on `agentctx.NAME.events` (core NATS: live only,
  dropped while disconnected; the state is the truth).
- **Requests** are pulled from the agent's stream: each is submitted to the hub
  (its request_id makes a repeat harmless), and once durable here its receipt is
  written to KV `agentctx-receipts` and only then is the message acked. A crash in
  between redelivers it after ACK_WAIT, and the request memory answers the repeat.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from agentctx._core.errors import E_NOT_DURABLE, ProtocolError, RequestFailed
from agentctx._core.protocol import decode_spooled, encode_message
from sidecar.hub import Hub
from sidecar.nats_config import NatsSettings
from sidecar.nats_conn import (
    HOME_CONSUMER,
    NATS_ERRORS,
    RECEIPT_BUCKET,
    RECEIPT_TTL,
    RETRY_DELAY,
    STATE_BUCKET,
    NatsLink,
    Receipt,
    agent_key,
    ensure_bucket,
    ensure_requests,
    events_subject,
    receipt_key,
    requests_stream,
    requests_subject,
    retry,
)

__all__ = ["HomeLink"]

log = logging.getLogger(__name__)

PUT_TIMEOUT: Final = 2.0  # one state put; then the newest is tried again
MAX_EVENTS_PENDING: Final = 1024  # events held between two puts (a burst); older ones dropped
FETCH_BATCH: Final = 64
# Short: a pull request parked on a server that dies is lost silently, and fetch only
# returns at its timeout (an idle poll a second costs nothing).
FETCH_TIMEOUT: Final = 1.0
NAK_DELAY: Final = 1.0  # a request that could not be made durable: offered again after this
FRAME_HEADER: Final = 4  # hub frames carry the 4-byte length; NATS messages do not

_encode_receipt = msgspec.json.Encoder().encode


class HomeLink:
    def __init__(self, hub: Hub, settings: NatsSettings, agent: str | None) -> None:
        self.hub = hub
        self.settings = settings
        self.key = agent_key(agent)
        self.link = NatsLink(settings, name=f"agentctx-sidecar {self.key}", on_ready=self._setup)
        self._state: bytes | None = None  # the newest state frame not yet put
        self._events: deque[bytes] = deque(maxlen=MAX_EVENTS_PENDING)
        self._wake = anyio.Event()
        self._kv: KeyValue | None = None
        self._receipts: KeyValue | None = None
        self.puts = 0  # states put so far
        hub.subscribers.add(self)
        self._offer_current()  # a hub that ticks hourly has nothing new to say for a while

    # --- the hub's subscriber: never blocks -----------------------------------------

    def push(self, state: bytes, events: Sequence[bytes] = (), joined: bytes = b"") -> None:
        self._state = state
        self._events.extend(events)
        self._wake.set()

    def _offer_current(self) -> None:
        if self._state is None:
            self.push(encode_message(self.hub.state()))

    # --- tasks ----------------------------------------------------------------------

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.link.run)
            tg.start_soon(self._mirror)
            tg.start_soon(self._consume)

    async def _setup(self, js: JetStreamContext) -> None:
        n = self.settings.replicas
        if n == 2:
            log.warning("NATS: 2 replicas need both servers for every write; 1 or 3 fare better")
        self._kv = await ensure_bucket(js, STATE_BUCKET, n)
        self._receipts = await ensure_bucket(js, RECEIPT_BUCKET, n, ttl=RECEIPT_TTL)
        await ensure_requests(js, self.key, n)
        log.info("NATS: sharing agent %r (bucket %s, %d replica(s))", self.key, STATE_BUCKET, n)

    async def _mirror(self) -> None:
        await self.link.ready.wait()
        kv = self._kv
        assert kv is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._reoffer)
            await self._put_newest(kv)

    async def _reoffer(self) -> None:
        """After every reconnection, the current state again: the server may have lost
        it (a memory store, a bucket made anew) and a quiet hub says nothing new."""
        while True:
            await self.link.changed()
            if self.link.connected:
                self._offer_current()

    async def _put_newest(self, kv: KeyValue) -> None:
        nc = self.link.nc
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._state is not None:
                if not self.link.connected:
                    self._events.clear()  # live only: a late flush would mislead
                    await self.link.wait_connected()
                    continue
                state, self._state = self._state, None
                events = list(self._events)
                self._events.clear()
                try:
                    with anyio.fail_after(PUT_TIMEOUT):
                        await kv.put(self.key, state[FRAME_HEADER:])
                    # after their state, so a follower can show the two together
                    for event in events:
                        await nc.publish(events_subject(self.key), event[FRAME_HEADER:])
                except NATS_ERRORS as exc:
                    log.debug("NATS: state put failed (%s); trying the newest again", exc)
                    if self._state is None:
                        self._state = state
                    await anyio.sleep(RETRY_DELAY)
                    continue
                self.puts += 1

    async def _consume(self) -> None:
        await self.link.ready.wait()
        js = self.link.js
        sub = await retry(
            "NATS request consumer",
            lambda: js.pull_subscribe(
                requests_subject(self.key), durable=HOME_CONSUMER, stream=requests_stream(self.key)
            ),
        )
        while True:
            await self.link.wait_connected()
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT)
            except TimeoutError:  # idle
                continue
            except NATS_ERRORS as exc:  # an election, a restart: try again shortly
                log.debug("NATS: fetch failed: %s", exc)
                await anyio.sleep(RETRY_DELAY)
                continue
            try:
                await self._handle(msgs)
            except Exception:  # a bug of ours: it must not take the sidecar down with it
                log.exception("NATS: handling requests failed (unacked: delivered again)")

    async def _handle(self, msgs: list[Msg]) -> None:
        """Apply a batch in order, one durable save for all, then receipts and acks."""
        outcomes: list[tuple[Msg, Receipt]] = []
        last_seq = None
        for msg in msgs:
            try:
                item = decode_spooled(msg.data)
            except ProtocolError as exc:
                log.error("NATS: dropping a request that is not one: %s", exc)
                await self._settle(msg.term)  # never delivered again
                continue
            rid = item.request.request_id
            try:
                seq = await self.hub.submit(item.request, at=item.made_at)
            except RequestFailed as exc:
                outcomes.append((msg, Receipt(request_id=rid, error=exc.code, message=exc.message)))
                continue
            last_seq = seq
            outcomes.append((msg, Receipt(request_id=rid, seq=seq)))
        if last_seq is not None:
            try:
                await self.hub.wait_durable(last_seq)
            except RequestFailed as exc:
                assert exc.code == E_NOT_DURABLE
                # applied, not saved: offered again later, and answered from memory then
                for msg, receipt in outcomes:
                    if receipt.seq is not None:
                        await self._settle(functools.partial(msg.nak, delay=NAK_DELAY))
                outcomes = [(m, r) for m, r in outcomes if r.seq is None]
        async with anyio.create_task_group() as tg:
            for msg, receipt in outcomes:
                tg.start_soon(self._answer, msg, receipt)

    async def _answer(self, msg: Msg, receipt: Receipt) -> None:
        kv = self._receipts
        assert kv is not None
        try:
            await kv.put(receipt_key(self.key, receipt.request_id), _encode_receipt(receipt))
            await msg.ack()  # only after the receipt: acked first, a lost receipt stays lost
        except NATS_ERRORS as exc:  # not acked: delivered again, answered from memory
            log.debug("NATS: receipt for %s not written: %s", receipt.request_id, exc)

    @staticmethod
    async def _settle(action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except NATS_ERRORS as exc:
            log.debug("NATS: could not settle a request message: %s", exc)
