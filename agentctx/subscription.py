"""`agentctx.subscribe()`: every state and event, live, on asyncio or trio (anyio).

    async with agentctx.subscribe() as updates:
        async for update in updates:      # DriveState | DriveEvent | Transition
            ...

Live, it reads the daemon's socket in the iterating task itself: a state is decoded
and handed over by the same wake-up that read it (no task, no queue in between;
see docs/performance.md). When the socket goes away (or stays silent past a few
tick intervals) it says so with a `Transition("fallback", ...)` and follows the
snapshot file instead: inotify on the *directory* (a watch on the file itself dies
with the first atomic rename), plus a slow backstop re-read (mtime/inode) so a
missed event cannot leave you stale. It keeps trying the socket with backoff and
says `Transition("live", ...)` when back.

It never hands you an older state than one it already gave (see
`DriveState.newer_than`), across socket/file switches and daemon restarts.
It is a context manager because following the file and reconnecting run in a task
group of their own: leaving the block cancels them, at once.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from agentctx._core import inotify
from agentctx._core.errors import DaemonUnavailable, ProtocolError, StoreError
from agentctx.connection import Connection
from agentctx.feed import (
    BACKSTOP,
    NO_INOTIFY_POLL,
    RECONNECT_MAX,
    RECONNECT_MIN,
    Following,
    Update,
)
from agentctx.state import DriveState

__all__ = ["BACKSTOP", "RECONNECT_MAX", "RECONNECT_MIN", "Subscription", "Update", "subscribe"]


class Subscription(Following):
    def _setup(self) -> None:
        self._tg: TaskGroup | None = None
        self._conn: Connection | None = None
        self._handover: Connection | None = None  # the fallback task's new connection
        self._woken = anyio.Event()

    @property
    def last(self) -> DriveState | None:
        """The newest state handed out (or about to be)."""
        return self._feed.last

    @property
    def file_problem(self) -> str | None:
        """Why the snapshot gave nothing the last time it was read in fallback (no
        file, damaged), for a view to show; None when it was read fine."""
        return self._file.problem

    async def __aenter__(self) -> Subscription:
        if self._tg is not None:
            raise RuntimeError("this subscription is already open: make another")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        # In a task of its own, so a caller cancelling its wait for the first update
        # (a redraw timeout) cannot cut a slow welcome short, again and again.
        self._tg.start_soon(self._connect_first)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(et, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                for conn in (self._conn, self._handover):
                    if conn is not None:
                        await conn.aclose()
            self._conn = self._handover = None
            self._tg = None  # iterating after the block is a mistake, said as such

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        if self._tg is None:
            raise RuntimeError("use `async with agentctx.subscribe() as updates:` first")
        feed = self._feed
        ready = feed.ready
        # Cancelling this at any await loses nothing: a read's frames are decoded
        # into `ready` before the next await, and a connection changes hands at once.
        while not ready:
            if self._conn is not None:  # live: the hot path
                try:
                    if frames := self._conn.take():
                        feed.frames(frames)
                    else:
                        await self._conn.readable()
                except (DaemonUnavailable, ProtocolError) as exc:
                    conn, self._conn = self._conn, None
                    with anyio.CancelScope(shield=True):
                        await conn.aclose()
                    self._start_fallback(str(exc))
            elif self._handover is not None:
                self._go_live(self._handover)
            else:  # starting, or fallback: a connection or the file follower wakes us
                await self._woken.wait()
                self._woken = anyio.Event()
        return ready.popleft()

    def _go_live(self, conn: Connection) -> None:
        self._conn, self._handover = conn, None
        self.mode = "live"
        self._feed.transition("live", f"connected to {self.socket_path}")

    def _start_fallback(self, reason: str) -> None:
        assert self._tg is not None
        self.mode = "fallback"
        self._feed.transition("fallback", reason)
        self._file.forget()
        self._tg.start_soon(self._fallback)
        self._wake()

    def _wake(self) -> None:
        self._woken.set()

    # --- connecting and fallback (tasks of their own) -----------------------------

    async def _connect_first(self) -> None:
        try:
            conn = await Connection.open(
                self.socket_path, client=self.client, within=self.connect_timeout
            )
        except DaemonUnavailable as exc:
            self._start_fallback(str(exc))
            return
        self._handover = conn
        self._wake()

    async def _fallback(self) -> None:
        """Follow the snapshot file until the socket answers again; hand that over."""
        await self._read_file()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._follow_file)
            delay = self.reconnect_min
            while True:
                await anyio.sleep(delay)
                try:
                    conn = await Connection.open(
                        self.socket_path, client=self.client, within=self.connect_timeout
                    )
                except DaemonUnavailable:
                    delay = min(delay * 2, self.reconnect_max)
                    continue
                self._handover = conn
                self._wake()
                tg.cancel_scope.cancel()
                return

    async def _follow_file(self) -> None:
        name = self.snapshot_path.name
        watch = _open_watch(self.snapshot_path.parent)
        try:
            while True:
                if watch is not None and not watch.armed:
                    watch = _arm(watch)
                    if watch is not None and watch.armed:
                        # writes between the last look and the watch: caught now
                        await self._read_file(only_if_changed=True)
                if watch is None or not watch.armed:
                    await anyio.sleep(NO_INOTIFY_POLL if watch is None else self.backstop)
                    await self._read_file(only_if_changed=True)
                    continue
                with anyio.move_on_after(self.backstop) as idle:
                    await anyio.wait_readable(watch.fileno())
                if idle.cancelled_caught:  # the backstop: a missed event, a replaced dir
                    if not watch.verify():
                        watch = _arm(watch)
                    await self._read_file(only_if_changed=True)
                    continue
                names = watch.changed()
                if names is None or name in names:
                    await self._read_file(only_if_changed=names is None)
        finally:
            if watch is not None:
                watch.close()

    async def _read_file(self, only_if_changed: bool = False) -> None:
        state = await anyio.to_thread.run_sync(self._file.read, only_if_changed)
        if state is not None:
            self._feed.file_state(state)
            self._wake()


def _open_watch(directory: Path) -> inotify.DirWatch | None:
    """An inotify watch on *directory* (armed by the caller); None: poll instead."""
    if not inotify.available():
        return None
    try:
        return inotify.DirWatch(directory)
    except StoreError:  # no inotify instance left (a per-user limit): poll
        return None


def _arm(watch: inotify.DirWatch | None) -> inotify.DirWatch | None:
    """*watch* armed if its directory exists; None if inotify refuses (poll then)."""
    if watch is None:
        return None
    try:
        watch.arm()
    except StoreError:  # no watch left (fs.inotify.max_user_watches)
        watch.close()
        return None
    return watch


# `async with agentctx.subscribe(...) as updates:` reads better than the class name.
subscribe = Subscription
