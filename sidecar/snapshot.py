"""The live snapshot writer: newest state to `drives-state.json`, off the event loop.

States are handed over with `offer()` (never blocks) and written by one task in a
worker thread. When states arrive faster than the file can be written only the
newest is written: a reader only ever wants the newest, and the writes stay in
seq order because there is exactly one writer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import anyio
import msgspec

from agentctx.errors import StoreError
from sidecar.store import atomic_write

__all__ = ["SnapshotWriter"]

log = logging.getLogger(__name__)

RETRY_MIN: Final = 0.05
RETRY_MAX: Final = 5.0
SNAPSHOT_MODE: Final = 0o600


class SnapshotWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.written_seq = -1
        self._pending: tuple[int, bytes] | None = None
        self._wake = anyio.Event()

    def offer(self, seq: int, state_json: bytes) -> None:
        """Queue the compact JSON of state *seq*; replaces anything not yet written."""
        self._pending = (seq, state_json)
        self._wake.set()

    def write_now(self) -> None:
        """Synchronously write whatever is pending (used once, at shutdown)."""
        if self._pending is not None:
            seq, data = self._pending
            self._pending = None
            self._write(seq, data)

    def _write(self, seq: int, data: bytes) -> None:
        # Pretty-printed: `cat` on this file is how a person debugs the daemon.
        atomic_write(
            self.path,
            msgspec.json.format(data, indent=2) + b"\n",
            durable=False,
            mode=SNAPSHOT_MODE,
        )
        self.written_seq = seq

    async def run(self) -> None:
        delay = RETRY_MIN
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            pending = self._pending
            if pending is None:
                continue
            self._pending = None
            try:
                await anyio.to_thread.run_sync(self._write, *pending)
                delay = RETRY_MIN
            except StoreError as exc:
                log.error("snapshot write failed, retrying in %.2fs: %s", delay, exc)
                if self._pending is None:
                    self._pending = pending
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()
