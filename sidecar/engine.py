"""Pure drive math: tick, satisfy, bump, reset, bands. No I/O; the clock is passed in.

Changes come back as `agentctx._core.protocol.Event`s (seq 0: the hub numbers them), the
one schema the wire and the engine share.

The numbers follow emergence's engine (pressure += rate x hours, capped at
threshold x max_pressure_ratio; satisfy depths 30/50/75/100 %; bump capped the
same way). One deliberate improvement: pressure is a function of wall-clock time
alone. Quiet hours are integrated over the elapsed interval, hour by hour, instead
of applying the factor of whatever hour the tick happens to land in, so a 1 s tick
and a 900 s tick (or a two-hour downtime caught up on start) give the same pressure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Annotated, Any, Final

import msgspec

from agentctx._core.config import BAND_ORDER, Config, DriveConfig
from agentctx._core.errors import E_BAD_REQUEST, RequestFailed, UnknownDrive
from agentctx._core.protocol import DEPTHS, Band, Depth, Event, EventKind, Status

__all__ = [
    "SECONDS_PER_HOUR",
    "DriveRuntime",
    "Engine",
    "band_for",
    "effective_hours",
]

SECONDS_PER_HOUR: Final = 3600.0
LATENT: Final[Band] = "latent"
_TRIGGERED_INDEX: Final = BAND_ORDER.index("triggered") + 1  # +1: "latent" is index 0


Pressure = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
Instant = Annotated[float, msgspec.Meta(ge=0.0, le=1e11)]  # a Unix time, wall clock


class DriveRuntime(msgspec.Struct, kw_only=True):
    """What changes about a drive. The durable state stores exactly this (its bounds
    are checked when a state file is read back)."""

    pressure: Pressure = 0.0
    last_triggered: Instant | None = None
    last_satisfied: Instant | None = None
    last_event: Instant | None = None  # the last satisfy/bump/reset, whatever it was


def band_for(ratio: float, bands: Mapping[str, float]) -> Band:
    """The highest band whose start ratio *ratio* has reached, else "latent"."""
    current = LATENT
    for name in BAND_ORDER:
        if ratio >= bands[name]:
            current = name
    return current


def _band_index(band: Band) -> int:
    return 0 if band == LATENT else BAND_ORDER.index(band) + 1


def _in_quiet(hour: int, quiet: tuple[int, int]) -> bool:
    start, end = quiet
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end  # overnight window, e.g. [23, 7]


def effective_hours(
    t0: float, t1: float, quiet: tuple[int, int] | None, factor: float, tz: tzinfo | None
) -> float:
    """Hours between two instants, with quiet local hours counting x *factor*.

    Walks local hour boundaries (DST and half-hour offsets included), so the result
    is additive: effective(a, b) + effective(b, c) == effective(a, c).
    """
    if t1 <= t0:
        return 0.0
    if quiet is None or factor == 1.0:
        return (t1 - t0) / SECONDS_PER_HOUR
    total = 0.0
    t = t0
    while t < t1:
        local = datetime.fromtimestamp(t, tz).astimezone(tz)
        offset = local.utcoffset()
        shift = offset.total_seconds() if offset is not None else 0.0
        boundary = t - math.fmod(t + shift, SECONDS_PER_HOUR) + SECONDS_PER_HOUR
        if boundary <= t:  # float edge: never loop in place
            boundary = t + SECONDS_PER_HOUR
        end = min(boundary, t1)
        weight = factor if _in_quiet(local.hour, quiet) else 1.0
        total += (end - t) * weight
        t = end
    return total / SECONDS_PER_HOUR


@dataclass(slots=True)
class _Drive:
    name: str
    spec: DriveConfig
    bands: dict[str, float]
    cap: float
    rt: DriveRuntime
    band: Band = LATENT

    @property
    def ratio(self) -> float:
        return self.rt.pressure / self.spec.threshold


@dataclass(slots=True)
class Engine:
    """The drives of one agent, advanced by wall-clock time passed in by the caller."""

    config: Config
    last_tick: float
    tz: tzinfo | None = None
    _drives: dict[str, _Drive] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        config: Config,
        now: float,
        runtime: Mapping[str, DriveRuntime] | None = None,
        tz: tzinfo | None = None,
    ) -> Engine:
        engine = cls(config=config, last_tick=now, tz=tz)
        engine._install(config, runtime or {})
        return engine

    def _install(self, config: Config, runtime: Mapping[str, DriveRuntime]) -> list[Event]:
        """Adopt *config*, keeping the pressure of every drive that survives."""
        ratio_cap = config.sidecar.max_pressure_ratio
        old = self._drives
        self.config = config
        self._drives = {}
        changes: list[Event] = []
        for name, spec in config.drives.items():
            bands = spec.band_ratios()
            rt = runtime.get(name) or DriveRuntime()
            drive = _Drive(name, spec, bands, spec.threshold * ratio_cap, rt)
            drive.band = band_for(drive.ratio, bands)
            self._drives[name] = drive
            before = old.get(name)
            if before is not None and before.band != drive.band:
                changes.append(self._band_change(drive, before.band, self.last_tick))
        return changes

    # --- queries ------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._drives)

    def spec(self, name: str) -> DriveConfig:
        return self._drive(name).spec

    def runtime(self) -> dict[str, DriveRuntime]:
        """A copy of every drive's runtime values (for the durable state)."""
        return {n: msgspec.structs.replace(d.rt) for n, d in self._drives.items()}

    def pressure(self, name: str) -> float:
        return self._drive(name).rt.pressure

    def ratio(self, name: str) -> float:
        return self._drive(name).ratio

    def band(self, name: str) -> Band:
        return self._drive(name).band

    def max_pressure(self, name: str) -> float:
        return self._drive(name).cap

    def last_triggered(self, name: str) -> float | None:
        return self._drive(name).rt.last_triggered

    def last_satisfied(self, name: str) -> float | None:
        return self._drive(name).rt.last_satisfied

    def last_event(self, name: str) -> float | None:
        return self._drive(name).rt.last_event

    def status(self, name: str, now: float) -> Status:
        """emergence's status: triggered, else satisfied (for a while), else building."""
        drive = self._drive(name)
        if _band_index(drive.band) >= _TRIGGERED_INDEX:
            return "triggered"
        hold = self.config.sidecar.satisfied_hold_s
        last = drive.rt.last_satisfied
        if last is not None and 0.0 <= now - last < hold:
            return "satisfied"
        return "building"

    def _drive(self, name: str) -> _Drive:
        drive = self._drives.get(name) or self._drives.get(name.upper())
        if drive is None:
            raise UnknownDrive(name, self._drives)
        return drive

    # --- time ---------------------------------------------------------------------

    def advance(self, now: float) -> list[Event]:
        """Grow every time-driven drive up to *now*; return the band crossings.

        A clock that went backwards grows nothing; the engine then waits for the
        clock to pass its last tick again rather than double-counting.
        """
        if now <= self.last_tick:
            return []
        s = self.config.sidecar
        hours = effective_hours(self.last_tick, now, s.quiet_hours, s.quiet_rate_factor, self.tz)
        self.last_tick = now
        changes: list[Event] = []
        for drive in self._drives.values():
            if drive.spec.activity_driven or drive.spec.rate_per_hour == 0.0:
                continue
            p = drive.rt.pressure
            if p < drive.cap:
                drive.rt.pressure = min(p + drive.spec.rate_per_hour * hours, drive.cap)
            changes.extend(self._rebanded(drive, now))
        return changes

    def reconfigure(self, config: Config, now: float) -> list[Event]:
        """Catch up to *now* under the old config, then switch, keeping pressures."""
        changes = self.advance(now)
        runtime = {n: d.rt for n, d in self._drives.items()}
        changes.extend(self._install(config, runtime))
        return changes

    # --- discrete events ------------------------------------------------------------

    def satisfy(
        self, name: str, now: float, depth: Depth | None = None, amount: float | None = None
    ) -> list[Event]:
        """Cut pressure by a depth (default moderate) or by an absolute amount."""
        drive = self._drive(name)
        if depth is not None and amount is not None:
            raise RequestFailed(E_BAD_REQUEST, "give a depth or an amount, not both")
        if depth is not None and depth not in DEPTHS:
            raise RequestFailed(
                E_BAD_REQUEST, f"unknown depth {depth!r} (expected {', '.join(DEPTHS)})"
            )
        _check_amount(amount)
        if amount is None and depth is None:
            depth = "moderate"
        changes = self.advance(now)
        p = drive.rt.pressure
        if amount is not None:
            drive.rt.pressure = max(0.0, p - amount)
        else:
            assert depth is not None
            drive.rt.pressure = max(0.0, p * (1.0 - DEPTHS[depth]))
        drive.rt.last_satisfied = now
        return changes + self._applied("satisfied", drive, now, depth=depth, amount=amount)

    def bump(self, name: str, now: float, amount: float) -> list[Event]:
        """Add pressure (how activity-driven drives grow), capped like time growth."""
        drive = self._drive(name)
        _check_amount(amount)
        changes = self.advance(now)
        p = drive.rt.pressure
        drive.rt.pressure = max(p, min(p + amount, drive.cap))
        return changes + self._applied("bumped", drive, now, amount=amount)

    def reset(self, name: str | None, now: float) -> list[Event]:
        """Pressure to zero: one drive, or every drive when *name* is None."""
        targets = [self._drive(name)] if name is not None else list(self._drives.values())
        changes = self.advance(now)
        for drive in targets:
            drive.rt.pressure = 0.0
            changes.extend(self._applied("reset", drive, now))
        return changes

    # --- helpers --------------------------------------------------------------------

    def _rebanded(self, drive: _Drive, now: float) -> list[Event]:
        band = band_for(drive.ratio, drive.bands)
        if band == drive.band:
            return []
        before = drive.band
        drive.band = band
        rising_into_trigger = _band_index(before) < _TRIGGERED_INDEX <= _band_index(band)
        if rising_into_trigger:
            drive.rt.last_triggered = now
        return [self._band_change(drive, before, now)]

    def _band_change(self, drive: _Drive, before: Band, now: float) -> Event:
        return _event("band_changed", drive, now, from_band=before, to_band=drive.band)

    def _applied(
        self,
        kind: EventKind,
        drive: _Drive,
        now: float,
        depth: Depth | None = None,
        amount: float | None = None,
    ) -> list[Event]:
        """The discrete event itself, then the band crossing it caused (if any)."""
        drive.rt.last_event = now
        crossing = self._rebanded(drive, now)
        return [_event(kind, drive, now, depth=depth, amount=amount), *crossing]


def _event(kind: EventKind, drive: _Drive, now: float, **detail: Any) -> Event:
    """An event about *drive* as it is now (seq 0: the hub numbers it when publishing)."""
    return Event(
        seq=0,
        kind=kind,
        drive=drive.name,
        ts=now,
        pressure=drive.rt.pressure,
        ratio=drive.ratio,
        band=drive.band,
        **detail,
    )


def _check_amount(amount: float | None) -> None:
    if amount is not None and not (math.isfinite(amount) and amount >= 0.0):
        raise RequestFailed(E_BAD_REQUEST, f"amount must be a finite number >= 0, got {amount!r}")
