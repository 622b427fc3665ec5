"""Following a directory with watchfiles (inotify), cancellable at once.

Watch the *directory*, never the file: an atomic rename replaces the inode, and a
watch on the file itself is lost after the first one. watchfiles runs its watcher
in a thread that anyio cannot interrupt; without a stop event, cancelling it waits
for the watcher's timeout (~5 s). So the stop event is set by a sibling task the
moment the scope is cancelled, and the thread returns within one `step`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import anyio
import watchfiles

__all__ = ["STEP_MS", "watch_dir"]

# Yield changes this long after the last one. Measured here (benchmarks/fallback.py;
# CPU of a subscriber idling in fallback): step 1 ms -> p99 4.7 ms, 2.3 % CPU;
# 5 ms -> p99 12 ms, 1.3 %; 20 ms -> p99 23 ms, 0.7 %. The target is p99 <= 20 ms.
# watchfiles' defaults (50 ms step, 1600 ms debounce) would add ~100 ms.
STEP_MS: Final = 5
DEBOUNCE_MS: Final = 50
WATCHING_PROBE_MS: Final = 500  # the watcher wakes this often when idle (and says so once)


async def watch_dir(
    directory: Path,
    names: Callable[[str], bool],
    on_change: Callable[[], Awaitable[object]],
    *,
    step_ms: int = STEP_MS,
    on_watching: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Await *on_change()* whenever a file whose name passes *names* is written or
    created in *directory*. Runs until cancelled; FileNotFoundError if the directory
    is missing, or once it is removed or replaced (an inotify watch dies with its
    directory, silently: the caller watches the new one).

    *on_watching()* is awaited once the inotify watch is certainly in place (at the
    watcher's first timeout): a file that landed between the caller's last look and
    that moment is caught then, not at some much later backstop."""
    path = anyio.Path(directory)
    try:  # a plain error, before a task group wraps it
        inode = (await path.stat()).st_ino
    except OSError:
        raise FileNotFoundError(f"{directory}: no such directory to watch") from None
    if not await path.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory")
    stop = anyio.Event()

    async def still_there() -> None:
        try:
            same = (await path.stat()).st_ino == inode
        except OSError:
            same = False
        if not same:
            raise FileNotFoundError(f"{directory}: removed while watched")

    def wanted(change: watchfiles.Change, path: str) -> bool:
        return change != watchfiles.Change.deleted and names(os.path.basename(path))

    async def consume() -> None:
        watching = False
        async for changes in watchfiles.awatch(
            directory,
            stop_event=stop,
            step=step_ms,
            debounce=DEBOUNCE_MS,
            recursive=False,
            watch_filter=wanted,
            rust_timeout=WATCHING_PROBE_MS,
            yield_on_timeout=True,
        ):
            if changes:
                await on_change()
                continue
            await still_there()  # idle: a timeout every WATCHING_PROBE_MS
            if not watching:  # the first timeout: the watch has existed all along
                watching = True
                if on_watching is not None:
                    await on_watching()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()
