"""subscribe() on asyncio and trio, through kill -9 and back; Live in a thread."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import BUCKET, FAST
from followers import KillAndFallBack
from support import DaemonProcess

import agentctx
from agentctx._core.files import atomic_write
from agentctx.state import DriveEvent, DriveState, Transition

Factory = Callable[..., DaemonProcess]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_subscribe_survives_kill9_and_follows_the_file(make_daemon: Factory) -> None:
    scenario = KillAndFallBack(make_daemon({"F": FAST}, tick_interval=0.05))
    with anyio.fail_after(40):
        async with agentctx.subscribe(reconnect_max=0.2, backstop=0.5) as updates:
            async for u in updates:
                if scenario.on(u):
                    break
    scenario.check()


@pytest.mark.anyio
async def test_subscribe_starts_in_fallback_and_events_arrive(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    got_event = False
    with anyio.fail_after(30):
        async with agentctx.subscribe(reconnect_max=0.1) as updates:
            first = await updates.__anext__()
            assert isinstance(first, Transition) and first.mode == "fallback"
            state = await updates.__anext__()
            assert isinstance(state, DriveState) and state.source == "file"
            d.start()
            async for u in updates:
                if isinstance(u, Transition):
                    assert u.mode == "live"
                    await anyio.to_thread.run_sync(lambda: agentctx.bump("B", 2.0))
                if isinstance(u, DriveEvent):
                    assert u.kind == "bumped" and u.drive == "B"
                    got_event = True
                    break
    assert got_event


@pytest.mark.anyio
async def test_closing_is_immediate_in_fallback(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    async with agentctx.subscribe() as updates:
        async for u in updates:
            if isinstance(u, DriveState):
                break
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0  # the watcher thread got its stop event


def test_subscribe_needs_async_with() -> None:
    sub = agentctx.subscribe()

    async def bare() -> None:
        async for _ in sub:
            pass

    with pytest.raises(RuntimeError, match="async with"):
        anyio.run(bare)


def test_live_in_a_thread(make_daemon: Factory) -> None:
    make_daemon({"B": BUCKET}, tick_interval=0.2)
    with agentctx.Live() as live:
        assert live.state is not None  # entering waited for the first state
        assert live.mode == "live"
        deadline = time.monotonic() + 10
        agentctx.bump("B", 3.0)
        while live.state.drives["B"]["pressure"] != 3.0:
            assert time.monotonic() < deadline
            live.wait(1.0)
        assert any(e.kind == "bumped" for e in live.events)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 2.0
    assert live.wait(0.05) is not None  # closed: returns at once with the last state


@pytest.mark.anyio
async def test_fallback_without_any_runtime_dir_waits_for_it(tmp_path: Path) -> None:
    """No daemon and no runtime dir at all: the subscription waits (no crash) and picks
    the snapshot up once it appears."""
    run = tmp_path / "not-yet"
    with anyio.fail_after(20):
        async with agentctx.subscribe(
            socket_path=run / "sidecar.sock", snapshot_path=run / "drives-state.json", backstop=0.2
        ) as updates:
            first = await updates.__anext__()
            assert isinstance(first, Transition) and first.mode == "fallback"
            await anyio.sleep(0.5)
            run.mkdir(mode=0o700)
            data = {"seq": 5, "tick_ts": time.time(), "tick_interval": 1.0, "drives": {}}
            atomic_write(run / "drives-state.json", json.dumps(data).encode(), durable=False)
            state = await updates.__anext__()
            assert isinstance(state, DriveState) and state.seq == 5 and state.source == "file"


def test_live_over_the_snapshot_alone_has_a_state_at_once(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    with agentctx.Live() as live:
        assert live.state is not None and live.state.source == "file"


@pytest.mark.anyio
async def test_a_hung_daemon_counts_as_down_even_for_a_reader_that_keeps_timing_out(
    make_daemon: Factory,
) -> None:
    """SIGSTOP: the socket stays open but nothing comes. A reader that cancels its wait
    every 0.3 s (as `agentctx watch` does to redraw) still hears "fallback" after a few
    tick intervals (at least STALE_MIN_S), and "live" again after SIGCONT."""
    d = make_daemon({"B": BUCKET}, tick_interval=0.2)
    modes: list[tuple[str, str]] = []
    with anyio.fail_after(40):
        async with agentctx.subscribe(reconnect_max=0.2) as updates:
            while len(modes) < 3:
                u = None
                with anyio.move_on_after(0.3):
                    u = await updates.__anext__()
                if isinstance(u, Transition):
                    modes.append((u.mode, u.reason))
                    if u.mode == "fallback":
                        d.signal(signal.SIGCONT)
                elif isinstance(u, DriveState) and len(modes) == 1:
                    d.signal(signal.SIGSTOP)
    assert [m for m, _ in modes] == ["live", "fallback", "live"]
    assert "no state from the sidecar" in modes[1][1]


@pytest.mark.anyio
async def test_fallback_survives_a_replaced_runtime_dir_and_never_goes_back(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    snap = run / "drives-state.json"
    base = {"tick_interval": 1.0, "drives": {}}

    def write(seq: int) -> None:
        data = {**base, "seq": seq, "tick_ts": time.time()}
        atomic_write(snap, json.dumps(data).encode(), durable=False)

    got: list[int] = []
    with anyio.fail_after(30):
        async with agentctx.subscribe(
            socket_path=run / "sidecar.sock", snapshot_path=snap, backstop=0.2
        ) as updates:
            run.mkdir(mode=0o700)
            write(5)
            async for u in updates:
                if not isinstance(u, DriveState):
                    continue
                got.append(u.seq)
                if u.seq == 5:
                    write(3)  # older: never handed out
                    await anyio.sleep(0.3)
                    shutil.rmtree(run)
                    run.mkdir(mode=0o700)
                    await anyio.sleep(0.5)  # noticed at the backstop at the latest
                    write(6)
                elif u.seq == 6:
                    break
    assert got == [5, 6]


@pytest.mark.anyio
async def test_entering_an_open_subscription_again_is_refused(make_daemon: Factory) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    updates = agentctx.subscribe()
    async with updates:
        with pytest.raises(RuntimeError, match="already open"):
            await updates.__aenter__()
        assert isinstance(await updates.__anext__(), Transition | DriveState)
    async with updates:  # closed, it may be opened again
        assert isinstance(await updates.__anext__(), Transition | DriveState)
