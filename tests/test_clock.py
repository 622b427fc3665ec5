"""Wall-clock steps, with a real daemon whose clock libfaketime steps while it runs.

Pressure follows the time that really passed (CLOCK_BOOTTIME, which libfaketime
leaves alone here): it never runs ahead on a forward step and never goes back on a
backward one; a satisfaction after a backward step shows as satisfied; a state
stamped in a reader's future is never shown as fresh; a spooled request stamped in
the future is applied now, not then.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST
from hypothesis import given, settings
from hypothesis import strategies as st
from support import DaemonProcess, run_module

from sidecar.clock import iso

Factory = Callable[..., DaemonProcess]

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


class FakeClock:
    """The offset file libfaketime re-reads at every call ("+0", "-1h", "+1d")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set("+0")

    def set(self, offset: str) -> None:
        self.path.write_text(offset + "\n")

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {
            **base,
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            # the monotonic and boot clocks stay real: timers work, steps are visible
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@pytest.fixture
def clock(env: dict[str, str], dirs: dict[str, Path]) -> Iterator[FakeClock]:
    if not LIBFAKETIME.exists():
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME}; Debian package faketime)")
    fake = FakeClock(dirs["root"] / "faketime")
    env.update(fake.env({}))  # daemons started by make_daemon run on the fake clock
    yield fake
    for name in os.listdir("/dev/shm"):  # libfaketime leaves one per faked process
        if "faketime" in name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join("/dev/shm", name))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The `agentctx` CLI, on the same (fake) clock as the daemon."""
    return run_module("agentctx", env, *args)


def status(env: dict[str, str]) -> dict[str, Any]:
    out = cli(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_steps_back_and_forth_follow_real_time(make_daemon: Factory, clock: FakeClock) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.2)  # FAST grows 1.0 per real second
    env = d.env
    start = time.monotonic()  # before the first read: its state can be a tick older
    first = status(env)
    clock.set("-1h")  # NTP steps the clock back an hour
    time.sleep(1.0)
    back = status(env)
    grown = back["drives"]["FAST"]["pressure"] - first["drives"]["FAST"]["pressure"]
    real = time.monotonic() - start
    assert 0.0 < grown <= real + 0.5  # never backwards, never the hour
    assert not back["stale"] and back["age_s"] < 1.0  # a fresh live state, not "-1 h old"
    assert cli(env, "satisfy", "FAST", "--depth", "shallow").returncode == 0
    assert status(env)["drives"]["FAST"]["status"] == "satisfied"  # timed by the new clock
    clock.set("+1d")  # a bad RTC jumps a day ahead...
    time.sleep(1.0)
    clock.set("+0")  # ...and back
    time.sleep(1.0)
    last = status(env)
    grown = last["drives"]["FAST"]["pressure"] - first["drives"]["FAST"]["pressure"]
    assert grown <= time.monotonic() - start + 0.5  # no day of growth (it would cap at 150)
    assert "stepped" in d.log_text()


def test_restart_in_the_same_boot_credits_the_real_downtime(
    make_daemon: Factory, clock: FakeClock
) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=3600)
    before = status(d.env)["drives"]["FAST"]["pressure"]
    d.stop()
    stopped = time.monotonic()
    clock.set("+1d")  # the clock jumps while the daemon is down
    time.sleep(1.0)
    d.start()
    after = status(d.env)["drives"]["FAST"]["pressure"]
    assert after - before <= time.monotonic() - stopped + 1.0  # seconds, not a day


def test_a_snapshot_stamped_in_the_future_is_stale(make_daemon: Factory, clock: FakeClock) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.2)
    d.stop()
    clock.set("-1h")  # the daemon is down, and the clock goes back an hour
    data = status(d.env)
    assert data["source"] == "file" and data["stale"] and data["age_s"] == 0.0
    text = cli(d.env, "context").stdout
    assert "in the future" in text and "STALE" in text


def test_a_request_spooled_in_the_future_is_applied_now(
    make_daemon: Factory, clock: FakeClock
) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=3600)
    before = status(d.env)
    d.stop()
    clock.set("+1d")
    assert "queued" in cli(d.env, "satisfy", "FAST", "--depth", "full").stdout  # made "tomorrow"
    clock.set("+0")
    d.start()
    after = status(d.env)
    fast = after["drives"]["FAST"]
    assert fast["last_satisfied"] is not None
    satisfied_at = datetime.fromisoformat(fast["last_satisfied"])
    assert satisfied_at.timestamp() <= after["tick_ts"]  # clamped to now, not tomorrow
    assert after["tick_ts"] <= time.time() + 1.0 and not after["stale"]
    assert fast["pressure"] < before["drives"]["FAST"]["pressure"] + 5.0


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(0.0, 1e11),
        st.integers(0, 10**11).map(float),  # whole seconds: no fraction at all
        # halves and near-halves of a microsecond, and just below a whole second
        st.builds(
            float.__add__,
            st.integers(0, 10**11).map(float),
            st.sampled_from([5e-7, 4.999999e-7, 0.9999995, 0.9999999, 0.5, 1.5e-6]),
        ),
    )
)
def test_iso_writes_what_datetime_writes(ts: float) -> None:
    # Built from a cached whole second plus the microseconds, for speed: it must be
    # the very string datetime gives, rounding included (half to even, into the next
    # second, no fraction when it is zero).
    assert iso.__wrapped__(ts) == datetime.fromtimestamp(ts, UTC).isoformat()
    assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat()
    assert iso(None) is None
