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
from datetime import tzinfo
from typing import Annotated, Final

import msgspec

from agentctx._core.config import BAND_ORDER, Config, DriveConfig
from agentctx._core.errors import E_BAD_REQUEST, RequestFailed, UnknownDrive
from agentctx._core.protocol import DEPTHS, Band, Depth, Event, EventKind, Status, drive_key
from sidecar.quiet import HOUR_S, effective_hours, is_quiet

__all__ = ["STEP_TOLERANCE_S", "DriveRuntime", "Engine", "Reading", "band_for"]

# Wall-clock time and real elapsed time may disagree by this much before the wall
# clock counts as stepped (both are read at the same moment, so jitter is tiny).
STEP_TOLERANCE_S: Final = 1.0
SECONDS_PER_MINUTE: Final = 60.0
LATENT: Final[Band] = "latent"
_TRIGGERED_INDEX: Final = BAND_ORDER.index("triggered") + 1  # +1: "latent" is index 0
_TRIGGERED_BANDS: Final = frozenset(BAND_ORDER[_TRIGGERED_INDEX - 1 :])  # triggered and up


Pressure = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
Instant = Annotated[float, msgspec.Meta(ge=0.0, le=1e11)]  # a Unix time, wall clock


class DriveRuntime(msgspec.Struct, kw_only=True):
    """What changes about a drive. The durable state stores exactly this (its bounds
    are checked when a state file is read back)."""

    pressure: Pressure = 0.0
    last_triggered: Instant | None = None
    last_satisfied: Instant | None = None
    last_event: Instant | None = None  # the last satisfy/bump/reset, whatever it was
    last_fired: Instant | None = None  # the last fired trigger (cooldown counts from it)
    held_since: Instant | None = None  # a trigger waiting for quiet hours to end


# (name, spec, runtime, ratio, band, max pressure, status): see Engine.readings
Reading = tuple[str, DriveConfig, DriveRuntime, float, Band, float, Status]


def band_for(ratio: float, bands: Mapping[str, float]) -> Band:
    """The highest band whose start ratio *ratio* has reached, else "latent"."""
    current = LATENT
    for name in BAND_ORDER:
        if ratio >= bands[name]:
            current = name
    return current


def _band_index(band: Band) -> int:
    return 0 if band == LATENT else BAND_ORDER.index(band) + 1


@dataclass(slots=True)
class _Drive:
    name: str
    spec: DriveConfig
    bands: dict[str, float]
    cap: float
    rt: DriveRuntime
    band: Band = LATENT
    # The ratios the current band spans, [lo, hi): while the ratio stays inside, the
    # band is known without walking the bands (asked at every change).
    band_lo: float = -math.inf
    band_hi: float = math.inf

    @property
    def ratio(self) -> float:
        return self.rt.pressure / self.spec.threshold

    def enter(self, band: Band) -> None:
        """Take *band* and the span of ratios it covers (the bands' starts increase)."""
        i = _band_index(band)  # 0: latent, below BAND_ORDER[0]
        self.band = band
        self.band_lo = self.bands[BAND_ORDER[i - 1]] if i else -math.inf
        self.band_hi = self.bands[BAND_ORDER[i]] if i < len(BAND_ORDER) else math.inf


@dataclass(slots=True)
class Engine:
    """The drives of one agent, advanced by wall-clock time passed in by the caller."""

    config: Config
    last_tick: float
    tz: tzinfo | None = None
    _drives: dict[str, _Drive] = field(default_factory=dict)
    # Drives a config no longer has, as they were: a drive removed by mistake and
    # added back comes back where it was.
    _retired: dict[str, DriveRuntime] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        config: Config,
        now: float,
        runtime: Mapping[str, DriveRuntime] | None = None,
        tz: tzinfo | None = None,
        retired: Mapping[str, DriveRuntime] | None = None,
    ) -> Engine:
        engine = cls(config=config, last_tick=now, tz=tz, _retired=dict(retired or {}))
        engine._install(config, runtime or {})
        return engine

    def _install(self, config: Config, runtime: Mapping[str, DriveRuntime]) -> list[Event]:
        """Adopt *config*, keeping the pressure of every drive that survives (capped at
        its new maximum) and retiring the runtime of every drive that does not."""
        ratio_cap = config.sidecar.max_pressure_ratio
        old = self._drives
        pool = {**self._retired, **runtime}
        self.config = config
        self._drives = {}
        changes: list[Event] = []
        for name, spec in config.drives.items():
            bands = spec.band_ratios()
            rt = pool.pop(name, None) or DriveRuntime()
            drive = _Drive(name, spec, bands, spec.threshold * ratio_cap, rt)
            rt.pressure = min(rt.pressure, drive.cap)  # a lowered threshold lowers the cap
            drive.enter(band_for(drive.ratio, bands))
            self._drives[name] = drive
            before = old.get(name)
            if before is not None and before.band != drive.band:
                changes.append(self._band_change(drive, before.band, self.last_tick))
        self._retired = pool
        return changes

    # --- queries ------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._drives)

    def spec(self, name: str) -> DriveConfig:
        return self._drive(name).spec

    def retired(self) -> dict[str, DriveRuntime]:
        """A copy of the runtime values of drives the config no longer has."""
        return {n: msgspec.structs.replace(rt) for n, rt in self._retired.items()}

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

    def status(self, name: str, now: float) -> Status:
        """emergence's status: triggered, else satisfied (for a while), else building."""
        key = self._drive(name).name
        return next(r[6] for r in self.readings(now) if r[0] == key)

    def readings(self, now: float) -> list[Reading]:
        """Every drive as it stands, in one pass: what a published state is built from
        (on the path of every push, so no call per drive: see sidecar/hub.py)."""
        hold = self.config.sidecar.satisfied_hold_s
        out: list[Reading] = []
        for name, drive in self._drives.items():
            rt = drive.rt
            last = rt.last_satisfied
            status: Status = (  # emergence's: see status()
                "triggered"
                if drive.band in _TRIGGERED_BANDS
                else "satisfied"
                if last is not None and 0.0 <= now - last < hold
                else "building"
            )
            ratio = rt.pressure / drive.spec.threshold
            out.append((name, drive.spec, rt, ratio, drive.band, drive.cap, status))
        return out

    def _drive(self, name: str) -> _Drive:
        # Keys are drive_key()s, and drive_key of a key is itself: a name that is a key
        # (the hub's, building every state) needs no normalising.
        drive = self._drives.get(name) or self._drives.get(drive_key(name))
        if drive is None:
            raise UnknownDrive(name, self._drives)
        return drive

    # --- time ---------------------------------------------------------------------

    def advance(self, now: float) -> list[Event]:
        """Grow every time-driven drive up to *now*; return the band crossings.

        A wall clock that went back grows nothing and re-anchors the engine at *now*:
        pressure never goes backwards, no hour is counted twice, and what happens next
        (a satisfaction, its `satisfied` status) is timed by the clock as it now is.
        """
        if now <= self.last_tick:
            self.last_tick = now
            return []
        s = self.config.sidecar
        quiet = s.quiet_hours
        if quiet is None:  # effective_hours() without the call (on every request's path)
            hours = (now - self.last_tick) / HOUR_S
        else:
            hours = effective_hours(self.last_tick, now, quiet, s.quiet_rate_factor, self.tz)
        self.last_tick = now
        changes: list[Event] = []
        for drive in self._drives.values():
            if drive.spec.activity_driven or drive.spec.rate_per_hour == 0.0:
                continue
            p = drive.rt.pressure
            if p < drive.cap:
                drive.rt.pressure = min(p + drive.spec.rate_per_hour * hours, drive.cap)
            changes.extend(self._rebanded(drive, now))
        for drive in self._drives.values():  # triggers held back by quiet hours
            if drive.rt.held_since is not None:
                changes.extend(self._consider(drive, now))
        return changes

    def rebase(self, now: float, elapsed: float) -> bool:
        """The wall clock says *now*, but only *elapsed* real seconds (read from a clock
        that wall-clock steps cannot move) passed since the last tick. When the two
        disagree the wall clock was stepped (NTP, a bad RTC): move the last tick so the
        next `advance(now)` credits exactly *elapsed*. True when it did."""
        if abs((now - self.last_tick) - elapsed) <= STEP_TOLERANCE_S:
            return False
        self.last_tick = now - max(0.0, elapsed)
        return True

    def reconfigure(self, config: Config, now: float) -> list[Event]:
        """Catch up to *now* under the old config, then switch, keeping pressures
        (see `_install`)."""
        changes = self.advance(now)
        runtime = {n: d.rt for n, d in self._drives.items()}
        changes.extend(self._install(config, runtime))
        return changes

    # --- discrete events ------------------------------------------------------------

    def satisfy(
        self, name: str, now: float, depth: Depth | None = None, amount: float | None = None
    ) -> list[Event]:
        """Cut pressure by a depth (default moderate) or by an absolute amount."""
        drive = self._drives.get(name) or self._drive(name)
        if depth is not None and amount is not None:
            raise RequestFailed(E_BAD_REQUEST, "give a depth or an amount, not both")
        if depth is not None and depth not in DEPTHS:
            raise RequestFailed(
                E_BAD_REQUEST, f"unknown depth {depth!r} (expected {', '.join(DEPTHS)})"
            )
        amount = _checked(amount)
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
        drive = self._drives.get(name) or self._drive(name)
        added = _checked(amount)
        assert added is not None
        changes = self.advance(now)
        p = drive.rt.pressure
        drive.rt.pressure = max(p, min(p + added, drive.cap))
        return changes + self._applied("bumped", drive, now, amount=added)

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
        ratio = drive.rt.pressure / drive.spec.threshold
        if drive.band_lo <= ratio < drive.band_hi:
            return []  # still in its band
        band = band_for(ratio, drive.bands)
        before = drive.band
        drive.enter(band)
        rising_into_trigger = _band_index(before) < _TRIGGERED_INDEX <= _band_index(band)
        changes = [self._band_change(drive, before, now)]
        if rising_into_trigger:
            drive.rt.last_triggered = now
            changes += self._consider(drive, now)
        elif drive.rt.held_since is not None:  # reaching emergency, or falling back
            changes += self._consider(drive, now)
        return changes

    def _consider(self, drive: _Drive, now: float) -> list[Event]:
        """A trigger (the ratio rose to 1), or one held back: fire it, hold it, or let it
        go. It fires unless within the drive's cooldown of its last fired trigger, or in
        quiet hours below `emergency`; held back by quiet hours, it fires when they end
        if the drive is still triggered, or at once when it reaches `emergency`."""
        rt = drive.rt
        if _band_index(drive.band) < _TRIGGERED_INDEX:
            rt.held_since = None  # satisfied meanwhile: nothing left to fire
            return []
        cooldown = drive.spec.cooldown_minutes * SECONDS_PER_MINUTE
        if rt.last_fired is not None and 0.0 <= now - rt.last_fired < cooldown:
            rt.held_since = None
            return []
        s = self.config.sidecar
        if drive.band != "emergency" and is_quiet(now, s.quiet_hours, self.tz):
            if rt.held_since is None:
                rt.held_since = now
            return []
        rt.held_since = None
        rt.last_fired = now
        return [_event("triggered", drive, now)]

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


def _event(
    kind: EventKind,
    drive: _Drive,
    now: float,
    *,
    depth: Depth | None = None,
    amount: float | None = None,
    from_band: Band | None = None,
    to_band: Band | None = None,
) -> Event:
    """An event about *drive* as it is now (seq 0: the hub numbers it when publishing)."""
    pressure = drive.rt.pressure
    return Event(
        seq=0,
        kind=kind,
        drive=drive.name,
        ts=now,
        pressure=pressure,
        ratio=pressure / drive.spec.threshold,
        band=drive.band,
        depth=depth,
        amount=amount,
        from_band=from_band,
        to_band=to_band,
    )


def _checked(amount: float | None) -> float | None:
    """*amount* if it is a finite number >= 0, with -0.0 made 0.0 (it would be published
    as "-0.0"); RequestFailed otherwise."""
    if amount is None:
        return None
    if not (math.isfinite(amount) and amount >= 0.0):
        raise RequestFailed(E_BAD_REQUEST, f"amount must be a finite number >= 0, got {amount!r}")
    return amount + 0.0
