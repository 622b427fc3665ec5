"""Noticing wall-clock steps, so pressure follows the time that really passed.

Pressure is a function of wall-clock time (quiet hours are local hours, a
downtime is caught up), but the wall clock can be stepped: NTP correcting a
drifted clock, a bad RTC jumping ahead and back. Linux's CLOCK_BOOTTIME counts
real seconds, suspend included, and nobody can step it. Its difference to the
wall clock stays constant until the wall clock is stepped, so a change in that
difference is a step, and the real seconds since the engine's last tick are what
growth is credited for (docs/design.md, "Clocks").

The difference is saved with the durable state together with the kernel's boot
id: a daemon restarted within the same boot also notices a step that happened
while it was down.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from sidecar.engine import STEP_TOLERANCE_S, Engine

__all__ = ["BOOT_ID_PATH", "ISO_CACHE", "StepWatch", "iso", "kernel_boot_id", "real_time"]

BOOT_ID_PATH: Final = "/proc/sys/kernel/random/boot_id"
ISO_CACHE: Final = 4096  # instants formatted for states, kept (a few per drive are live)
_US_PER_S: Final = 1_000_000


# Seconds since boot, suspend included; never stepped. A C partial rather than a def:
# it is read at every request, on the path whose latency is measured.
real_time: Callable[[], float] = functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)


def kernel_boot_id() -> str:
    """This boot's id ("" if unknown): real_time() readings compare only within it."""
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


class StepWatch:
    """The offset real_time() - wall time at the engine's last tick, kept current."""

    def __init__(
        self, offset: float | None = None, real_clock: Callable[[], float] = real_time
    ) -> None:
        self.offset = offset  # None: unknown (first start, another boot)
        self._real_clock = real_clock

    def sync(self, engine: Engine, now: float) -> float:
        """Call before advancing *engine* to the wall-clock instant *now*. When the wall
        clock was stepped since the engine's last tick, rebase the engine so it is
        credited the real time only; return the step (seconds, + ahead), else 0."""
        real = self._real_clock()
        step = 0.0
        if self.offset is not None:
            elapsed = real - (engine.last_tick + self.offset)  # real seconds since the tick
            wall = now - engine.last_tick
            # (the engine checks the same tolerance: asked only when it will rebase)
            if abs(wall - elapsed) > STEP_TOLERANCE_S and engine.rebase(now, elapsed):
                step = wall - elapsed
        self.offset = real - now
        return step


@functools.lru_cache(maxsize=ISO_CACHE)
def iso(ts: float | None) -> str | None:
    """*ts* (a Unix time) as UTC ISO 8601, exactly as `datetime.fromtimestamp(ts, UTC)
    .isoformat()` writes it, for the instants in every published state.

    Cached, as nearly all are unchanged since the last state. A new one (every
    satisfy) is built from its whole second's text, cached too, plus the microseconds:
    on the push path, right after the daemon woke, datetime took ~20 us cold, this ~10.
    The rounding is datetime's: the fraction to microseconds, half to even."""
    if ts is None:
        return None
    fraction, whole = math.modf(ts)
    us = round(fraction * _US_PER_S)
    if us >= _US_PER_S:
        whole += 1.0
        us -= _US_PER_S
    second = _iso_second(int(whole))
    if not us:  # as isoformat(): no fraction at all
        return second + "+00:00"
    return second + "." + str(_US_PER_S + us)[1:] + "+00:00"


@functools.lru_cache(maxsize=64)
def _iso_second(whole: int) -> str:
    """The whole second *whole*, "YYYY-MM-DDTHH:MM:SS" (UTC)."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
