"""The daemon's life: restart, catch-up, kill -9, reload, start-up refusals."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET, FAST
from support import EMERGENCE_DRIVES, DaemonProcess, RawClient, run_module, write_config

from sidecar.store import encode_durable, load_durable

Factory = Callable[..., DaemonProcess]


def rid() -> str:
    return uuid.uuid4().hex


def get(d: DaemonProcess) -> dict[str, object]:
    with d.client(subscribe=False) as c:
        return c.request({"type": "get"})


def test_stop_wait_start_catches_up_downtime(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=3600)
    before = get(d)
    d.stop()
    time.sleep(2.0)
    d.start()
    after = get(d)
    p0 = before["drives"]["FAST"]["pressure"]  # type: ignore[index]
    p1 = after["drives"]["FAST"]["pressure"]  # type: ignore[index]
    elapsed = after["tick_ts"] - before["tick_ts"]  # type: ignore[operator]
    assert elapsed > 2.0
    assert p1 - p0 == pytest.approx(elapsed, rel=1e-6)  # 1 pressure per wall-clock second
    assert after["seq"] > before["seq"]  # type: ignore[operator]
    assert after["boot_id"] != before["boot_id"]


def test_kill9_catches_up_too(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=3600)
    before = get(d)
    d.kill9()
    time.sleep(1.5)
    d.start()
    after = get(d)
    grown = after["drives"]["FAST"]["pressure"] - before["drives"]["FAST"]["pressure"]  # type: ignore[index]
    assert grown == pytest.approx(after["tick_ts"] - before["tick_ts"], rel=1e-6)  # type: ignore[operator]


def test_kill9_at_random_instants_loses_nothing_acked(make_daemon: Factory) -> None:
    """A loop of kill -9 under a stream of bumps/satisfies: every snapshot parses,
    every acked request survives exactly once, seq never goes back."""
    d = make_daemon({"UP": BUCKET, "DOWN": BUCKET}, tick_interval=0.01)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "DOWN", "amount": 1e6})
    acked_up: set[str] = set()
    acked_down: set[str] = set()
    sent: dict[str, tuple[str, dict[str, object]]] = {}
    last_seq = 0
    rng = random.Random(1234)
    for _round in range(25):
        deadline = time.monotonic() + rng.uniform(0.05, 0.4)
        try:
            with d.client(subscribe=False) as c:
                while time.monotonic() < deadline:
                    request_id = rid()
                    kind = rng.choice(["bump", "satisfy"])
                    req: dict[str, object] = {
                        "type": kind,
                        "request_id": request_id,
                        "drive": "UP" if kind == "bump" else "DOWN",
                        "amount": 1.0,
                    }
                    sent[request_id] = (kind, req)
                    c.send({**req, "id": 1})
                    if rng.random() < 0.2:
                        d.kill9()  # mid-request: this one may or may not have landed
                        break
                    reply, _ = c.recv_until(lambda m: m["type"] in ("ack", "error"))
                    assert reply["type"] == "ack", reply
                    (acked_up if kind == "bump" else acked_down).add(request_id)
                    assert reply["seq"] > last_seq
                    last_seq = reply["seq"]
        except (EOFError, ConnectionError, TimeoutError):
            pass
        if d.proc is not None and d.proc.poll() is None:
            d.kill9()
        snap = json.loads(d.snapshot.read_bytes())  # never torn: always parses
        assert snap["type"] == "state"
        d.start()
        state = get(d)
        assert state["seq"] > last_seq  # type: ignore[operator]
        last_seq = state["seq"]  # type: ignore[assignment]
        up = state["drives"]["UP"]["pressure"]  # type: ignore[index]
        down = 1e6 - state["drives"]["DOWN"]["pressure"]  # type: ignore[index]
        # every acked request is in; at most the in-flight ones on top
        assert len(acked_up) <= up <= len([k for k, _ in sent.values() if k == "bump"])
        assert len(acked_down) <= down <= len([k for k, _ in sent.values() if k == "satisfy"])
    assert len(acked_up) + len(acked_down) >= 50  # the loop really exercised the daemon
    # Retrying everything ever sent (as a client that lost acks would) applies each once.
    with d.client(subscribe=False) as c:
        for _kind, req in sent.values():
            assert c.request(req)["type"] == "ack"
        final = c.request({"type": "get"})
    n_bumps = sum(1 for k, _ in sent.values() if k == "bump")
    assert final["drives"]["UP"]["pressure"] == n_bumps
    assert final["drives"]["DOWN"]["pressure"] == 1e6 - (len(sent) - n_bumps)


def test_seq_continues_past_published_after_kill9(make_daemon: Factory) -> None:
    d = make_daemon({"FAST": FAST}, tick_interval=0.005)
    with d.client() as c:
        seen = [c.recv()["seq"] for _ in range(50)]
    d.kill9()
    d.start()
    with d.client() as c:
        c.recv()  # welcome state
        assert c.recv()["seq"] > max(seen)


def test_corrupt_durable_state_falls_back_to_snapshot(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "B", "amount": 4})
        seq = c.request({"type": "get"})["seq"]
    d.stop()
    durable = d.state_dir / "state.json"
    data = durable.read_bytes()
    assert b'"pressure":4.0' in data
    durable.write_bytes(data.replace(b'"pressure":4.0', b'"pressure":5.0'))  # still valid JSON
    d.start()
    state = get(d)
    assert state["drives"]["B"]["pressure"] == 4.0  # type: ignore[index]
    assert state["seq"] > seq  # type: ignore[operator]
    assert "durable state unusable" in d.log_text()
    assert "checksum mismatch" in d.log_text()


def test_garbage_everywhere_starts_from_zero(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, start=False, tick_interval=3600)
    (d.state_dir / "state.json").write_bytes(b"\x00" * 100)
    d.snapshot.write_bytes(b'{"version": "1.0", "drives": ')
    (d.state_dir / ".state.json.99.0.tmp").write_bytes(b"orphan")
    d.start()
    assert get(d)["drives"]["B"]["pressure"] == 0.0  # type: ignore[index]
    assert not (d.state_dir / ".state.json.99.0.tmp").exists()


def test_durable_state_written_before_ack(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        ack = c.request({"type": "bump", "request_id": "the-one", "drive": "B", "amount": 3})
        durable = load_durable(d.state_dir / "state.json")
    assert durable is not None
    assert durable.drives["B"].pressure == 3.0
    assert ("the-one", ack["seq"]) in durable.requests


def test_sighup_reloads_config_keeping_pressure_and_clients(make_daemon: Factory) -> None:
    d = make_daemon({"A": BUCKET}, tick_interval=3600)
    with d.client() as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "A", "amount": 5})
        assert d.config is not None
        write_config(
            d.config, {"A": {**BUCKET, "threshold": 10.0}, "NEW": BUCKET}, tick_interval=3600
        )
        d.signal(signal.SIGHUP)
        state, _ = c.recv_until(lambda m: m["type"] == "state" and "NEW" in m["drives"])
        assert state["drives"]["A"]["pressure"] == 5.0
        assert state["drives"]["A"]["threshold"] == 10.0
        assert state["drives"]["A"]["band"] == "available"
        # a bad new config is refused; the old one stays
        d.config.write_text("[drives.A]\nthreshold = -1\n")
        d.signal(signal.SIGHUP)
        assert c.request({"type": "ping"})["type"] == "pong"
        time.sleep(0.3)
        assert "new config refused" in d.log_text()
        assert set(c.request({"type": "get"})["drives"]) == {"A", "NEW"}


def test_reload_refuses_missing_or_unreadable_clamps_and_keeps_removed_drives(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    d = make_daemon({"A": BUCKET, "GONE": BUCKET}, tick_interval=3600)
    assert d.config is not None
    config = d.config

    def reload_and_get(c: RawClient, marker: str) -> dict[str, object]:
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while marker not in d.log_text():
            assert time.monotonic() < deadline, f"no {marker!r} in the log"
            time.sleep(0.05)
        return c.request({"type": "get"})

    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": rid(), "drive": "A", "amount": 50})
        c.request({"type": "bump", "request_id": rid(), "drive": "GONE", "amount": 7})
        # a missing file is refused like a bad one: the custom drives and pressures stay
        config.rename(dirs["root"] / "away.toml")
        state = reload_and_get(c, "no such file")
        assert set(state["drives"]) == {"A", "GONE"}  # type: ignore[arg-type]
        # so is one that cannot be read as a file
        config.mkdir()
        state = reload_and_get(c, "not a regular file")
        assert set(state["drives"]) == {"A", "GONE"}  # type: ignore[arg-type]
        config.rmdir()
        # a lowered threshold caps the pressure at the new maximum (10 x 1.5)
        write_config(config, {"A": {**BUCKET, "threshold": 10.0}, "GONE": BUCKET})
        state = reload_and_get(c, "reloaded from")
        assert state["drives"]["A"]["pressure"] == 15.0  # type: ignore[index]
        # a removed drive is named, and comes back where it was when it is added again
        write_config(config, {"A": {**BUCKET, "threshold": 10.0}})
        state = reload_and_get(c, "drive(s) GONE removed")
        assert set(state["drives"]) == {"A"}  # type: ignore[arg-type]
    d.stop()  # ... across a restart too (it is kept in the durable state)
    d.start()
    write_config(config, {"A": {**BUCKET, "threshold": 10.0}, "GONE": BUCKET})
    with d.client(subscribe=False) as c:
        state = reload_and_get(c, "drive(s) GONE added")
        assert state["drives"]["GONE"]["pressure"] == 7.0  # type: ignore[index]
    d.stop()  # a restart on a config without it names it too
    write_config(config, {"A": {**BUCKET, "threshold": 10.0}})
    d.start()
    assert "drive(s) GONE not in the config" in d.log_text()


def test_emergence_drives_json_runs(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    cfg = dirs["root"] / "drives.json"
    cfg.write_text(json.dumps(EMERGENCE_DRIVES))
    d = make_daemon(start=False)
    d.config = cfg
    d.start()
    state = get(d)
    assert set(state["drives"]) == {"CARE", "REST", "WANDER"}  # type: ignore[arg-type]
    assert state["drives"]["CARE"]["threshold"] == 25.0  # type: ignore[index]
    assert state["drives"]["REST"]["activity_driven"] is True  # type: ignore[index]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_module("sidecar", env, *args)


def test_bad_config_gives_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[drives.CARE]\nthreshold = 0\n")
    for args in (["run", "--config", str(bad)], ["check-config", str(bad)]):
        result = run_cli(*args, env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(bad) in lines[0] and "drives.CARE.threshold" in lines[0]
        assert "Traceback" not in result.stderr


def test_check_config_ok_and_default(env: dict[str, str], tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", {"A": BUCKET})
    result = run_cli("check-config", str(good), env=env)
    assert result.returncode == 0 and "OK, 1 drive" in result.stdout
    result = run_cli("check-config", env=env)  # no file anywhere: the defaults
    assert result.returncode == 0 and "built-in defaults" in result.stdout


def test_check_config_on_a_missing_file_says_so(env: dict[str, str], tmp_path: Path) -> None:
    absent = tmp_path / "drives.toml"
    explicit = run_cli("check-config", str(absent), env=env)
    assert explicit.returncode == 2 and "invalid" not in explicit.stderr
    assert "no such file" in explicit.stderr and "built-in default drives" in explicit.stderr
    default = run_cli("check-config", env={**env, "XDG_CONFIG_HOME": str(tmp_path)})
    assert default.returncode == 0 and "no config file at" in default.stdout
    assert "CARE" in default.stdout


def test_both_commands_say_their_version(env: dict[str, str]) -> None:
    from agentctx import __version__

    assert run_cli("--version", env=env).stdout.strip() == f"agentctx-sidecar {__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "agentctx", "--version"], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == f"agentctx {__version__}"


def test_help_explains_itself(env: dict[str, str]) -> None:
    result = run_cli("--help", env=env)
    assert result.returncode == 0
    assert "drives" in result.stdout and "snapshot" in result.stdout
    assert "check-config" in result.stdout


def test_unsafe_runtime_dir_refused(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    dirs["runtime"].chmod(0o755)
    d = make_daemon(start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 1
    assert "must be 0700" in d.log_text()


def test_stale_socket_after_kill9_is_replaced(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.kill9()
    assert d.socket.exists()  # left behind
    d.start()
    with RawClient(d.socket) as c:
        assert c.hello(subscribe=False)["type"] == "welcome"


def test_durable_encoding_is_stable_on_disk(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    durable = load_durable(d.state_dir / "state.json")
    assert durable is not None
    assert (d.state_dir / "state.json").read_bytes() == encode_durable(durable)
