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

import time
from collections.abc import Callable
from typing import Final

from sidecar.engine import Engine

__all__ = ["BOOT_ID_PATH", "StepWatch", "kernel_boot_id", "real_time"]

BOOT_ID_PATH: Final = "/proc/sys/kernel/random/boot_id"


def real_time() -> float:
    """Seconds since boot, suspend included; never stepped."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


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
            if engine.rebase(now, elapsed):
                step = wall - elapsed
        self.offset = real - now
        return step
