"""Drives that act, with a real daemon: fired triggers, on_trigger commands (their
environment, timeout and process group), restarts mid-action, and quiet hours."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support import DaemonProcess

from agentctx._core.history import read_history

Factory = Callable[..., DaemonProcess]

# A drive that only requests move: bump it over 10 to fire a trigger.
TRIG = {"threshold": 10.0, "activity_driven": True, "prompt": "Check in with your human."}


def rid() -> str:
    return uuid.uuid4().hex


def history(d: DaemonProcess, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in read_history(d.state_dir) if kind is None or e["kind"] == kind]


def wait_for(check: Callable[[], object], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def fire(d: DaemonProcess, drive: str = "T") -> None:
    with d.client(subscribe=False) as c:
        for req in (
            {"type": "reset", "request_id": rid(), "drive": drive},
            {"type": "bump", "request_id": rid(), "drive": drive, "amount": 12.0},
        ):
            assert c.request(req)["type"] == "ack"


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_a_fired_trigger_runs_its_command_with_the_drive_in_its_environment(
    make_daemon: Factory, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    d = make_daemon({"T": {**TRIG, "on_trigger": [sys.executable, "-c", dump]}}, tick_interval=0.1)
    with d.client() as watcher:
        fire(d)
        event, _ = watcher.recv_until(lambda m: m["type"] == "event" and m["kind"] == "triggered")
    assert event["drive"] == "T" and event["ratio"] >= 1.0
    env = wait_for(lambda: out.exists() and out.stat().st_size and json.loads(out.read_text()))
    assert env["AGENTCTX_DRIVE"] == "T" and env["AGENTCTX_THRESHOLD"] == "10"
    assert float(env["AGENTCTX_PRESSURE"]) == 12.0
    assert env["AGENTCTX_PROMPT"] == "Check in with your human."
    assert "NOTIFY_SOCKET" not in env
    finished = wait_for(lambda: history(d, "action_finished"))
    assert finished[0]["exit_code"] == 0 and finished[0]["drive"] == "T"
    assert [e["kind"] for e in history(d) if e["kind"].startswith(("trig", "action"))] == [
        "triggered",
        "action_started",
        "action_finished",
    ]
    state = json.loads(d.snapshot.read_text())
    assert state["drives"]["T"]["last_fired"] is not None


def test_oscillating_drive_fires_once_per_cooldown(make_daemon: Factory) -> None:
    d = make_daemon({"T": {**TRIG, "cooldown_minutes": 0.05}}, tick_interval=0.1)  # 3 s
    start = time.monotonic()
    while time.monotonic() - start < 7.5:  # up over the threshold and back, every 0.25 s
        fire(d)
        time.sleep(0.25)
    fires = [e["ts"] for e in history(d, "triggered")]
    crossings = len(history(d, "bumped"))
    assert crossings >= 15 and 2 <= len(fires) <= 3, (crossings, fires)
    assert all(b - a >= 3.0 for a, b in itertools.pairwise(fires))


def test_no_trigger_fires_in_quiet_hours_below_emergency(
    make_daemon: Factory, env: dict[str, str]
) -> None:
    env["TZ"] = "UTC"
    hour = datetime.now(UTC).hour
    quiet = [hour, (hour + 2) % 24]  # now is quiet, for at least an hour
    d = make_daemon(
        {"T": {**TRIG, "cooldown_minutes": 0}},
        tick_interval=0.1,
        quiet_hours=quiet,
        max_pressure_ratio=3.0,
    )
    with d.client(subscribe=False) as c:
        bump = {"type": "bump", "drive": "T"}
        assert c.request({**bump, "request_id": rid(), "amount": 18})["type"] == "ack"  # crisis
        time.sleep(0.5)
        assert not history(d, "triggered")  # held back by the quiet hours
        assert (
            c.request({**bump, "request_id": rid(), "amount": 3})["type"] == "ack"
        )  # 21: emergency
    (fired,) = wait_for(lambda: history(d, "triggered"))
    assert fired["band"] == "emergency"


def test_the_timeout_kills_the_whole_process_group(make_daemon: Factory, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # a shell that ignores SIGTERM, with two children: only SIGKILL to the group ends it
    cmd = script(
        tmp_path,
        "stubborn.sh",
        f"trap '' TERM\nsleep 1000 & echo $! >> {pids}\nsleep 1000 & echo $! >> {pids}\n"
        f"echo $$ >> {pids}\nwait\n",
    )
    d = make_daemon({"T": {**TRIG, "on_trigger": [cmd], "timeout_s": 1}}, tick_interval=0.1)
    fire(d)
    finished = wait_for(lambda: history(d, "action_finished"), timeout=30)
    assert "timed out after 1s: killed (SIGKILL)" in finished[0]["detail"]
    assert finished[0]["exit_code"] == -signal.SIGKILL
    for pid in map(int, pids.read_text().split()):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_kill9_mid_action_neither_kills_it_nor_starts_a_second(
    make_daemon: Factory, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    cmd = script(tmp_path, "agent.sh", f"echo $$ >> {runs}\nsleep 4\n")
    d = make_daemon({"T": {**TRIG, "on_trigger": [cmd], "cooldown_minutes": 60}}, tick_interval=0.1)
    fire(d)
    pid = int(wait_for(lambda: runs.exists() and runs.read_text().strip()))
    d.kill9()
    assert os.path.exists(f"/proc/{pid}")  # the spawned session lives on
    d.start()
    fire(d)  # a new crossing inside the cooldown: nothing
    finished = wait_for(lambda: history(d, "action_finished"), timeout=30)
    assert runs.read_text().split() == [str(pid)]  # started once, never again
    assert len(history(d, "triggered")) == 1 and len(history(d, "action_started")) == 1
    assert "restarted while it ran" in finished[0]["detail"]
    assert "adopted" in d.log_text()


def test_check_config_refuses_a_command_that_cannot_run(
    make_daemon: Factory, tmp_path: Path
) -> None:
    d = make_daemon({"T": {**TRIG, "on_trigger": ["no-such-program-here"]}}, start=False)
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 2
    assert "drives.T.on_trigger: program 'no-such-program-here' not found" in d.log_text()
