"""The bridge: one `agentctx.subscribe()` for the whole web view, fanned out to every
open tab through its own Outlet.

The subscription already does the hard part (live socket, else the snapshot file,
never an older seq); the bridge remembers the newest state, the connection mode and
the recent events (seeded from `history.jsonl`), and hands each change to every
outlet. A state is encoded once per change, whatever the number of tabs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus

from agentctx._core.errors import StoreError
from agentctx._core.history import read_history
from agentctx.render import as_dict
from agentctx.state import DriveEvent, DriveState, Transition
from agentctx.subscription import Subscription, Update, subscribe
from agentctx.web.sse import Outlet, message

__all__ = ["CLIENT_NAME", "RECENT_EVENTS", "Bridge"]

log = logging.getLogger(__name__)

CLIENT_NAME: Final = "agentctx-web"  # how the sidecar's log names this client
RECENT_EVENTS: Final = 50  # events a newly opened tab is shown (history, then live)


class Bridge:
    def __init__(self, history_dir: Path, *, recent: int = RECENT_EVENTS) -> None:
        self.history_dir = history_dir
        self.subscription: Subscription = subscribe(client=CLIENT_NAME)
        self.state: DriveState | None = None
        self.mode = "starting"  # then "live" or "fallback", as the subscription says
        self.reason = "connecting to the sidecar"
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.outlets: set[Outlet] = set()
        self.dropped = 0  # events dropped for tabs that did not read, tabs since gone

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Load the recent history, then follow the sidecar until cancelled."""
        self.recent.extend(await anyio.to_thread.run_sync(self._load_history))
        task_status.started()
        async with self.subscription as updates:
            async for update in updates:
                self.apply(update)

    def _load_history(self) -> list[dict[str, Any]]:
        try:
            return list(deque(read_history(self.history_dir), maxlen=self.recent.maxlen))
        except StoreError as exc:  # the page still works; it only starts with no past
            log.warning("history not shown: %s", exc)
            return []

    # --- fan-out --------------------------------------------------------------------

    def apply(self, update: Update) -> None:
        if isinstance(update, DriveState):
            self.state = update
            msg = self._state_message()
            for outlet in self.outlets:
                outlet.put_state(update.seq, msg)
        elif isinstance(update, DriveEvent):
            self.recent.append(update.data)
            msg = message("drive", update.data)
            for outlet in self.outlets:
                outlet.put_event(msg)
        elif isinstance(update, Transition):
            self.mode, self.reason = update.mode, update.reason
            log.info("sidecar %s: %s", update.mode, update.reason)
            msg = message("status", self.status_payload())
            for outlet in self.outlets:
                outlet.put_status(msg)

    def attach(self, last_id: int | None) -> Outlet:
        """A new tab's outlet, primed: the current state (unless the tab said, with
        Last-Event-ID, that it already has this seq or a newer one), the status, then
        the recent events it has not seen (all of them on a first connection)."""
        outlet = Outlet(after=last_id)
        if self.state is not None:
            outlet.put_state(self.state.seq, self._state_message())
        outlet.put_status(message("status", self.status_payload()))
        for event in self.recent:
            if last_id is None or int(event.get("seq", 0)) > last_id:
                outlet.put_event(message("drive", event))
        self.outlets.add(outlet)
        return outlet

    def detach(self, outlet: Outlet) -> None:
        if outlet in self.outlets:
            self.outlets.discard(outlet)
            self.dropped += outlet.dropped

    def close(self) -> None:
        """End every tab's stream (before the server stops: open streams hold it up)."""
        for outlet in self.outlets:
            outlet.close()

    @property
    def dropped_events(self) -> int:
        return self.dropped + sum(o.dropped for o in self.outlets)

    # --- what is sent -------------------------------------------------------------------

    def state_payload(self, now: float | None = None) -> dict[str, Any] | None:
        """The newest state as `agentctx status --json` shows it, aged to *now*. Its
        source is the one it is current by: the socket while live, else the file."""
        if self.state is None:
            return None
        source = "socket" if self.mode == "live" else "file"
        view = DriveState(self.state.data, source, time.time() if now is None else now)
        return as_dict(view)

    def _state_message(self) -> bytes:
        assert self.state is not None
        return message("state", self.state_payload(), id=self.state.seq)

    def status_payload(self, now: float | None = None) -> dict[str, Any]:
        """The connection to the sidecar, and the age of the state shown."""
        payload = self.state_payload(now)
        return {
            "mode": self.mode,
            "reason": self.reason,
            "problem": self.subscription.file_problem,
            "age_s": None if payload is None else payload["age_s"],
            "stale": None if payload is None else payload["stale"],
        }
