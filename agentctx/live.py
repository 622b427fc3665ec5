"""`agentctx.Live`: the live subscription in a background thread, for sync code.

    with agentctx.Live() as live:
        while running:
            state = live.wait(timeout=30)    # returns at the next change (or timeout)
            prompt_context = render_markdown(live.state)

The thread runs its own event loop (an anyio blocking portal) with a
`subscribe()` inside. `.state` is always the newest state, `.mode` is "live" or
"fallback", `.events` keeps the most recent events. Closing cancels the
subscription at once and joins the thread.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final

from anyio.from_thread import BlockingPortal, start_blocking_portal

from agentctx.state import DriveEvent, DriveState, Transition
from agentctx.subscription import Subscription

__all__ = ["EVENTS_KEPT", "FIRST_STATE_WAIT", "Live"]

EVENTS_KEPT: Final = 256
# How long entering the block waits for the first state: the socket answers in
# milliseconds, the snapshot file too; without this the first turns of an agent
# loop would see no state at all.
FIRST_STATE_WAIT: Final = 1.0


class Live:
    def __init__(
        self,
        *,
        backend: str = "asyncio",
        first_state_wait: float = FIRST_STATE_WAIT,
        **subscribe_kwargs: Any,
    ) -> None:
        self.first_state_wait = first_state_wait
        self._kwargs = subscribe_kwargs
        self._backend = backend
        self._cond = threading.Condition()
        self._version = 0
        self._state: DriveState | None = None
        self._mode = "starting"
        self.events: deque[DriveEvent] = deque(maxlen=EVENTS_KEPT)
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._future: Future[None] | None = None

    @property
    def state(self) -> DriveState | None:
        """The newest state received (None until the first one)."""
        with self._cond:
            return self._state

    @property
    def mode(self) -> str:
        """ "starting", "live" (socket) or "fallback" (following the snapshot file)."""
        with self._cond:
            return self._mode

    def start(self) -> Live:
        """Start following; return once the first state is in (or after
        `first_state_wait` seconds without one: no sidecar and no snapshot)."""
        if self._portal_cm is not None:
            return self
        self._portal_cm = start_blocking_portal(self._backend)
        portal = self._portal_cm.__enter__()
        self._future = portal.start_task_soon(self._run)
        with self._cond:
            self._cond.wait_for(lambda: self._state is not None, self.first_state_wait)
        return self

    def close(self) -> None:
        if self._portal_cm is None:
            return
        if self._future is not None:
            self._future.cancel()
        self._portal_cm.__exit__(None, None, None)
        self._portal_cm = None
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def __enter__(self) -> Live:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def wait(self, timeout: float | None = None) -> DriveState | None:
        """Block until something changes (a state, an event, a live/fallback switch)
        or *timeout* passes; return the newest state either way."""
        with self._cond:
            seen = self._version
            self._cond.wait_for(lambda: self._version != seen, timeout)
            return self._state

    async def _run(self) -> None:
        async with Subscription(**self._kwargs) as updates:
            async for update in updates:
                with self._cond:
                    if isinstance(update, DriveState):
                        self._state = update
                    elif isinstance(update, DriveEvent):
                        self.events.append(update)
                    elif isinstance(update, Transition):
                        self._mode = update.mode
                    self._version += 1
                    self._cond.notify_all()
