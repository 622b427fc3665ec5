"""Quiet-hours integration: the closed formula against a plain hour-by-hour walk."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.quiet import HOUR_S, effective_hours

ZONES: list[tzinfo] = [
    UTC,
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute DST shift
    ZoneInfo("Asia/Kolkata"),  # a half-hour offset, no DST
    ZoneInfo("Africa/Casablanca"),  # DST suspended around Ramadan: four changes a year
    timezone(timedelta(hours=-3, minutes=-30)),
]


def reference(t0: float, t1: float, quiet: tuple[int, int], factor: float, tz: tzinfo) -> float:
    """The obvious algorithm: walk local hour boundaries, weigh each piece by its hour."""
    total = 0.0
    t = t0
    while t < t1:
        local = datetime.fromtimestamp(t, tz)
        offset = local.utcoffset()
        shift = offset.total_seconds() if offset is not None else 0.0
        boundary = t - math.fmod(t + shift, HOUR_S) + HOUR_S
        if boundary <= t:
            boundary = t + HOUR_S
        end = min(boundary, t1)
        start_h, end_h = quiet
        hour = local.hour
        inside = start_h <= hour < end_h if start_h < end_h else hour >= start_h or hour < end_h
        total += (end - t) * (factor if inside else 1.0)
        t = end
    return total / HOUR_S


T2026 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(0, 365 * 86400),
    span=st.floats(0, 120 * 86400),
    quiet=st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda q: q[0] != q[1]),
    factor=st.sampled_from([0.0, 0.25, 0.5]),
    zone=st.sampled_from(range(len(ZONES))),
)
def test_matches_the_hour_by_hour_walk(
    start: float, span: float, quiet: tuple[int, int], factor: float, zone: int
) -> None:
    tz = ZONES[zone]
    t0 = T2026 + start
    got = effective_hours(t0, t0 + span, quiet, factor, tz)
    assert got == pytest.approx(reference(t0, t0 + span, quiet, factor, tz), abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0, 400 * 86400), b=st.floats(0, 400 * 86400), c=st.floats(0, 400 * 86400))
def test_additive(a: float, b: float, c: float) -> None:
    t0, t1, t2 = sorted(T2026 + x for x in (a, b, c))
    tz = ZoneInfo("Europe/Berlin")
    whole = effective_hours(t0, t2, (23, 7), 0.25, tz)
    parts = effective_hours(t0, t1, (23, 7), 0.25, tz) + effective_hours(t1, t2, (23, 7), 0.25, tz)
    assert parts == pytest.approx(whole, abs=1e-6)


def test_a_decade_of_downtime_is_a_few_hundred_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a timing target: a count. The old hour-by-hour walk made 87 600 steps here."""
    tz = ZoneInfo("America/New_York")
    calls = 0
    real = datetime.fromtimestamp

    class Counting(datetime):
        @classmethod
        def fromtimestamp(cls, t: float, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            nonlocal calls
            calls += 1
            return real(t, tz)

    monkeypatch.setattr("sidecar.quiet.datetime", Counting)
    t0 = time.time()
    hours = effective_hours(t0, t0 + 10 * 365 * 86400, (23, 7), 0.25, tz)
    monkeypatch.undo()
    assert hours == pytest.approx(reference(t0, t0 + 10 * 365 * 86400, (23, 7), 0.25, tz))
    assert calls < 2000, calls  # ~52 weekly probes a year plus ~2 x 20 bisections
