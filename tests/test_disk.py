"""Disks that fail for long, directories that are read-only or full, files that are not
files: the daemon keeps serving, says what is wrong in one line, and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET
from support import REPO, DaemonProcess, fill, read_only, tmpfs

import agentctx
from agentctx._core.errors import StoreError
from agentctx._core.files import FAILPOINTS_ENV
from agentctx._core.protocol import Bump, Spooled, encode
from agentctx._core.spool import spool_request
from sidecar.hub import SEQ_LEASE
from sidecar.store import load_durable

Factory = Callable[..., DaemonProcess]


def rid() -> str:
    return uuid.uuid4().hex


def bump(amount: float = 1.0, request_id: str | None = None) -> dict[str, object]:
    return {"type": "bump", "request_id": request_id or rid(), "drive": "B", "amount": amount}


def test_disk_full_across_a_lease_renewal_keeps_serving_then_recovers(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    """The disk fills and stays full for more publishes than one seq lease covers."""
    with tmpfs(dirs["state"]) as state:
        d = make_daemon({"B": BUCKET}, tick_interval=0.001)
        with d.client() as watcher, d.client(subscribe=False) as c:
            assert c.request(bump())["type"] == "ack"
            saved = load_durable(state / "state.json")
            assert saved is not None
            filler = fill(state)
            request = bump(2.0)
            reply = c.request(request, timeout=10)  # at once, never a hang
            assert reply["type"] == "error" and reply["code"] == "not_durable"
            # ticks and pushes go on past everything the saved lease covered
            last_seq, last_at, worst_gap = 0, time.monotonic(), 0.0
            while last_seq <= saved.seq_lease + SEQ_LEASE // 10:
                msg = watcher.recv(timeout=10)
                if msg["type"] == "state":
                    assert msg["seq"] > last_seq
                    now = time.monotonic()
                    worst_gap = max(worst_gap, now - last_at)
                    last_seq, last_at = msg["seq"], now
            assert worst_gap < 2.0, f"publishing stalled for {worst_gap:.1f}s"
            print(
                f"disk full for {last_seq - saved.seq} publishes past a lease of {SEQ_LEASE}; "
                f"longest gap between states {worst_gap * 1000:.0f} ms"
            )
            assert c.request({"type": "ping"})["type"] == "pong"
            filler.unlink()
            freed = time.monotonic()
            assert c.request(request, timeout=10)["type"] == "ack"  # the same request_id
            print(f"durable again {time.monotonic() - freed:.3f}s after space returned")
        durable = load_durable(state / "state.json")
        assert durable is not None and durable.drives["B"].pressure == 3.0  # once each
        assert durable.seq_lease > last_seq  # the lease covers everything published
        log = d.log_text()
        assert log.count("durable state write failed (") == 1  # one error line, not one per retry
        assert "durable state written again" in log


def test_spooled_request_waits_for_the_disk_and_drains_once_it_is_back(
    make_daemon: Factory, dirs: dict[str, Path], env: dict[str, str]
) -> None:
    armed = dirs["root"] / "failpoints"
    env[FAILPOINTS_ENV] = str(armed)
    d = make_daemon({"B": BUCKET}, tick_interval=0.05)
    armed.write_text("fsync-eio@state.json")
    path = spool_request(Bump(id=1, request_id="later", drive="B", amount=5.0))
    deadline = time.monotonic() + 10
    while agentctx.read().drives["B"]["pressure"] != 5.0:  # applied (not yet durable)...
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert path.exists()  # ...so the file stays
    armed.write_text("")
    deadline = time.monotonic() + 15
    while path.exists():  # drained once a save succeeds again, without any new request
        assert time.monotonic() < deadline, "spool not drained after the disk came back"
        time.sleep(0.05)
    durable = load_durable(d.state_dir / "state.json")
    assert durable is not None and durable.drives["B"].pressure == 5.0


def test_read_only_state_dir_serves_without_durability_until_writable(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=0.1)
    with d.client(subscribe=False) as c:
        assert c.request(bump())["type"] == "ack"
    d.stop()
    with read_only(dirs["state"]):
        d.start()  # ready: the socket answers
        assert "serving WITHOUT durability" in d.log_text()
        c = d.client(subscribe=False)
        request = bump(2.0)
        reply = c.request(request)
        assert reply["type"] == "error" and reply["code"] == "not_durable"
        first = c.request({"type": "get"})["seq"]
        time.sleep(0.3)
        assert c.request({"type": "get"})["seq"] > first  # still ticking
    with c:
        assert c.request(request)["type"] == "ack"  # writable again: saved, applied once
    durable = load_durable(dirs["state"] / "state.json")
    assert durable is not None and durable.drives["B"].pressure == 3.0


def start_fails(d: DaemonProcess) -> str:
    """Start *d*, expect exit 1 within the start timeout; return its log."""
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(15) == 1
    return d.log_text()


def one_line(log: str, *needles: str) -> None:
    assert "Traceback" not in log, log
    last = log.strip().splitlines()[-1]
    assert last.startswith("agentctx-sidecar: "), log
    for needle in needles:
        assert needle in last, last


def test_snapshot_path_occupied_is_one_line(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    (dirs["runtime"] / "drives-state.json").mkdir()
    d = make_daemon({"B": BUCKET}, start=False)
    one_line(start_fails(d), "drives-state.json")


def test_full_runtime_dir_is_one_line(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    with tmpfs(dirs["runtime"], "64k") as runtime:
        fill(runtime)
        d = make_daemon({"B": BUCKET}, start=False)
        one_line(start_fails(d), "No space left on device")


@pytest.mark.parametrize("where", ["snapshot", "state", "spool"])
def test_fifo_or_device_never_blocks(
    make_daemon: Factory, dirs: dict[str, Path], where: str
) -> None:
    path = {
        "snapshot": dirs["runtime"] / "drives-state.json",
        "state": dirs["state"] / "state.json",
        "spool": dirs["state"] / "spool" / "00000000000000000001-fifo.json",
    }[where]
    path.parent.mkdir(mode=0o700, exist_ok=True)
    os.mkfifo(path, 0o600)
    if where == "snapshot":  # a reader with no daemon: an error at once, not a hang
        with pytest.raises(StoreError, match="not a regular file"):
            agentctx.read_snapshot()
    make_daemon({"B": BUCKET}, tick_interval=0.1)  # starts, does not block
    assert agentctx.read(timeout=5.0).source == "socket"
    if where == "spool":
        assert (dirs["state"] / "spool" / "rejected" / path.name).exists()


def test_sigterm_while_draining_10000_spooled_stops_at_once_losing_nothing(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    n = 10_000
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    spool = dirs["state"] / "spool"
    made = time.time()
    for i in range(n):  # written directly: 10 000 fsyncs would only slow the test
        request = Bump(id=1, request_id=f"r{i}", drive="B", amount=1.0)
        (spool / f"{int((made + i * 1e-6) * 1e9):020d}-r{i}.json").write_bytes(
            encode(Spooled(made_at=made, request=request))
        )
    d.start(wait=False)
    assert d.proc is not None
    deadline = time.monotonic() + 30
    while len(os.listdir(spool)) > n - 300:  # the drain is under way
        assert d.proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    d.signal(signal.SIGTERM)
    stopping = time.monotonic()
    assert d.proc.wait(10) == 0
    stopped_in = time.monotonic() - stopping
    left = len([p for p in os.listdir(spool) if p.endswith(".json")])
    print(f"stopped {stopped_in:.2f}s after SIGTERM with {left} of {n} still spooled")
    assert left > 0  # it really was stopped mid-drain
    assert stopped_in < 5.0
    restarted = time.monotonic()
    d.start()
    deadline = time.monotonic() + 60
    while (p := agentctx.read().drives["B"]["pressure"]) < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    print(f"the other {left} drained {time.monotonic() - restarted:.2f}s after the restart")
    assert p == n  # each exactly once
    assert not [p for p in os.listdir(spool) if p.endswith(".json")]


def test_runtime_dir_advice_for_a_shared_dir(env: dict[str, str], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    out = subprocess.run(
        [sys.executable, "-m", "sidecar", "run", "--runtime-dir", str(shared)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "chmod" not in out.stderr and "private directory inside it" in out.stderr
