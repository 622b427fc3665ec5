"""Quiet hours: how many *effective* hours lie between two instants. Pure math.

During quiet hours (local wall-clock hours, e.g. [23, 7]) time counts x `factor`.
The result depends only on the two instants, never on how often it is asked, so
`effective(a, b) + effective(b, c) == effective(a, c)`: a 1 s tick, a 900 s tick and
a month of downtime caught up at start give the same pressure (docs/design.md,
"Drive math").

The cost does not grow with the hours in between. Between two changes of the UTC
offset (DST), local time is UTC plus a constant, so the quiet windows repeat every
24 h and their overlap with an interval is a closed formula. Offset changes are
found by probing every OFFSET_PROBE_S and bisecting to the second: a year of
downtime costs about a hundred offset look-ups, one tick two.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import Final

__all__ = ["DAY_S", "HOUR_S", "OFFSET_PROBE_S", "effective_hours", "is_quiet", "quiet_seconds"]

HOUR_S: Final = 3600.0
DAY_S: Final = 86400.0
# No time zone changes its offset twice within a week (the closest real pairs, such
# as Morocco's around Ramadan, are about a month apart), so a probe a week apart
# that sees the same offset has seen no change in between.
OFFSET_PROBE_S: Final = 7 * DAY_S


def effective_hours(
    t0: float, t1: float, quiet: tuple[int, int] | None, factor: float, tz: tzinfo | None
) -> float:
    """Hours from *t0* to *t1* (Unix times), quiet local hours counting x *factor*.
    *tz* None means the system's local time zone. 0 when t1 <= t0."""
    if t1 <= t0:
        return 0.0
    span = t1 - t0
    if quiet is None or factor == 1.0:
        return span / HOUR_S
    return (span - (1.0 - factor) * quiet_seconds(t0, t1, quiet, tz)) / HOUR_S


def is_quiet(t: float, quiet: tuple[int, int] | None, tz: tzinfo | None) -> bool:
    """Whether the instant *t* falls in the local quiet hours [start, end)."""
    if quiet is None:
        return False
    lo, hi = quiet[0] * HOUR_S, quiet[1] * HOUR_S
    r = (t + _utc_offset(t, tz)) % DAY_S
    return lo <= r < hi if lo < hi else r >= lo or r < hi


def quiet_seconds(t0: float, t1: float, quiet: tuple[int, int], tz: tzinfo | None) -> float:
    """Seconds of [t0, t1) that fall in the local hours [start, end) (wrapping midnight)."""
    lo, hi = quiet[0] * HOUR_S, quiet[1] * HOUR_S
    total = 0.0
    for a, b, offset in _constant_offset_spans(t0, t1, tz):
        total += _window_measure(b + offset, lo, hi) - _window_measure(a + offset, lo, hi)
    return total


def _utc_offset(t: float, tz: tzinfo | None) -> float:
    local = datetime.fromtimestamp(t, tz).astimezone(tz)
    offset = local.utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _constant_offset_spans(
    t0: float, t1: float, tz: tzinfo | None
) -> list[tuple[float, float, float]]:
    """[t0, t1) cut where the UTC offset changes: (start, end, offset) pieces."""
    spans = []
    a = t0
    offset = _utc_offset(a, tz)
    while a < t1:
        b = min(a + OFFSET_PROBE_S, t1)
        if _utc_offset(b, tz) == offset:
            spans.append((a, b, offset))
            a = b
            continue
        change = _change_between(a, b, offset, tz)
        spans.append((a, change, offset))
        a = change
        offset = _utc_offset(a, tz)
    return spans


def _change_between(a: float, b: float, offset: float, tz: tzinfo | None) -> float:
    """The instant in (a, b] where the offset stops being *offset*. Offsets change on
    whole seconds: bisect to half a second, then take the whole second in between."""
    lo, hi = a, b
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if _utc_offset(mid, tz) == offset:
            lo = mid
        else:
            hi = mid
    second = float(math.floor(hi))
    return second if second > lo else hi


def _window_measure(x: float, lo: float, hi: float) -> float:
    """Seconds of local time [0, x) (x in seconds since a local midnight epoch) that
    fall inside the daily window [lo, hi), or [lo, 24h) + [0, hi) when lo > hi."""
    days = math.floor(x / DAY_S)
    r = x - days * DAY_S
    if lo < hi:
        per_day = hi - lo
        part = min(max(r - lo, 0.0), per_day)
    else:
        per_day = (DAY_S - lo) + hi
        part = min(r, hi) + max(r - lo, 0.0)
    return days * per_day + part
