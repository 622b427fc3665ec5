"""`agentctx.subscribe()`: every state and event, live, on asyncio or trio (anyio).

    async with agentctx.subscribe() as updates:
        async for update in updates:      # DriveState | DriveEvent | Transition
            ...

Live, it reads the daemon's socket. When the socket goes away (or stays silent
past a few tick intervals) it says so with a `Transition("fallback", ...)` and
follows the snapshot file instead: inotify on the *directory* (a watch on the file
itself dies with the first atomic rename), a few ms of debounce, plus a slow
backstop re-read (mtime/inode) so a missed event cannot leave you stale. It keeps
trying the socket with backoff and says `Transition("live", ...)` when back.

It never hands you an older state than one it already gave (see
`DriveState.newer_than`), across socket/file switches and daemon restarts.
It is a context manager because the following runs in a task group of its own:
leaving the block cancels it, at once (the watcher gets a stop event).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agentctx._core import paths
from agentctx._core.dirwatch import watch_dir
from agentctx._core.errors import DaemonUnavailable, ProtocolError, StoreError
from agentctx._core.snapshot import read_snapshot_file
from agentctx.connection import CONNECT_TIMEOUT, Connection
from agentctx.state import STALE_MIN_S, STALE_TICKS, DriveEvent, DriveState, Transition

__all__ = ["Subscription", "Update", "subscribe"]

Update = DriveState | DriveEvent | Transition

RECONNECT_MIN: Final = 0.05
RECONNECT_MAX: Final = 2.0
BACKSTOP: Final = 1.0  # re-read the snapshot at least this often while following it
BUFFER: Final = 64  # updates held for a slow consumer before we stop reading the socket


class Subscription:
    def __init__(
        self,
        *,
        client: str = "agentctx",
        socket_path: Path | None = None,
        snapshot_path: Path | None = None,
        reconnect_min: float = RECONNECT_MIN,
        reconnect_max: float = RECONNECT_MAX,
        backstop: float = BACKSTOP,
        connect_timeout: float = CONNECT_TIMEOUT,
        agent: str | None = None,
    ) -> None:
        self.client = client
        # the agent is resolved now (default: $AGENTCTX_AGENT), not at each reconnect
        self.socket_path = socket_path or Path(paths.socket_path(agent))
        self.snapshot_path = snapshot_path or Path(paths.snapshot_path(agent))
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.backstop = backstop
        self.connect_timeout = connect_timeout
        self.mode = "starting"
        self.last: DriveState | None = None
        # Why the snapshot gave nothing the last time it was read in fallback (no file,
        # damaged), for a view to show; None when it was read fine.
        self.file_problem: str | None = None
        self._file_sig: tuple[int, int] | None = None
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Update]
        self._recv: MemoryObjectReceiveStream[Update]

    async def __aenter__(self) -> Subscription:
        self._send, self._recv = anyio.create_memory_object_stream[Update](BUFFER)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(et, exc, tb)
        finally:
            self._recv.close()

    def __aiter__(self) -> AsyncIterator[Update]:
        return self

    async def __anext__(self) -> Update:
        if self._tg is None:
            raise RuntimeError("use `async with agentctx.subscribe() as updates:` first")
        try:
            return await self._recv.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    # --- producer -----------------------------------------------------------------

    async def _emit_state(self, state: DriveState) -> None:
        if state.newer_than(self.last):
            self.last = state
            await self._send.send(state)

    async def _run(self) -> None:
        reason = "starting"
        conn: Connection | None = None
        while True:
            try:
                conn = await Connection.open(
                    self.socket_path, client=self.client, within=self.connect_timeout
                )
            except DaemonUnavailable as exc:
                conn = await self._fallback(str(exc) if reason == "starting" else reason)
            self.mode = "live"
            await self._send.send(Transition("live", f"connected to {self.socket_path}"))
            try:
                await self._pump(conn)
            except (DaemonUnavailable, ProtocolError) as exc:
                reason = str(exc)
            finally:
                await conn.aclose()

    async def _pump(self, conn: Connection) -> None:
        interval = float(conn.welcome.get("tick_interval", 1.0))
        silence = max(STALE_TICKS * interval, STALE_MIN_S)  # a hung daemon is a down daemon
        last = anyio.current_time()
        hung = False

        async def watchdog(scope: anyio.CancelScope) -> None:
            # One timer per silence period, not a cancel scope per message: this is the
            # hot path of every fan-out (see benchmarks/push.py).
            nonlocal hung
            while True:
                await anyio.sleep(max(0.0, last + silence - anyio.current_time()))
                if anyio.current_time() - last >= silence:
                    hung = True
                    scope.cancel()
                    return

        lost: DaemonUnavailable | ProtocolError | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog, tg.cancel_scope)
            try:
                while True:
                    msg = await conn.receive()
                    last = anyio.current_time()
                    kind = msg.get("type")
                    if kind == "state":
                        await self._emit_state(DriveState(msg, "socket"))
                    elif kind == "event":
                        await self._send.send(DriveEvent(msg))
            except (DaemonUnavailable, ProtocolError) as exc:
                lost = exc  # raised below, outside the task group (not as a group)
                tg.cancel_scope.cancel()
        if lost is not None:
            raise lost
        if hung:
            raise DaemonUnavailable(f"no state from the sidecar for {silence:g}s")

    async def _fallback(self, reason: str) -> Connection:
        """Follow the snapshot file until the socket answers again; return that connection."""
        self.mode = "fallback"
        await self._send.send(Transition("fallback", reason))
        self._file_sig = None
        await self._read_file()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._follow_file)
            delay = self.reconnect_min
            conn: Connection | None = None
            while conn is None:
                await anyio.sleep(delay)
                try:
                    conn = await Connection.open(
                        self.socket_path, client=self.client, within=self.connect_timeout
                    )
                except DaemonUnavailable:
                    delay = min(delay * 2, self.reconnect_max)
            tg.cancel_scope.cancel()
        assert conn is not None
        return conn

    async def _follow_file(self) -> None:
        name = self.snapshot_path.name
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._backstop)
            while True:
                try:
                    await watch_dir(
                        self.snapshot_path.parent,
                        name.__eq__,
                        self._read_file,
                        on_watching=self._read_if_changed,
                    )
                except* FileNotFoundError:  # no runtime dir (yet): the backstop polls meanwhile
                    pass
                await anyio.sleep(self.backstop)

    async def _backstop(self) -> None:
        while True:
            await anyio.sleep(self.backstop)
            await self._read_if_changed()

    async def _read_if_changed(self) -> None:
        await self._read_file(only_if_changed=True)

    async def _read_file(self, only_if_changed: bool = False) -> None:
        path = self.snapshot_path

        def load() -> tuple[tuple[int, int] | None, dict[str, Any] | None, str | None]:
            try:
                st = os.stat(path)
            except OSError as exc:
                return None, None, f"no snapshot at {path} ({exc.strerror})"
            sig = (st.st_ino, st.st_mtime_ns)
            if only_if_changed and sig == self._file_sig:
                return sig, None, self.file_problem
            try:
                return sig, read_snapshot_file(path), None
            except StoreError as exc:  # atomic renames never tear it; a person might
                return sig, None, str(exc)

        sig, data, self.file_problem = await anyio.to_thread.run_sync(load)
        self._file_sig = sig
        if data is not None:
            await self._emit_state(DriveState(data, "file"))


# `async with agentctx.subscribe(...) as updates:` reads better than the class name.
subscribe = Subscription
