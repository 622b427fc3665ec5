"""Writing the newest version of a file off the event loop, one write at a time.

Both the live snapshot and the durable state are written this way. `offer()`
never blocks: it replaces whatever is pending, because a reader (or a restart)
only ever wants the newest version, and a single writer task keeps the writes in
seq order. `flush(seq)` waits until a write covering *seq* is done, which gives
group commit for free: requests that arrive while an fsync is under way are all
covered by the next one.

A failed write is retried with backoff. Because every attempt writes a brand-new
temp file, an fsync error is never "retried" on the same file (after a failed
fsync Linux may already have dropped the dirty pages). While the writer is failing
(a full disk, a read-only remount), a `flush()` does not wait for the backoff: it
has the writer try again at once and answers with that attempt, which fails fast
on a broken disk and succeeds as soon as the disk is back. Nothing that only
publishes ever waits on the disk. `recovered()` wakes when a write succeeds again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Generic, TypeVar

import anyio

from agentctx._core.errors import StoreError

__all__ = ["LatestWriter"]

log = logging.getLogger(__name__)

RETRY_MIN: Final = 0.05
RETRY_MAX: Final = 5.0

T = TypeVar("T")


class LatestWriter(Generic[T]):
    def __init__(self, name: str, write: Callable[[T], None]) -> None:
        self.name = name
        self._write = write
        self.written_seq = -1
        self.failures = 0
        self._offered = 0  # offers so far, so a caller can wait for its own to be written
        self._written_offer = 0
        self._pending: tuple[int, T, int] | None = None
        self._wake = anyio.Event()
        self._attempt_done = anyio.Event()
        self._error: tuple[int, StoreError] | None = None
        self._recovered = anyio.Event()
        self._hurry = anyio.Event()  # cuts a retry backoff short

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful one."""
        return self._error is None

    @property
    def error(self) -> StoreError | None:
        """Why the last write failed, while it is failing."""
        return None if self._error is None else self._error[1]

    async def recovered(self) -> None:
        """Return once a write succeeds after a failure."""
        await self._recovered.wait()

    def offer(self, seq: int, item: T) -> int:
        """Queue *item* (the state at *seq*) to be written; replaces an unwritten one.
        Returns the offer's number, for `written()`."""
        self._offered += 1
        self._pending = (seq, item, self._offered)
        self._wake.set()
        return self._offered

    async def flush(self, seq: int) -> None:
        """Wait until a write covering *seq* is done; StoreError if the attempt failed.
        While the writer is failing, the attempt waited for is made at once."""
        while self.written_seq < seq:
            await self._next_attempt()
            if self.written_seq < seq and self._error is not None:
                raise self._error[1]

    async def written(self, offer: int) -> None:
        """Wait until offer number *offer* (or a newer one) is written; StoreError if
        the attempt failed."""
        while self._written_offer < offer:
            await self._next_attempt()
            if self._written_offer < offer and self._error is not None:
                raise self._error[1]

    async def _next_attempt(self) -> None:
        attempt = self._attempt_done
        if self._error is not None:
            self._hurry.set()
        await attempt.wait()

    def write_now(self) -> None:
        """Write whatever is pending, synchronously (at shutdown, with the loop idle)."""
        if self._pending is not None:
            seq, item, offer = self._pending
            self._pending = None
            self._write(item)
            self.written_seq, self._written_offer = seq, offer

    async def run(self) -> None:
        delay = RETRY_MIN
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            if self._pending is None:
                continue
            seq, item, offer = self._pending
            self._pending = None
            try:
                await anyio.to_thread.run_sync(self._write, item)
            except StoreError as exc:
                self.failures += 1
                if self._error is None:  # one line per episode, not per retry
                    log.error(
                        "%s write failed (retrying every %gs at most): %s",
                        self.name,
                        RETRY_MAX,
                        exc,
                    )
                else:
                    log.debug("%s write failed again (retry in %.2fs): %s", self.name, delay, exc)
                self._error = (seq, exc)
                if self._pending is None:
                    self._pending = (seq, item, offer)
                self._end_attempt()
                with anyio.move_on_after(delay):
                    await self._hurry.wait()
                self._hurry = anyio.Event()
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()
                continue
            self.written_seq, self._written_offer = seq, offer
            delay = RETRY_MIN
            if self._error is not None:
                log.warning(
                    "%s written again (%d failed attempts so far)", self.name, self.failures
                )
                self._error = None
                recovered, self._recovered = self._recovered, anyio.Event()
                recovered.set()
            self._end_attempt()

    def _end_attempt(self) -> None:
        done = self._attempt_done
        self._attempt_done = anyio.Event()
        done.set()
