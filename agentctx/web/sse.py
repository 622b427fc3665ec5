"""Server-Sent Events: the framing, one tab's pending messages, and its response.

Three event types go out (docs/web.md, "GET /events"): `state` (the full state as
`/state` gives it, `id:` its seq), `drive` (a wire `event` object) and `status`
(the connection to the sidecar: live, or down and since when).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "HEARTBEAT",
    "HEARTBEAT_S",
    "OUTLET_EVENTS",
    "RETRY_MS",
    "EventStream",
    "Outlet",
    "message",
]

# A comment every 15 s of silence: proxies and NATs keep the stream open, and a
# half-open TCP connection is found out (the write fails) within that time.
HEARTBEAT_S: Final = 15.0
HEARTBEAT: Final = b": keepalive\n\n"
# The browser's reconnect delay after a dropped stream (Chrome's default is 3 s).
RETRY_MS: Final = 1000
# Events queued for one tab that is not reading; past this the oldest go (and are
# counted in the metrics). States never queue: the newest replaces the last.
OUTLET_EVENTS: Final = 256


def message(event: str, data: Any, id: int | None = None) -> bytes:
    """One SSE message. Compact JSON has no raw line breaks (json escapes them), so
    the data always fits on one `data:` line."""
    head = f"event: {event}\n" + (f"id: {id}\n" if id is not None else "")
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}data: {body}\n\n".encode()


class Outlet:
    """What one tab has yet to be sent. A tab that reads slowly (or not at all) holds
    at most the newest state, the newest status and OUTLET_EVENTS events: a slow
    browser can never make the bridge's memory grow. A tab that said it has seq
    *after* (Last-Event-ID) is never sent that state or an older one."""

    __slots__ = ("_wake", "after", "closed", "dropped", "events", "state", "status")

    def __init__(self, after: int | None = None, max_events: int = OUTLET_EVENTS) -> None:
        self.after = after
        self.state: bytes | None = None
        self.status: bytes | None = None
        self.events: deque[bytes] = deque(maxlen=max_events)
        self.dropped = 0
        self.closed = False
        self._wake = anyio.Event()

    def put_state(self, seq: int, msg: bytes) -> None:
        if self.after is not None and seq <= self.after:
            return
        self.state = msg
        self._wake.set()

    def put_status(self, msg: bytes) -> None:
        self.status = msg
        self._wake.set()

    def put_event(self, msg: bytes) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(msg)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def take(self, idle_s: float) -> bytes | None:
        """Everything pending, as one chunk (state first, then status, then events);
        b"" when nothing came within *idle_s*; None once the outlet is closed."""
        with anyio.move_on_after(idle_s):
            await self._wake.wait()
        if self.closed:
            return None
        chunk = b"".join(
            (self.state or b"", self.status or b"", *self.events),
        )
        self.state = self.status = None
        self.events.clear()
        self._wake = anyio.Event()
        return chunk


class EventStream(Response):
    """The endless answer to `GET /events` for one tab. It owns the outlet's life: the
    `finally` detaches it whether the browser left, the server is stopping, or the
    stream was cancelled (a plain StreamingResponse leaves a cancelled generator's
    cleanup to the garbage collector)."""

    media_type = "text/event-stream"

    def __init__(self, outlet: Outlet, detach: Callable[[Outlet], None]) -> None:
        # Not Response.__init__: it renders an empty body and declares its length.
        self.status_code = 200
        self.background = None
        self.init_headers({"x-accel-buffering": "no"})  # tell any proxy not to buffer
        self.outlet = outlet
        self.detach = detach

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as tg:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(until_disconnect)
                chunk: bytes | None = f"retry: {RETRY_MS}\n\n".encode()
                while chunk is not None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    chunk = await self.outlet.take(HEARTBEAT_S)
                    chunk = HEARTBEAT if chunk == b"" else chunk
                tg.cancel_scope.cancel()  # closed by the server: end the response
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.detach(self.outlet)
