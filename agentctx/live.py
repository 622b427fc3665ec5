"""`agentctx.Live`: the live subscription in a background thread, for sync code.

    with agentctx.Live() as live:
        while running:
            state = live.wait(timeout=30)    # returns at the next change (or timeout)
            prompt_context = render_markdown(live.state)

The thread iterates `agentctx.follow()` (blocking reads, no event loop). `.state`
is always the newest state, `.mode` is "live" or "fallback", `.events` keeps the
most recent events. Closing stops the follower at once (it wakes the thread's
blocked read) and joins the thread.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType
from typing import Any, Final

from agentctx.feed import CONNECT_TIMEOUT
from agentctx.follower import Follower
from agentctx.state import DriveEvent, DriveState, Transition

__all__ = ["EVENTS_KEPT", "FIRST_STATE_WAIT", "Live"]

EVENTS_KEPT: Final = 256
# How long entering the block waits for the first state: the socket answers in
# milliseconds, the snapshot file too; without this the first turns of an agent
# loop would see no state at all. Longer than a connect attempt may take (a socket
# that accepts but stays silent: a hung daemon, socket activation still starting),
# so the follower has fallen back and read the snapshot by then.
FIRST_STATE_WAIT: Final = CONNECT_TIMEOUT + 0.5


class Live:
    def __init__(
        self,
        *,
        backend: str = "asyncio",
        first_state_wait: float = FIRST_STATE_WAIT,
        **follow_kwargs: Any,
    ) -> None:
        """*follow_kwargs* are those of `agentctx.follow()` (and `subscribe()`);
        *backend* is accepted for compatibility: no event loop runs any more."""
        del backend
        self.first_state_wait = first_state_wait
        self._kwargs = follow_kwargs
        self._cond = threading.Condition()
        self._version = 0
        self._state: DriveState | None = None
        self._mode = "starting"
        self.events: deque[DriveEvent] = deque(maxlen=EVENTS_KEPT)
        # What ended the thread other than close(): a bug, kept for the caller to see.
        self.error: BaseException | None = None
        self._follower: Follower | None = None
        self._thread: threading.Thread | None = None

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
        if self._thread is not None:
            return self
        self._follower = Follower(**self._kwargs)
        self._thread = threading.Thread(target=self._run, name="agentctx-live", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self._state is not None, self.first_state_wait)
        return self

    def close(self) -> None:
        if self._thread is None or self._follower is None:
            return
        self._follower.close()
        self._thread.join()
        self._thread = None
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

    def _run(self) -> None:
        assert self._follower is not None
        try:
            for update in self._follower:
                with self._cond:
                    if isinstance(update, DriveState):
                        self._state = update
                    elif isinstance(update, DriveEvent):
                        self.events.append(update)
                    elif isinstance(update, Transition):
                        self._mode = update.mode
                    self._version += 1
                    self._cond.notify_all()
        except BaseException as exc:  # not expected: say so to waiters, not to stderr only
            with self._cond:
                self.error = exc
                self._version += 1
                self._cond.notify_all()
            raise
