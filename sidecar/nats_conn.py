"""One connection to NATS JetStream for a sidecar's life, and what lives there.

The home sidecar and a follower both hold a `NatsLink`. It connects in the
background (nats-py's `connect()` blocks until a server answers, so nothing of
the daemon ever awaits it), reconnects forever, notices a hung server within a
few seconds (`ping_interval`, default 120 s in nats-py), and then sets up what
the caller needs (`on_ready`). Names and the receipt format live here too, so
both sides agree on them:

    KV bucket `agentctx`           key NAME: the agent's newest state
    KV bucket `agentctx-receipts`  key NAME.<request_id, base64url>: its outcome
    agentctx.NAME.events           the events (core NATS, live only)
    agentctx.NAME.requests         stream `agentctx-NAME-requests`, consumer `home`

The unnamed agent is NAME `default` (a name agentctx._core.paths reserves).
Foreign errors stop here: every NATS failure is logged and retried, or turned
into one of ours (agentctx._core.errors) for the caller.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import anyio
import msgspec
import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from sidecar.nats_config import NatsSettings

__all__ = [
    "NATS_ERRORS",
    "RECEIPT_BUCKET",
    "STATE_BUCKET",
    "UNNAMED_KEY",
    "NatsLink",
    "Receipt",
    "agent_key",
    "ensure_bucket",
    "ensure_requests",
    "events_subject",
    "explain_error",
    "msg_id",
    "receipt_key",
    "requests_stream",
    "requests_subject",
    "retry",
    "unsubscribe",
]

log = logging.getLogger(__name__)

STATE_BUCKET: Final = "agentctx"
RECEIPT_BUCKET: Final = "agentctx-receipts"
UNNAMED_KEY: Final = "default"
RECEIPT_TTL: Final = 24 * 3600.0  # a follower's retry finds its outcome this long
MAX_STATE_BYTES: Final = 1 << 20  # one frame (max_frame_bytes' default)
MAX_REQUEST_BYTES: Final = 64 * 1024
REQUEST_MAX_AGE: Final = 7 * 86400.0  # a request no home took in a week is dropped
DEDUP_WINDOW: Final = 120.0  # JetStream's Nats-Msg-Id memory (the daemon's is the real one)
ACK_WAIT: Final = 5.0  # an unacked request is delivered again after this
MAX_ACK_PENDING: Final = 1024
HOME_CONSUMER: Final = "home"
# Connection: reconnect forever, quickly; a silent server is noticed after about
# (MAX_OUTSTANDING_PINGS + 1) x PING_INTERVAL.
RECONNECT_WAIT: Final = 0.5
CONNECT_TIMEOUT: Final = 2
PING_INTERVAL: Final = 1
MAX_OUTSTANDING_PINGS: Final = 2
PENDING_SIZE: Final = 1 << 20
JS_TIMEOUT: Final = 2.0  # JetStream API calls: short, so retries during elections are quick
RETRY_DELAY: Final = 0.5
RETRY_WARN_AFTER: Final = 10  # failed attempts before a retry loop says so (an election is fewer)
ERROR_LOG_EVERY: Final = 30.0  # nats-py reports every failed reconnect attempt
# What the server says when it refuses us, in nats-py's error text (lower case), and
# what the person reading the log can do about it.
_REFUSALS: Final = (
    (("authorization violation", "authentication"), "the server refused this sidecar's "
     "credentials; check --nats-creds (a user of the account that holds the bucket)"),
    (("permissions violation",), "the server refused a subject to this sidecar's user; it "
     "needs the permissions in docs/multi-host.md (Securing NATS)"),
)  # fmt: skip


def explain_error(exc: BaseException) -> str:
    """An error nats-py reports in the background, as one line for the log: a refusal
    by the server says what to check, anything else is named as it is."""
    text = str(exc)
    for words, advice in _REFUSALS:
        if any(w in text.lower() for w in words):
            return f"{advice} ({text})"
    return f"{type(exc).__name__}: {text}"


# What a NATS call may raise: nats-py's own errors (its TimeoutError is asyncio's too).
NATS_ERRORS: Final = (nats.errors.Error, TimeoutError, OSError)

T = TypeVar("T")


class Receipt(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A forwarded request's outcome, written by the home once it is durable there."""

    request_id: str
    seq: int | None = None
    error: str | None = None  # a wire error code (agentctx._core.errors.E_*)
    message: str = ""


def agent_key(agent: str | None) -> str:
    return agent or UNNAMED_KEY


def events_subject(key: str) -> str:
    return f"agentctx.{key}.events"


def requests_subject(key: str) -> str:
    return f"agentctx.{key}.requests"


def requests_stream(key: str) -> str:
    return f"agentctx-{key}-requests"


def receipt_key(key: str, request_id: str) -> str:
    """KV keys allow [-/_=.A-Za-z0-9]; base64url (unpadded) keeps any request_id."""
    return f"{key}." + base64.urlsafe_b64encode(request_id.encode()).decode().rstrip("=")


def msg_id(request_id: str) -> str:
    """The Nats-Msg-Id header: the request_id itself when it is header-safe."""
    if request_id.isascii() and request_id.isprintable():
        return request_id
    return "sha256:" + hashlib.sha256(request_id.encode()).hexdigest()


async def retry(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """*call* until it succeeds: JetStream refuses for a few seconds during a leader
    election and right after a restart (503, timeouts). Said once, not per attempt."""
    failures = 0
    while True:
        try:
            return await call()
        except NATS_ERRORS as exc:
            failures += 1
            level = logging.WARNING if failures == RETRY_WARN_AFTER else logging.DEBUG
            log.log(level, "%s: %s: %s (retrying)", what, type(exc).__name__, exc)
        await anyio.sleep(RETRY_DELAY)


async def unsubscribe(sub: Subscription) -> None:
    """End a subscription at shutdown: before the connection closes (else nats-py's
    heartbeat task logs tracebacks), shielded, bounded, and quietly if it already is."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(JS_TIMEOUT):
        try:
            await sub.unsubscribe()
        except NATS_ERRORS as exc:
            log.debug("NATS: unsubscribe: %s", exc)


async def ensure_bucket(
    js: JetStreamContext, bucket: str, replicas: int, ttl: float | None = None
) -> KeyValue:
    """Bind the bucket, or create it. It is shared by every agent: whoever creates it
    chooses its replicas, and a later sidecar asking for others uses it as it is."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            bucket=bucket,
            history=1,
            ttl=ttl,
            storage=StorageType.FILE,  # memory is barely faster and lost with the server
            replicas=replicas,
            direct=True,  # any replica answers a get
            max_value_size=MAX_STATE_BYTES,
        )
    except BadRequestError as exc:  # raced another creator, with another config
        log.warning("NATS bucket %s exists with another config (%s)", bucket, exc.description)
        return await js.key_value(bucket)


async def ensure_requests(js: JetStreamContext, key: str, replicas: int) -> None:
    """The agent's request stream and its home's consumer (the home owns both)."""
    config = StreamConfig(
        name=requests_stream(key),
        subjects=[requests_subject(key)],
        # acked requests are deleted, and a recreated consumer cannot replay old ones
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DEDUP_WINDOW,
        max_age=REQUEST_MAX_AGE,
        max_msg_size=MAX_REQUEST_BYTES,
        discard=DiscardPolicy.OLD,
    )
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != 10058:  # "already in use with a different configuration"
            raise
        await js.update_stream(config)
    await js.add_consumer(  # the same durable again updates it in place
        requests_stream(key),
        ConsumerConfig(
            durable_name=HOME_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_deliver=-1,  # the home must apply every request in the end
            max_ack_pending=MAX_ACK_PENDING,
            filter_subject=requests_subject(key),
        ),
    )


class NatsLink:
    """`run()` for the sidecar's life (in its task group); the rest never blocks on it."""

    def __init__(
        self,
        settings: NatsSettings,
        *,
        name: str,
        on_ready: Callable[[JetStreamContext], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.on_ready = on_ready
        self.nc = Client()
        self._js: JetStreamContext | None = None
        self.ready = anyio.Event()  # connected once, and set up
        self._change = anyio.Event()  # replaced at every (dis)connection
        self._last_error_log = -ERROR_LOG_EVERY
        self._closing = False

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "use after `ready`"
        return self._js

    @property
    def connected(self) -> bool:
        return self.ready.is_set() and self.nc.is_connected

    async def wait_connected(self) -> None:
        while not self.connected:
            await self._change.wait()

    async def changed(self) -> None:
        """Return at the next connection or disconnection."""
        await self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = anyio.Event()

    async def _on_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_EVERY:
            self._last_error_log = now
            log.warning("NATS: %s", explain_error(exc))

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS: disconnected; reconnecting in the background")
        self._changed()

    async def _on_reconnected(self) -> None:
        log.info("NATS: reconnected to %s", self._server())
        self._changed()

    def _server(self) -> str:
        url = self.nc.connected_url
        return url.netloc if url is not None else "?"

    def _options(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            "servers": list(s.urls),
            "name": self.name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # forever (0 would too, in the first connect)
            "reconnect_time_wait": RECONNECT_WAIT,
            "connect_timeout": CONNECT_TIMEOUT,
            "ping_interval": PING_INTERVAL,
            "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
            "pending_size": PENDING_SIZE,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        if s.creds is not None:
            options["user_credentials"] = s.creds
        if (ctx := s.ssl_context()) is not None:
            options["tls"] = ctx
        return options

    async def run(self) -> None:
        try:
            try:
                await self.nc.connect(**self._options())  # returns once a server answers
            except Exception as exc:  # whatever nats-py raises, the sidecar lives on
                # nats-py raises foreign things here (TypeError for a malformed creds file,
                # ImportError without nkeys): NATS must never stop the sidecar, so it goes
                # on without it, and says so.
                log.error("NATS: giving up, running without it: %s: %s", type(exc).__name__, exc)
                await anyio.sleep_forever()
            log.info("NATS: connected to %s", self._server())
            self._js = self.nc.jetstream(timeout=JS_TIMEOUT)
            if (setup := self.on_ready) is not None:
                js = self.js
                await retry("NATS set-up", lambda: setup(js))
            self.ready.set()
            self._changed()
            await anyio.sleep_forever()
        finally:
            self._closing = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(JS_TIMEOUT):
                if not self.nc.is_closed:
                    await self.nc.close()
