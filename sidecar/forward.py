"""A follower's requests, forwarded to the agent's home sidecar over JetStream.

`forward()` publishes the request to the agent's request stream with its
request_id as `Nats-Msg-Id`, then waits for the home's receipt in the KV bucket
`agentctx-receipts`. Receipts, not replies: a reply is lost if this follower is
disconnected when it comes, and the retry is then dropped as a duplicate, so the
outcome would never be known; a receipt stays (RECEIPT_TTL), reports refusals too
(which no state shows), and lets a retry find the outcome without publishing.

One long-lived watch on `NAME.>` feeds every waiting request: a watch per request
would leave a consumer behind each time (they outlive unsubscribe by their
inactive threshold), and the server caps a stream at 1000 consumers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, NoStreamResponseError
from nats.js.kv import KeyValue

from agentctx._core.errors import E_UNAVAILABLE, RequestFailed
from agentctx._core.protocol import Spooled, encode
from sidecar.nats_conn import (
    NATS_ERRORS,
    RECEIPT_BUCKET,
    NatsLink,
    Receipt,
    msg_id,
    receipt_key,
    requests_stream,
    requests_subject,
    retry,
    unsubscribe,
)

__all__ = ["FORWARD_TIMEOUT", "HEARTBEAT", "Forwarder", "is_delete", "watch"]

log = logging.getLogger(__name__)

FORWARD_TIMEOUT: Final = 10.0  # publish + receipt; past it the client spools and retries
PUBLISH_TIMEOUT: Final = 2.0
PUBLISH_RETRY: Final = 0.25  # an election refuses publishes for a few seconds
# A watch's consumer, lost with a server, is recreated after 2 missed heartbeats:
# nats-py's kv.watch() uses 5 s (10-20 s to recover); 1 s recovers in about 2 s.
HEARTBEAT: Final = 1.0
INACTIVE_THRESHOLD: Final = 60.0  # a dead follower's consumers go away after this

_decode_receipt = msgspec.json.Decoder(Receipt).decode
Callback = Callable[[Msg], Awaitable[None]]


async def watch(
    link: NatsLink, bucket: str, subject_key: str, cb: Callback, *, last: bool
) -> Subscription:
    """An ordered push consumer on `$KV.bucket.subject_key` (kv.watch() with a 1 s
    heartbeat): the newest value of each key first (*last*), or only new ones."""
    js = link.js
    return await retry(
        f"NATS watch {bucket}/{subject_key}",
        lambda: js.subscribe(
            f"$KV.{bucket}.{subject_key}",
            stream=f"KV_{bucket}",
            cb=cb,
            ordered_consumer=True,
            idle_heartbeat=HEARTBEAT,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if last else DeliverPolicy.NEW,
            inactive_threshold=INACTIVE_THRESHOLD,
        ),
    )


def is_delete(msg: Msg) -> bool:
    return bool(msg.header and msg.header.get("KV-Operation") in ("DEL", "PURGE"))


class _Waiter:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.receipt: Receipt | None = None


class Forwarder:
    def __init__(self, link: NatsLink, key: str) -> None:
        self.link = link
        self.key = key
        self.watching = anyio.Event()
        self._receipts: KeyValue | None = None
        self._waiting: dict[str, _Waiter] = {}

    async def run(self) -> None:
        """The receipts watch, for the follower's life."""
        await self.link.ready.wait()
        js = self.link.js
        self._receipts = await retry("NATS receipts bucket", lambda: js.key_value(RECEIPT_BUCKET))
        sub = await watch(self.link, RECEIPT_BUCKET, f"{self.key}.>", self._on_receipt, last=False)
        self.watching.set()
        try:
            await anyio.sleep_forever()
        finally:
            await unsubscribe(sub)

    async def _on_receipt(self, msg: Msg) -> None:
        if is_delete(msg):
            return
        try:
            receipt = _decode_receipt(msg.data)
        except msgspec.DecodeError as exc:
            log.error("NATS: not a receipt, ignored: %s", exc)
            return
        waiter = self._waiting.get(receipt.request_id)
        if waiter is not None:
            waiter.receipt = receipt
            waiter.done.set()

    async def forward(self, item: Spooled) -> int:
        """The home's seq for the request, once applied and durable there.
        RequestFailed: its refusal (unknown_drive, ...), or E_UNAVAILABLE."""
        if not self.link.connected or not self.watching.is_set():
            raise RequestFailed(E_UNAVAILABLE, "cut off from NATS: the home cannot be reached")
        rid = item.request.request_id
        waiter = self._waiting.get(rid)
        mine = waiter is None  # a second forward of the same request shares the first's
        if waiter is None:
            waiter = self._waiting[rid] = _Waiter()
        try:
            with anyio.fail_after(FORWARD_TIMEOUT):
                receipt = await self._outcome(item, waiter)
        except TimeoutError:
            raise RequestFailed(
                E_UNAVAILABLE,
                f"no answer from the home sidecar within {FORWARD_TIMEOUT:g}s "
                "(retry with the same request_id: it is applied once)",
            ) from None
        finally:
            if mine:
                self._waiting.pop(rid, None)
        if receipt.error is not None:
            raise RequestFailed(receipt.error, receipt.message)
        assert receipt.seq is not None
        return receipt.seq

    async def _outcome(self, item: Spooled, waiter: _Waiter) -> Receipt:
        rid = item.request.request_id
        assert self._receipts is not None
        try:  # applied before? (a retry after a timeout, a restart, a spooled copy)
            entry = await self._receipts.get(receipt_key(self.key, rid))
            if entry.value:
                return _decode_receipt(entry.value)
        except KeyNotFoundError:
            pass
        except (*NATS_ERRORS, msgspec.DecodeError) as exc:
            log.debug("NATS: receipt lookup failed (%s); publishing", exc)
        body = encode(item)
        while True:  # an in-window repeat is dropped by JetStream, a later one by the home
            try:
                await self.link.js.publish(
                    requests_subject(self.key),
                    body,
                    timeout=PUBLISH_TIMEOUT,
                    stream=requests_stream(self.key),
                    headers={"Nats-Msg-Id": msg_id(rid)},
                )
                break
            except NoStreamResponseError:
                raise RequestFailed(
                    E_UNAVAILABLE, f"no home sidecar has shared agent {self.key!r} on NATS"
                ) from None
            except NATS_ERRORS as exc:
                log.debug("NATS: forwarding %s failed (%s); again", rid, exc)
                await anyio.sleep(PUBLISH_RETRY)
        await waiter.done.wait()  # durable in JetStream now: the home applies it in the end
        assert waiter.receipt is not None
        return waiter.receipt
