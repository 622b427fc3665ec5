"""Draining the request spool into the hub: at start, and whenever a file lands.

Each spooled request is applied (at the instant it was made) and only then is
its file removed. A kill between the two re-applies nothing on the next drain:
the request_id is in the durable state, so the repeat is answered, not applied.
A file that cannot be parsed, or names a drive that no longer exists, is moved
to `spool/rejected/` with a log line rather than retried forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Final

import anyio

from agentctx._core.dirwatch import watch_dir
from agentctx._core.errors import E_NOT_DURABLE, ProtocolError, RequestFailed, StoreError
from agentctx._core.files import failpoint, read_file
from agentctx._core.protocol import decode_spooled
from agentctx._core.spool import REJECTED_DIR, is_spooled, spool_files
from sidecar.hub import Hub

__all__ = ["BACKSTOP_INTERVAL", "drain", "watch_spool"]

log = logging.getLogger(__name__)

BACKSTOP_INTERVAL: Final = 30.0  # also drain this often, in case an inotify event was missed
# The spool is watched for the daemon's whole life, so it gets a lazy step: a spooled
# request lands while the daemon is up only after a timeout; 50 ms more is nothing.
SPOOL_STEP_MS: Final = 50


async def drain(hub: Hub, directory: Path) -> int:
    """Apply every spooled request in order; return how many were applied."""
    applied = 0
    for path in await anyio.to_thread.run_sync(spool_files, directory):
        try:
            data = await anyio.to_thread.run_sync(read_file, path)
            if data is None:
                continue  # drained meanwhile
            item = decode_spooled(data)
        except (ProtocolError, StoreError) as exc:
            await _reject(path, f"unreadable: {exc}")
            continue
        try:
            await hub.apply(item.request, at=item.made_at)
        except RequestFailed as exc:
            if exc.code == E_NOT_DURABLE:
                log.warning("spool drain paused: state not durable (%s)", exc.message)
                return applied  # keep the file; the next drain retries
            await _reject(path, f"{exc.code}: {exc.message}")
            continue
        failpoint("mid-drain")  # tests: a crash between applying and unlinking
        await anyio.to_thread.run_sync(_unlink, path)
        applied += 1
    if applied:
        log.info("applied %d spooled request(s) from %s", applied, directory)
    return applied


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


async def watch_spool(hub: Hub, directory: Path) -> None:
    """Drain whenever a file lands in *directory* (inotify), and every BACKSTOP_INTERVAL."""
    await anyio.to_thread.run_sync(lambda: directory.mkdir(mode=0o700, parents=True, exist_ok=True))
    async with anyio.create_task_group() as tg:
        tg.start_soon(_backstop, hub, directory)
        await watch_dir(
            directory,
            is_spooled,
            lambda: drain(hub, directory),
            step_ms=SPOOL_STEP_MS,
            # what landed between the start-up drain and the watch: drained now
            on_watching=lambda: drain(hub, directory),
        )


async def _backstop(hub: Hub, directory: Path) -> None:
    while True:
        await anyio.sleep(BACKSTOP_INTERVAL)
        await drain(hub, directory)
