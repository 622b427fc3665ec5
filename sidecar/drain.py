"""Draining the request spool into the hub: at start, and whenever a file lands.

Each spooled request is applied (at the instant it was made) and only then is
its file removed. A kill between the two re-applies nothing on the next drain:
the request_id is in the durable state, so the repeat is answered, not applied.
A file that cannot be parsed, or names a drive that no longer exists, is moved
to `spool/rejected/` with a log line rather than retried forever.

Requests are applied in batches that share one durable save (a spool of 10 000
drains in seconds, not one fsync each), and files are removed only once their
batch is on disk. While the state cannot be saved the drain pauses, keeping the
files; it resumes as soon as a save succeeds again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import anyio

from agentctx._core.dirwatch import watch_dir
from agentctx._core.errors import (
    E_NOT_DURABLE,
    E_UNAVAILABLE,
    ProtocolError,
    RequestFailed,
    StoreError,
    UnsafePath,
)
from agentctx._core.files import failpoint, make_private_dirs, read_file
from agentctx._core.protocol import decode_spooled
from agentctx._core.spool import REJECTED_DIR, check_spool_dir, is_spooled, spool_files
from sidecar.hub import Serving

__all__ = ["BACKSTOP_INTERVAL", "drain", "watch_spool"]

log = logging.getLogger(__name__)

BACKSTOP_INTERVAL: Final = 30.0  # also drain this often, in case an inotify event was missed
DRAIN_BATCH: Final = 256  # spooled requests applied per durable save
# The spool is watched for the daemon's whole life, so it gets a lazy step: a spooled
# request lands while the daemon is up only after a timeout; 50 ms more is nothing.
SPOOL_STEP_MS: Final = 50
SPOOL_REWATCH_DELAY: Final = 1.0  # before watching a spool dir again that went away
_refused: dict[Path, str] = {}  # spool dirs refused, and why (said once each)
# Not the request's fault: keep its file and try again after `hub.recovered()`.
RETRY_LATER: Final = frozenset({E_NOT_DURABLE, E_UNAVAILABLE})


async def drain(hub: Serving, directory: Path) -> int:
    """Apply every spooled request in order; return how many were applied. A spool
    dir others could write to (a symlink elsewhere, a foreign or group-writable dir)
    is not drained: another user could have planted requests there. Said once."""
    applied = 0
    try:
        await anyio.to_thread.run_sync(check_spool_dir, directory)
    except FileNotFoundError:
        return 0  # nothing spooled yet
    except UnsafePath as exc:
        if str(exc) != _refused.get(directory):
            log.error("spool not drained: %s", exc)
            _refused[directory] = str(exc)
        return 0
    _refused.pop(directory, None)
    paths = await anyio.to_thread.run_sync(spool_files, directory)
    paused = False
    for start in range(0, len(paths), DRAIN_BATCH):
        done: list[Path] = []
        last_seq = None
        for path in paths[start : start + DRAIN_BATCH]:
            try:
                data = await anyio.to_thread.run_sync(read_file, path)
                if data is None:
                    continue  # drained meanwhile
                item = decode_spooled(data)
            except (ProtocolError, StoreError) as exc:
                await _reject(path, f"unreadable: {exc}")
                continue
            try:
                last_seq = await hub.submit(item.request, at=item.made_at)
            except RequestFailed as exc:
                if exc.code in RETRY_LATER:  # a follower cut off from its home
                    log.warning("spool drain paused: %s", exc.message)
                    paused = True
                    break
                await _reject(path, f"{exc.code}: {exc.message}")
                continue
            done.append(path)
        if last_seq is not None:
            try:
                await hub.wait_durable(last_seq)  # the whole batch, one save
            except RequestFailed as exc:
                if exc.code not in RETRY_LATER:
                    raise
                log.warning("spool drain paused: not durable (%s)", exc.message)
                return applied  # keep the files; a drain after the next good save retries
        failpoint("mid-drain")  # tests: a crash between applying and unlinking
        await anyio.to_thread.run_sync(_unlink_all, done)
        applied += len(done)
        if paused:
            break  # the rest waits for `hub.recovered()`
    if applied:
        log.info("applied %d spooled request(s) from %s", applied, directory)
    return applied


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _unlink(path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def _reject(path: Path, why: str) -> None:
    log.error("spooled request %s rejected (%s); moved to %s/", path.name, why, REJECTED_DIR)

    def move() -> None:
        target = path.parent / REJECTED_DIR
        target.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target / path.name)

    await anyio.to_thread.run_sync(move)


async def watch_spool(hub: Serving, directory: Path) -> None:
    """Drain whenever a file lands in *directory* (inotify), whenever the state can be
    saved again after a failure, and every BACKSTOP_INTERVAL. A spool dir that is
    removed is made again and watched again."""
    lock = anyio.Lock()  # one drain at a time, whatever woke it

    async def drain_now() -> None:
        async with lock:
            await drain(hub, directory)

    async with anyio.create_task_group() as tg:
        tg.start_soon(_every, BACKSTOP_INTERVAL, drain_now)
        tg.start_soon(_after_recovery, hub, drain_now)
        while True:
            try:
                await anyio.to_thread.run_sync(make_private_dirs, directory)
                await watch_dir(
                    directory,
                    is_spooled,
                    drain_now,
                    step_ms=SPOOL_STEP_MS,
                    # what landed between the last drain and the watch: drained now
                    on_watching=drain_now,
                )
            except* (FileNotFoundError, StoreError) as group:
                log.warning("spool dir %s: %s; watching it again", directory, group.exceptions[0])
            await anyio.sleep(SPOOL_REWATCH_DELAY)


async def _after_recovery(hub: Serving, drain_now: Callable[[], Awaitable[None]]) -> None:
    while True:
        await hub.recovered()
        await drain_now()


async def _every(interval: float, drain_now: Callable[[], Awaitable[None]]) -> None:
    while True:
        await anyio.sleep(interval)
        await drain_now()
