"""Protocol v1 against a real daemon subprocess over a real socket."""

from __future__ import annotations

import os
import stat
import struct
import time
import uuid
from collections.abc import Callable

from conftest import BUCKET, FAST
from support import DaemonProcess, RawClient

Factory = Callable[..., DaemonProcess]


def rid() -> str:
    return uuid.uuid4().hex


def test_welcome_then_full_state_on_connect(make_daemon: Factory) -> None:
    d = make_daemon()  # built-in default drives
    with RawClient(d.socket) as c:
        welcome = c.hello()
        assert welcome["proto"] == 1 and welcome["boot_id"] and welcome["tick_interval"] == 1.0
        state = c.recv()
        assert state["type"] == "state"
        assert set(state["drives"]) == {"CARE", "MAINTENANCE", "REST", "WANDER"}
        care = state["drives"]["CARE"]
        assert care["threshold"] == 20 and care["rate_per_hour"] == 2.0
        assert state["boot_id"] == welcome["boot_id"]
        assert state["drives"]["REST"]["activity_driven"] is True


def test_socket_and_dir_are_private(make_daemon: Factory) -> None:
    d = make_daemon()
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d.runtime).st_mode) == 0o700


def test_state_every_tick_with_growing_seq(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.05)
    with d.client() as c:
        seqs = [c.recv()["seq"] for _ in range(6)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6


def test_pressure_grows_by_wall_clock(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.1)
    with d.client() as c:
        first = c.recv()
        time.sleep(1.5)
        c.pending.clear()
        reply = c.request({"type": "get"})
    grown = reply["drives"]["FAST"]["pressure"] - first["drives"]["FAST"]["pressure"]
    elapsed = reply["tick_ts"] - first["tick_ts"]
    assert elapsed > 1.0
    # rate 3600/h = 1 per second of wall clock
    assert abs(grown - elapsed) < 1e-6


def test_pressure_is_capped(make_daemon: Factory) -> None:
    d = make_daemon(
        {"CAPPED": {"threshold": 1.0, "rate_per_hour": 36000.0}},
        tick_interval=0.05,
        max_pressure_ratio=1.5,
    )
    time.sleep(0.5)
    with d.client() as c:
        drive = c.request({"type": "get"})["drives"]["CAPPED"]
    assert drive["pressure"] == 1.5 and drive["max_pressure"] == 1.5
    assert drive["band"] == "crisis" and drive["status"] == "triggered"
    assert drive["last_triggered"] is not None


def test_satisfy_is_pushed_to_other_client_at_once(make_daemon: Factory) -> None:
    # A one-hour tick: anything the watcher sees quickly came from the push, not a tick.
    d = make_daemon({"CARE": {"threshold": 20, "activity_driven": True}}, tick_interval=3600)
    with d.client() as actor, d.client() as watcher:
        watcher.recv()  # the initial state
        actor.recv()
        assert (
            actor.request({"type": "bump", "request_id": rid(), "drive": "CARE", "amount": 18})[
                "type"
            ]
            == "ack"
        )
        t0 = time.monotonic()
        ack = actor.request(
            {"type": "satisfy", "request_id": rid(), "drive": "CARE", "depth": "full"}
        )
        assert ack["type"] == "ack"
        event, before = watcher.recv_until(
            lambda m: m["type"] == "event" and m["kind"] == "satisfied", timeout=2.0
        )
        latency = time.monotonic() - t0
        assert latency < 2.0  # nowhere near the 3600 s tick
        states = [m for m in before if m["type"] == "state"]
        assert states[-1]["seq"] == ack["seq"] == event["seq"]
        assert states[-1]["drives"]["CARE"]["pressure"] == 0.0
        assert states[-1]["drives"]["CARE"]["status"] == "satisfied"
        assert event["drive"] == "CARE" and event["depth"] == "full"


def test_band_change_events(make_daemon: Factory) -> None:
    d = make_daemon({"CARE": {"threshold": 10, "activity_driven": True}}, tick_interval=3600)
    with d.client() as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "CARE", "amount": 8})
        event, _ = c.recv_until(lambda m: m["type"] == "event" and m["kind"] == "band_changed")
    assert event["from"] == "latent" and event["to"] == "elevated" and event["ratio"] == 0.8


def test_unknown_drive_gets_error_with_ids(make_daemon: Factory) -> None:
    d = make_daemon()
    with d.client(subscribe=False) as c:
        request_id = rid()
        reply = c.request({"type": "satisfy", "request_id": request_id, "drive": "NOPE"})
        assert reply["type"] == "error" and reply["code"] == "unknown_drive"
        assert reply["request_id"] == request_id and "CARE" in reply["message"]
        # the connection stays usable
        assert c.request({"type": "ping"})["type"] == "pong"


def test_bad_values_get_errors(make_daemon: Factory) -> None:
    d = make_daemon()
    with d.client(subscribe=False) as c:
        for bad in (
            {"type": "satisfy", "request_id": rid(), "drive": "CARE", "depth": "extreme"},
            {"type": "satisfy", "request_id": rid(), "drive": "CARE", "depth": "deep", "amount": 1},
            {"type": "bump", "request_id": rid(), "drive": "CARE", "amount": -1},
            {"type": "bump", "request_id": rid(), "drive": "CARE"},
            {"type": "bump", "request_id": 5, "drive": "CARE", "amount": 1},
        ):
            reply = c.request(bad)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (bad, reply)
        reply = c.request({"type": "frobnicate"})
        assert reply["code"] == "unknown_type"


def test_idempotent_request_id(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        request = {"type": "bump", "request_id": rid(), "drive": "B", "amount": 5}
        first = c.request(request)
        again = c.request(request)
        assert first["type"] == again["type"] == "ack"
        assert first["seq"] == again["seq"]
        assert c.request({"type": "get"})["drives"]["B"]["pressure"] == 5.0
    # also across a restart: the request ids are durable
    d.stop()
    d.start()
    with d.client(subscribe=False) as c:
        assert c.request(request)["seq"] == first["seq"]
        assert c.request({"type": "get"})["drives"]["B"]["pressure"] == 5.0


def test_reset_one_and_all(make_daemon: Factory) -> None:
    d = make_daemon({"A": BUCKET, "B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        for name in "AB":
            c.request({"type": "bump", "request_id": rid(), "drive": name, "amount": 3})
        c.request({"type": "reset", "request_id": rid(), "drive": "A"})
        drives = c.request({"type": "get"})["drives"]
        assert (drives["A"]["pressure"], drives["B"]["pressure"]) == (0.0, 3.0)
        c.request({"type": "reset", "request_id": rid()})
        drives = c.request({"type": "get"})["drives"]
        assert (drives["A"]["pressure"], drives["B"]["pressure"]) == (0.0, 0.0)


def test_frame_before_hello_closes_only_that_client(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client() as bystander, RawClient(d.socket) as rude:
        bystander.recv()
        rude.send({"type": "get", "id": 1})
        error = rude.recv()
        assert error["type"] == "error" and error["code"] == "expected_hello"
        assert rude.is_closed()
        assert bystander.request({"type": "ping"})["type"] == "pong"
    assert "expected_hello: first frame must be hello, got get; closing" in d.log_text()


def test_garbage_json_gets_error_and_others_carry_on(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client() as bystander, d.client(subscribe=False) as bad:
        bad.send_raw(struct.pack(">I", 9) + b"{garbage!")
        reply, _ = bad.recv_until(lambda m: m["type"] == "error")
        assert reply["code"] == "bad_frame"
        bad.send_raw(struct.pack(">I", 3) + b"\xff\xfe\x00")
        reply, _ = bad.recv_until(lambda m: m["type"] == "error")
        assert reply["code"] == "bad_frame"
        assert (
            bystander.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 1})[
                "type"
            ]
            == "ack"
        )


def test_oversize_header_closes_connection(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client() as bystander, d.client(subscribe=False) as big:
        big.send_raw(struct.pack(">I", 0xFFFFFFF0))
        error, _ = big.recv_until(lambda m: m["type"] == "error")
        assert error["code"] == "frame_too_large"
        assert big.is_closed()
        assert bystander.request({"type": "ping"})["type"] == "pong"
    assert d.proc is not None and d.proc.poll() is None
    assert "frame_too_large:" in d.log_text()  # one line saying which client and why


def test_zero_length_frame_closes(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        c.send_raw(struct.pack(">I", 0))
        error, _ = c.recv_until(lambda m: m["type"] == "error")
        assert error["code"] == "bad_frame"
        assert c.is_closed()


def test_hello_timeout(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with RawClient(d.socket) as silent:
        t0 = time.monotonic()
        error = silent.recv(timeout=10)
        assert error["code"] == "hello_timeout"
        assert 4.0 < time.monotonic() - t0 < 8.0
        assert silent.is_closed()
    assert "hello_timeout: no hello within" in d.log_text()


def test_wrong_proto_is_refused(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with RawClient(d.socket) as c:
        c.send({"type": "hello", "proto": 2, "client": "future"})
        assert c.recv()["code"] == "unsupported_proto"
        assert c.is_closed()


def test_unsubscribed_client_gets_only_answers(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.05)
    with d.client(subscribe=False) as c:
        time.sleep(0.3)
        assert c.request({"type": "ping"})["type"] == "pong"
        assert c.pending == []


def test_second_daemon_refuses_and_keeps_socket(make_daemon: Factory) -> None:
    first = make_daemon({"B": BUCKET}, tick_interval=3600)
    inode = os.stat(first.socket).st_ino
    second = make_daemon({"B": BUCKET}, start=False, tick_interval=3600)
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(15) == 1
    assert "already running" in second.log_text() or "another agentctx-sidecar" in second.log_text()
    assert os.stat(first.socket).st_ino == inode
    with first.client(subscribe=False) as c:
        assert c.request({"type": "ping"})["type"] == "pong"


def test_sigterm_saves_removes_socket_keeps_snapshot(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        seq = c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 2})["seq"]
    assert d.stop() == 0
    assert not d.socket.exists()
    snap = d.read_snapshot()
    assert snap["seq"] >= seq and snap["drives"]["B"]["pressure"] == 2.0


def test_connections_outlive_the_hello_timeout(make_daemon: Factory) -> None:
    """Only the hello is timed: a subscriber stays connected and served for good."""
    d = make_daemon({"B": BUCKET}, tick_interval=0.2)
    with d.client() as c:
        deadline = time.monotonic() + 7.0  # well past HELLO_TIMEOUT (5 s)
        while time.monotonic() < deadline:
            assert c.recv(timeout=2)["type"] in ("state", "event")
        assert c.request({"type": "ping"})["type"] == "pong"
