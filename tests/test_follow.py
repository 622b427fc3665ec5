"""follow(): the blocking follower, against a real daemon, through kill -9, a hung
daemon and a replaced runtime dir; never an older seq; close() from another thread."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import BUCKET, FAST
from followers import KillAndFallBack, write_snapshot
from support import DaemonProcess

import agentctx
from agentctx.follower import Follower
from agentctx.state import DriveEvent, DriveState, Transition

Factory = Callable[..., DaemonProcess]
WAIT = 30.0  # seconds any one test may take before it counts as hung


def within(
    updates: Follower, seconds: float = WAIT
) -> Iterator[DriveState | DriveEvent | Transition]:
    """The updates, closing the follower (from a timer thread) if the test hangs."""
    timer = threading.Timer(seconds, updates.close)
    timer.start()
    try:
        yield from updates
    finally:
        timer.cancel()


def test_follow_survives_kill9_follows_the_file_and_never_goes_back(
    make_daemon: Factory,
) -> None:
    scenario = KillAndFallBack(make_daemon({"F": FAST}, tick_interval=0.05))
    with agentctx.follow(reconnect_max=0.2, backstop=0.5) as updates:
        finished = any(scenario.on(u) for u in within(updates))  # stops at the first True
    assert finished, scenario
    scenario.check()


def test_follow_starts_in_fallback_then_goes_live_with_events(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    got_event = False
    with agentctx.follow(reconnect_max=0.1) as updates:
        first = next(updates)
        assert isinstance(first, Transition) and first.mode == "fallback"
        state = next(updates)
        assert isinstance(state, DriveState) and state.source == "file"
        d.start()
        for u in within(updates):
            if isinstance(u, Transition):
                assert u.mode == "live"
                agentctx.bump("B", 2.0)
            elif isinstance(u, DriveEvent):
                assert u.kind == "bumped" and u.drive == "B"
                got_event = True
                break
    assert got_event


@pytest.mark.parametrize("mode", ["live", "fallback"])
def test_close_from_another_thread_is_immediate(make_daemon: Factory, mode: str) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)  # live: nothing comes for an hour
    if mode == "fallback":
        d.stop()
    updates = agentctx.follow(reconnect_min=3600)
    seen: list[object] = []
    ended = threading.Event()

    def run() -> None:
        seen.extend(updates)
        ended.set()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not any(isinstance(u, DriveState) for u in seen):  # now blocked in recv / poll
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    t0 = time.monotonic()
    updates.close()
    assert ended.wait(WAIT)
    assert time.monotonic() - t0 < 1.0
    thread.join()
    assert updates.mode == mode
    assert list(updates) == []  # closed: iterating again ends at once


def test_a_second_thread_iterating_the_same_follower_is_refused(make_daemon: Factory) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    updates = agentctx.follow()
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.extend(updates))
    reader.start()
    try:
        deadline = time.monotonic() + WAIT
        while not any(isinstance(u, DriveState) for u in seen):  # now blocked in recv
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
        with pytest.raises(RuntimeError, match="another thread"):
            next(updates)
    finally:
        updates.close()
        reader.join(WAIT)
    assert not reader.is_alive()


def test_a_hung_daemon_counts_as_down(make_daemon: Factory) -> None:
    """SIGSTOP: the socket stays open but nothing comes; after a few tick intervals
    (at least STALE_MIN_S) the follower says fallback, and is live again after SIGCONT."""
    d = make_daemon({"B": BUCKET}, tick_interval=0.2)
    modes: list[tuple[str, str]] = []
    with agentctx.follow(reconnect_max=0.2) as updates:
        for u in within(updates):
            if isinstance(u, Transition):
                modes.append((u.mode, u.reason))
                if u.mode == "fallback":
                    d.signal(signal.SIGCONT)
                elif len(modes) > 1:
                    break
            elif isinstance(u, DriveState) and len(modes) == 1:
                d.signal(signal.SIGSTOP)
    assert [m for m, _ in modes] == ["live", "fallback", "live"]
    assert "no state from the sidecar" in modes[1][1]


def test_live_enters_with_the_snapshot_when_the_daemon_is_hung(make_daemon: Factory) -> None:
    """A socket that accepts and stays silent (SIGSTOP, or socket activation still
    starting) costs the connect timeout: entering `Live` outlasts it, so the snapshot
    is in hand by then."""
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.signal(signal.SIGSTOP)
    try:
        with agentctx.Live() as live:
            assert live.state is not None and live.state.source == "file", live.mode
    finally:
        d.signal(signal.SIGCONT)


def test_fallback_survives_a_replaced_runtime_dir(tmp_path: Path) -> None:
    """No daemon, no runtime dir at first; it appears, is removed, and comes back."""
    run = tmp_path / "run"
    snap = run / "drives-state.json"
    base = {"tick_interval": 1.0, "drives": {}}
    got: list[int] = []
    with Follower(socket_path=run / "sidecar.sock", snapshot_path=snap, backstop=0.2) as updates:
        first = next(updates)
        assert isinstance(first, Transition) and first.mode == "fallback"
        run.mkdir(mode=0o700)
        write_snapshot(snap, base, 5)
        for u in within(updates):
            if not isinstance(u, DriveState):
                continue
            got.append(u.seq)
            if u.seq == 5:
                write_snapshot(snap, base, 3)  # older: never handed out
                time.sleep(0.3)
                shutil.rmtree(run)
                run.mkdir(mode=0o700)
                time.sleep(0.5)  # the follower notices at its backstop at the latest
                write_snapshot(snap, base, 6)
            elif u.seq == 6:
                break
    assert got == [5, 6]


def test_live_closes_at_once_in_fallback(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    with agentctx.Live() as live:
        assert live.state is not None and live.mode == "fallback"
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0
    assert live.error is None
