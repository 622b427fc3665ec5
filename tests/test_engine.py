"""The pure drive math: no I/O, the clock passed in."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctx._core.config import default_config, parse_config
from agentctx._core.errors import RequestFailed, UnknownDrive
from sidecar.engine import Engine, band_for
from sidecar.quiet import effective_hours

H = 3600.0
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def config(extra: str = "", **drives: str) -> object:
    body = extra + "\n" + "\n".join(f"[drives.{n}]\n{spec}" for n, spec in drives.items())
    return parse_config(body.encode(), "test.toml")


def engine(cfg_text: str = "", tz: object = UTC, **drives: str) -> Engine:
    cfg = config(cfg_text, **drives) if drives else default_config()
    return Engine.create(cfg, T0, tz=tz)  # type: ignore[arg-type]


def test_rate_times_hours() -> None:
    e = engine()
    e.advance(T0 + 2 * H)
    assert e.pressure("CARE") == pytest.approx(4.0)
    assert e.pressure("MAINTENANCE") == pytest.approx(3.0)
    assert e.pressure("WANDER") == pytest.approx(2.0)


def test_activity_driven_never_grows_with_time() -> None:
    e = engine()
    e.advance(T0 + 1000 * H)
    assert e.pressure("REST") == 0.0
    e.bump("REST", T0 + 1000 * H, 7.0)
    e.advance(T0 + 2000 * H)
    assert e.pressure("REST") == 7.0


def test_cap_at_threshold_times_ratio() -> None:
    e = engine()
    e.advance(T0 + 1000 * H)
    assert e.pressure("CARE") == 30.0  # 20 x 1.5
    assert e.max_pressure("CARE") == 30.0


def test_cap_follows_max_pressure_ratio() -> None:
    e = engine("[sidecar]\nmax_pressure_ratio = 2.5", A="threshold = 10\nrate_per_hour = 1")
    e.advance(T0 + 1000 * H)
    assert e.pressure("A") == 25.0
    assert e.band("A") == "emergency"


def test_bump_is_capped_like_time_growth() -> None:
    e = engine()
    e.bump("REST", T0, 1000.0)
    assert e.pressure("REST") == 45.0
    assert e.band("REST") == "crisis"  # emergency needs max_pressure_ratio >= 2


@pytest.mark.parametrize(
    ("depth", "left"), [("shallow", 14.0), ("moderate", 10.0), ("deep", 5.0), ("full", 0.0)]
)
def test_satisfy_depths(depth: str, left: float) -> None:
    e = engine()
    e.advance(T0 + 10 * H)  # CARE = 20
    e.satisfy("CARE", T0 + 10 * H, depth=depth)  # type: ignore[arg-type]
    assert e.pressure("CARE") == pytest.approx(left)


def test_satisfy_default_moderate_and_amount() -> None:
    e = engine()
    e.advance(T0 + 10 * H)
    e.satisfy("CARE", T0 + 10 * H)
    assert e.pressure("CARE") == pytest.approx(10.0)
    e.satisfy("CARE", T0 + 10 * H, amount=4.0)
    assert e.pressure("CARE") == pytest.approx(6.0)
    e.satisfy("CARE", T0 + 10 * H, amount=100.0)
    assert e.pressure("CARE") == 0.0


def test_satisfy_rejects_both_and_bad_values() -> None:
    e = engine()
    with pytest.raises(RequestFailed):
        e.satisfy("CARE", T0, depth="deep", amount=1.0)
    with pytest.raises(RequestFailed):
        e.satisfy("CARE", T0, depth="bogus")  # type: ignore[arg-type]
    with pytest.raises(RequestFailed):
        e.bump("CARE", T0, math.nan)
    with pytest.raises(UnknownDrive) as info:
        e.satisfy("NOPE", T0)
    assert "CARE" in str(info.value)


def test_reset_one_and_all() -> None:
    e = engine()
    e.advance(T0 + 5 * H)
    e.reset("CARE", T0 + 5 * H)
    assert e.pressure("CARE") == 0.0 and e.pressure("WANDER") > 0
    e.reset(None, T0 + 5 * H)
    assert all(e.pressure(n) == 0.0 for n in e.names)


def test_names_are_case_insensitive_for_requests() -> None:
    e = engine()
    e.bump("rest", T0, 3.0)
    assert e.pressure("REST") == 3.0


@pytest.mark.parametrize(
    ("ratio", "band"),
    [
        (0.0, "latent"),
        (0.29, "latent"),
        (0.3, "available"),
        (0.75, "elevated"),
        (1.0, "triggered"),
        (1.49, "triggered"),
        (1.5, "crisis"),
        (2.0, "emergency"),
        (9.0, "emergency"),
    ],
)
def test_bands(ratio: float, band: str) -> None:
    bands = {"available": 0.3, "elevated": 0.75, "triggered": 1.0, "crisis": 1.5, "emergency": 2.0}
    assert band_for(ratio, bands) == band


def test_per_drive_band_override() -> None:
    e = engine(A="threshold = 10\nactivity_driven = true\nbands = { elevated = 0.5 }")
    e.bump("A", T0, 5.0)
    assert e.band("A") == "elevated"


def test_status_triggered_satisfied_building() -> None:
    e = engine()
    e.advance(T0 + 10 * H)
    assert e.status("CARE", T0 + 10 * H) == "triggered"
    assert e.runtime()["CARE"].last_triggered is not None
    e.satisfy("CARE", T0 + 10 * H, depth="deep")
    assert e.status("CARE", T0 + 10 * H + 59) == "satisfied"
    assert e.status("CARE", T0 + 10 * H + 61) == "building"


def test_band_crossing_events() -> None:
    e = engine()
    changes = e.advance(T0 + 10 * H)
    care = [c for c in changes if c.drive == "CARE"]
    assert [(c.kind, c.from_band, c.to_band) for c in care] == [
        ("band_changed", "latent", "triggered"),
        ("triggered", None, None),  # and it fires: no cooldown, no quiet hours
    ]
    changes = e.satisfy("CARE", T0 + 10 * H, depth="full")
    assert [c.kind for c in changes] == ["satisfied", "band_changed"]
    assert changes[0].band == "latent" and changes[1].to_band == "latent"


def test_clock_going_back_grows_nothing_and_re_anchors() -> None:
    e = engine()
    e.advance(T0 + H)
    p = e.pressure("CARE")
    assert e.advance(T0) == []  # stepped back an hour: nothing grows, nothing shrinks
    assert e.pressure("CARE") == p and e.last_tick == T0
    e.advance(T0 + H)  # an hour after the step: an hour of growth, not none
    assert e.pressure("CARE") == pytest.approx(p + 2.0)
    # a satisfaction after the step is timed by the clock as it now is
    e.satisfy("CARE", T0 + H + 1, depth="shallow")
    assert e.status("CARE", e.last_tick) == "satisfied"


def test_rebase_credits_real_time_not_wall_clock_steps() -> None:
    e = engine()
    e.advance(T0 + H)
    assert not e.rebase(T0 + H + 10, 10.0)  # wall and real time agree: nothing to do
    # the wall clock jumps a day ahead while 10 real seconds pass: 10 s are credited
    assert e.rebase(T0 + 25 * H, 10.0)
    e.advance(T0 + 25 * H)
    assert e.pressure("CARE") == pytest.approx(2.0 + 2.0 * 10 / H)
    # and back again, 10 more real seconds later: 10 more seconds, nothing taken back
    assert e.rebase(T0 + H + 20, 10.0)
    e.advance(T0 + H + 20)
    assert e.pressure("CARE") == pytest.approx(2.0 + 2.0 * 20 / H)
    assert e.last_tick == T0 + H + 20


def test_quiet_hours_count_at_factor() -> None:
    e = engine(
        "[sidecar]\nquiet_hours = [23, 7]\nquiet_rate_factor = 0.25",
        A="threshold = 1000\nrate_per_hour = 1",
    )
    start = datetime(2026, 3, 1, 0, 0, tzinfo=UTC).timestamp()
    e = Engine.create(e.config, start, tz=UTC)
    e.advance(start + 24 * H)
    # 8 quiet hours (23-7) at 0.25 plus 16 normal hours
    assert e.pressure("A") == pytest.approx(16 + 8 * 0.25)


def test_quiet_hours_follow_local_time_and_dst() -> None:
    tz = ZoneInfo("Europe/Berlin")
    # the night DST starts (2026-03-29, 02:00 -> 03:00): 23:00 to 07:00 is 7 real hours
    start = datetime(2026, 3, 28, 23, 0, tzinfo=tz).timestamp()
    end = datetime(2026, 3, 29, 7, 0, tzinfo=tz).timestamp()
    assert (end - start) / H == pytest.approx(7.0)
    assert effective_hours(start, end, (23, 7), 0.5, tz) == pytest.approx(3.5)
    # a half-hour offset zone: boundaries on local hours
    ist = timezone(timedelta(hours=5, minutes=30))
    s = datetime(2026, 1, 1, 6, 30, tzinfo=ist).timestamp()
    assert effective_hours(s, s + 2 * H, (23, 7), 0.0, ist) == pytest.approx(1.5)


drives_strategy = st.fixed_dictionaries(
    {
        "rate": st.floats(0.0, 50.0),
        "threshold": st.floats(0.5, 100.0),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    spec=drives_strategy,
    start=st.floats(0.0, 86400.0 * 30),
    total=st.floats(1.0, 86400.0),
    chunks=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=50),
    quiet=st.one_of(
        st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda q: q[0] != q[1])
    ),
    factor=st.floats(0.0, 1.0),
)
def test_tick_granularity_does_not_change_pressure(
    spec: dict[str, float],
    start: float,
    total: float,
    chunks: list[float],
    quiet: tuple[int, int] | None,
    factor: float,
) -> None:
    """One big tick == many small ticks at random splits, quiet hours included."""
    extra = "[sidecar]\nmax_pressure_ratio = 1.5\n"
    if quiet is not None:
        extra += f"quiet_hours = [{quiet[0]}, {quiet[1]}]\nquiet_rate_factor = {factor!r}\n"
    cfg = config(extra, A=f"threshold = {spec['threshold']!r}\nrate_per_hour = {spec['rate']!r}")
    t0 = T0 + start
    one = Engine.create(cfg, t0, tz=UTC)  # type: ignore[arg-type]
    many = Engine.create(cfg, t0, tz=UTC)  # type: ignore[arg-type]
    one.advance(t0 + total)
    weights = sum(chunks)
    t = t0
    for c in chunks:
        t += total * c / weights
        many.advance(min(t, t0 + total))
    many.advance(t0 + total)
    assert many.pressure("A") == pytest.approx(one.pressure("A"), rel=1e-9, abs=1e-9)
    assert many.band("A") == one.band("A")


@settings(max_examples=5, deadline=None)
@given(rate=st.floats(0.1, 20.0))
def test_3600_one_second_ticks_equal_one_hour_tick(rate: float) -> None:
    cfg = config(
        "[sidecar]\nquiet_hours = [12, 13]\nquiet_rate_factor = 0.25",
        A=f"threshold = 1000\nrate_per_hour = {rate!r}",
    )
    t0 = datetime(2026, 3, 1, 11, 30, tzinfo=UTC).timestamp()  # straddles the quiet hour
    one = Engine.create(cfg, t0, tz=UTC)  # type: ignore[arg-type]
    many = Engine.create(cfg, t0, tz=UTC)  # type: ignore[arg-type]
    one.advance(t0 + H)
    for i in range(1, 3601):
        many.advance(t0 + i)
    assert many.pressure("A") == pytest.approx(one.pressure("A"), rel=1e-9)
    assert one.pressure("A") == pytest.approx(rate * (0.5 + 0.5 * 0.25))


def test_reconfigure_keeps_pressure_and_reports_bands() -> None:
    e = engine()
    e.advance(T0 + 5 * H)  # CARE = 10 (ratio 0.5)
    new = config(CARE="threshold = 10\nrate_per_hour = 2")
    changes = e.reconfigure(new, T0 + 5 * H)  # type: ignore[arg-type]
    assert e.pressure("CARE") == pytest.approx(10.0)
    assert e.names == ["CARE"]
    assert [(c.from_band, c.to_band) for c in changes] == [("available", "triggered")]


def test_names_fold_case_over_ascii_only_and_minus_zero_is_zero() -> None:
    e = engine(SLEEP="threshold = 10", IDLE="threshold = 10")
    assert e.pressure("sleep") == e.pressure("SLEEP")
    with pytest.raises(UnknownDrive):
        e.pressure("\u017fleep")  # U+017F (long s) upper-cases to "S"
    with pytest.raises(UnknownDrive):
        e.satisfy("\u0131dle", T0)  # U+0131 (dotless i) upper-cases to "I"
    (event,) = e.bump("SLEEP", T0, -0.0)
    assert event.amount is not None and math.copysign(1.0, event.amount) == 1.0


def test_triggers_fire_once_per_cooldown() -> None:
    """A drive oscillating around its threshold fires once per cooldown."""
    e = engine(A="threshold = 10\nactivity_driven = true\ncooldown_minutes = 30")
    fired: list[float] = []
    t = T0
    for _ in range(100):  # cross upward every 60 s for 100 minutes
        t += 30
        fired += [c.ts for c in e.bump("A", t, 10.0) if c.kind == "triggered"]
        t += 30
        e.satisfy("A", t, depth="full")
    assert [(f - T0) / 60 for f in fired] == [0.5, 30.5, 60.5, 90.5]  # minutes
    assert e.runtime()["A"].last_fired == fired[-1]


def test_quiet_hours_hold_a_trigger_until_they_end_or_emergency() -> None:
    quiet = "[sidecar]\nquiet_hours = [0, 6]\nmax_pressure_ratio = 3"
    night = datetime(2026, 3, 1, 2, 0, tzinfo=UTC).timestamp()
    e = Engine.create(config(quiet, A="threshold = 10\nactivity_driven = true"), night, tz=UTC)  # type: ignore[arg-type]
    assert not [c for c in e.bump("A", night, 12.0) if c.kind == "triggered"]  # crisis: held
    assert not [c for c in e.advance(night + 3 * H) if c.kind == "triggered"]  # 05:00 still
    (fired,) = [c for c in e.advance(night + 4 * H + 1) if c.kind == "triggered"]  # 06:00
    assert fired.ts == night + 4 * H + 1
    # a trigger held back until it reaches emergency fires then, quiet or not
    e = Engine.create(config(quiet, A="threshold = 10\nactivity_driven = true"), night, tz=UTC)  # type: ignore[arg-type]
    e.bump("A", night, 11.0)
    assert [c.kind for c in e.bump("A", night + 60, 10.0) if c.kind == "triggered"] == ["triggered"]
    # and one satisfied while held is let go: nothing fires when the hours end
    e = Engine.create(config(quiet, A="threshold = 10\nactivity_driven = true"), night, tz=UTC)  # type: ignore[arg-type]
    e.bump("A", night, 11.0)
    e.satisfy("A", night + 60, depth="full")
    assert not [c for c in e.advance(night + 5 * H) if c.kind == "triggered"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["satisfy", "bump", "reset"]), st.floats(0.0, 40.0)),
        min_size=1,
        max_size=40,
    )
)
def test_band_known_from_its_span_is_the_band_of_the_ratio(ops: list[tuple[str, float]]) -> None:
    # The engine keeps the span of ratios its current band covers and walks the bands
    # only when the ratio leaves it: after any sequence of changes the band, and the
    # crossings reported, must be those of walking the bands every time.
    bands = "bands = { available = 0.2, elevated = 0.5, triggered = 1.0, crisis = 1.7 }"
    e = engine(A=f"threshold = 10\nactivity_driven = true\n{bands}")
    spec = e.spec("A")
    band = e.band("A")
    for i, (op, amount) in enumerate(ops):
        now = T0 + i
        if op == "satisfy":
            changes = e.satisfy("A", now, amount=amount)
        elif op == "bump":
            changes = e.bump("A", now, amount)
        else:
            changes = e.reset("A", now)
        expected = band_for(e.ratio("A"), spec.band_ratios())
        assert e.band("A") == expected
        crossings = [(c.from_band, c.to_band) for c in changes if c.kind == "band_changed"]
        assert crossings == ([] if expected == band else [(band, expected)])
        band = expected


def test_band_span_edges() -> None:
    # exactly at a band's start is inside it; just below is the band before
    e = engine("[sidecar]\nmax_pressure_ratio = 3", A="threshold = 10\nactivity_driven = true")
    e.bump("A", T0, 10.0)  # ratio 1.0: triggered starts here
    assert e.band("A") == "triggered"
    e.satisfy("A", T0 + 1, amount=1e-9)
    assert e.band("A") == "elevated"
    e.bump("A", T0 + 2, 1e-9)
    assert e.band("A") == "triggered"
    e.bump("A", T0 + 3, 1000.0)  # capped at the maximum: the top band has no end
    assert e.band("A") == "emergency"
    e.reset("A", T0 + 4)  # zero: latent, which has no start
    assert e.band("A") == "latent"
