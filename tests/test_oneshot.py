"""agentctx.read(): socket, file fallback, silent socket; requests and the spool."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET
from support import DaemonProcess, run_module

import agentctx
from agentctx._core.errors import DaemonUnavailable, RequestFailed, StoreError
from sidecar.drain import DRAIN_BATCH

Factory = Callable[..., DaemonProcess]


def test_read_via_socket(make_daemon: Factory) -> None:
    d = make_daemon()
    state = agentctx.read()
    assert state.source == "socket"
    assert set(state.drives) == {"CARE", "MAINTENANCE", "REST", "WANDER"}
    assert state.age_s < 2.0 and not state.stale
    assert state.seq > 0 and state.boot_id
    d.stop()


def test_read_via_file_when_daemon_stopped(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=0.2)
    seq = agentctx.read().seq
    d.stop()
    time.sleep(1.2)
    state = agentctx.read()
    assert state.source == "file"
    assert state.seq >= seq and "B" in state.drives
    assert state.age_s >= 1.0  # honest age; the stale threshold is tested below


def test_stale_marking() -> None:
    from agentctx.state import DriveState

    now = time.time()
    fresh = DriveState({"tick_ts": now - 2, "tick_interval": 1.0, "drives": {}}, "file", now)
    old = DriveState({"tick_ts": now - 6, "tick_interval": 1.0, "drives": {}}, "file", now)
    slow = DriveState({"tick_ts": now - 2000, "tick_interval": 900.0, "drives": {}}, "file", now)
    assert not fresh.stale and old.stale and not slow.stale


def test_read_via_file_when_socket_never_answers(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    # a socket that accepts and says nothing (socket activation with a dead service)
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(d.socket))
    mute.listen(8)
    try:
        t0 = time.monotonic()
        state = agentctx.read(timeout=0.2)
        elapsed = time.monotonic() - t0
    finally:
        mute.close()
    assert state.source == "file" and "B" in state.drives
    assert 0.2 <= elapsed < 1.0


def test_read_nothing_at_all(env: dict[str, str]) -> None:
    with pytest.raises(DaemonUnavailable, match="no snapshot"):
        agentctx.read()


def test_read_damaged_snapshot(env: dict[str, str], dirs: dict[str, Path]) -> None:
    (dirs["runtime"] / "drives-state.json").write_text("{half")
    with pytest.raises(StoreError, match="not valid JSON"):
        agentctx.read()


def test_satisfy_acked_and_errors(make_daemon: Factory) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    receipt = agentctx.bump("b", 4.0, reason="work")
    assert receipt.status == "acked" and receipt.seq
    receipt = agentctx.satisfy("B", amount=1.5)
    assert receipt.status == "acked"
    assert agentctx.read().drives["B"]["pressure"] == 2.5
    with pytest.raises(RequestFailed) as info:
        agentctx.satisfy("NOPE")
    assert info.value.code == "unknown_drive"
    with pytest.raises(RequestFailed) as info:
        agentctx.satisfy("B", depth="extreme")  # type: ignore[arg-type]
    assert info.value.code == "bad_request"
    with pytest.raises(RequestFailed):
        agentctx.bump("B", float("nan"))
    with pytest.raises(RequestFailed):
        agentctx.bump("B", -1.0)


def test_misuse_is_refused_before_anything_is_sent(make_daemon: Factory) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    with pytest.raises(RequestFailed, match="finite number"):
        agentctx.satisfy("B", amount=10**400)  # beyond any float
    with pytest.raises(TypeError, match="drive must be a str"):
        agentctx.satisfy(b"B")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason must be a str"):
        agentctx.bump("B", 1.0, reason=b"x")  # type: ignore[arg-type]
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            agentctx.bump("B", 1.0, timeout=bad)
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            agentctx.read(timeout=bad)
    assert agentctx.read(timeout=0).source == "file"  # no wait: the snapshot
    assert agentctx.read().drives["B"]["pressure"] == 0.0  # nothing was applied


def test_spooled_while_down_applied_once_after_restart(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    receipts = [agentctx.bump("B", 1.0) for _ in range(5)]
    assert {r.status for r in receipts} == {"queued"}
    assert all(r.path is not None and r.path.exists() for r in receipts)
    # unknown drives are caught offline too (against the snapshot)
    with pytest.raises(RequestFailed):
        agentctx.bump("NOPE", 1.0)
    # the same request spooled twice (a client that lost its ack and retried)
    again = agentctx.bump("B", 1.0, request_id=receipts[0].request_id)
    assert again.status == "queued"
    d.start()
    assert agentctx.read().drives["B"]["pressure"] == 5.0
    assert not list((d.state_dir / "spool").glob("*.json"))


def test_spooled_request_applied_at_the_instant_it_was_made(make_daemon: Factory) -> None:
    fast = {"threshold": 1e6, "rate_per_hour": 3600.0}  # +1 per second
    d = make_daemon({"F": fast}, tick_interval=3600)
    d.stop()
    made = time.time()
    agentctx.satisfy("F", depth="full")
    time.sleep(1.5)
    d.start()
    state = agentctx.read()
    drive = state.drives["F"]
    # zeroed at `made`, then grew for the time since: ~1.5 s, not the whole uptime
    assert drive["pressure"] == pytest.approx(state.tick_ts - made, abs=0.05)


def test_file_landing_in_spool_is_drained_live(make_daemon: Factory) -> None:
    from agentctx._core.protocol import Bump
    from agentctx._core.spool import spool_request

    make_daemon({"B": BUCKET}, tick_interval=3600)
    spool_request(Bump(id=1, request_id="dropped-in", drive="B", amount=7.0))
    deadline = time.monotonic() + 5
    while agentctx.read().drives["B"]["pressure"] != 7.0:
        assert time.monotonic() < deadline, "spool file not drained"
        time.sleep(0.02)


def test_kill9_during_drain_applies_each_once(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    n = 3 * DRAIN_BATCH + 50  # several batches: a kill can land between two of them
    for _ in range(n):
        assert agentctx.bump("B", 1.0).status == "queued"
    spool = d.state_dir / "spool"
    interrupted = 0
    delay = 0.1
    while (left := len(list(spool.glob("*.json")))) and delay < 5.0:
        d.start(wait=False)
        time.sleep(delay)
        d.kill9()
        now_left = len(list(spool.glob("*.json")))
        interrupted += int(0 < now_left < left)  # killed mid-drain: some applied, some not
        delay += 0.05
    assert interrupted >= 1
    d.start()
    assert agentctx.read().drives["B"]["pressure"] == n
    assert not list((d.state_dir / "spool").glob("*.json"))


def test_bad_spool_file_is_set_aside(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    spool = d.state_dir / "spool"
    spool.mkdir(exist_ok=True)
    (spool / "00000000000000000001-bad.json").write_text("{not json")
    (spool / "00000000000000000002-ghost.json").write_text(
        json.dumps(
            {
                "made_at": 1.0,
                "request": {
                    "type": "bump",
                    "id": 1,
                    "request_id": "g",
                    "drive": "GHOST",
                    "amount": 1,
                },
            }
        )
    )
    d.start()
    assert agentctx.read().drives["B"]["pressure"] == 0.0
    rejected = sorted(p.name for p in (spool / "rejected").iterdir())
    assert rejected == ["00000000000000000001-bad.json", "00000000000000000002-ghost.json"]
    assert "rejected" in d.log_text()


def test_a_spool_others_could_write_to_is_neither_used_nor_drained(
    make_daemon: Factory, env: dict[str, str], tmp_path: Path
) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    elsewhere.chmod(0o777)
    planted = {
        "made_at": time.time(),
        "request": {"type": "bump", "id": 1, "request_id": "p", "drive": "B", "amount": 5},
    }
    (elsewhere / "00000000000000000001-planted.json").write_text(json.dumps(planted))
    spool = d.state_dir / "spool"
    if spool.exists():
        spool.rmdir()
    spool.symlink_to(elsewhere)
    with pytest.raises(agentctx.AgentctxError, match="symlink"):
        agentctx.bump("B", 1.0)  # daemon down: it would have gone to the spool
    d.start()
    assert agentctx.read().drives["B"]["pressure"] == 0.0  # the planted request: not applied
    assert d.log_text().count("spool not drained") == 1
    doctor = run_module("agentctx", env, "doctor")
    assert "spool unsafe" in doctor.stdout + doctor.stderr
