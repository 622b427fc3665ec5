"""The `agentctx` command: output shapes, hook mode, exit codes, error lines."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET
from support import REPO, DaemonProcess, Lines, run_module, start_module

Factory = Callable[..., DaemonProcess]
WATCH_TIMEOUT_S = 30.0  # a watch starting (imports, connect) on a loaded machine, an event


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return run_module("agentctx", env, *args, stdin=stdin, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def hook(env: dict[str, str], session: str, *extra: str) -> subprocess.CompletedProcess[str]:
    payload = json.dumps(
        {
            "session_id": session,
            "hook_event_name": "UserPromptSubmit",
            "prompt": "hi",
            "cwd": "/tmp",
        }
    )
    return run(env, "context", "--hook", "claude", *extra, stdin=payload)


def test_status_table_and_json(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    table = run(env, "status")
    assert table.returncode == 0
    assert "CARE" in table.stdout and "PRESSURE" in table.stdout and "live" in table.stdout
    data = json.loads(run(env, "status", "--json").stdout)
    assert data["source"] == "socket" and data["age_s"] < 5 and data["stale"] is False
    assert set(data["drives"]) == {"CARE", "MAINTENANCE", "REST", "WANDER"}


def test_hook_json_shape(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    result = hook(env, "s1")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "UserPromptSubmit"
    assert spec["additionalContext"].startswith("## Drives State")
    assert "CARE" in spec["additionalContext"]
    start = run(
        env,
        "context",
        "--hook",
        "claude",
        stdin=json.dumps({"session_id": "s1", "hook_event_name": "SessionStart"}),
    )
    assert json.loads(start.stdout)["hookSpecificOutput"]["hookEventName"] == "SessionStart"


def test_changes_only_is_silent_until_something_happens(
    make_daemon: Factory, env: dict[str, str]
) -> None:
    make_daemon({"B": BUCKET, "C": {"threshold": 10, "activity_driven": True}}, tick_interval=0.1)
    first = hook(env, "sess-a", "--changes-only")
    assert first.returncode == 0 and first.stdout.strip()
    second = hook(env, "sess-a", "--changes-only")
    assert second.returncode == 0 and second.stdout == ""  # ticks alone change nothing
    other = hook(env, "sess-b", "--changes-only")  # another session has its own cursor
    assert other.stdout.strip()
    assert run(env, "bump", "B", "--amount", "1").returncode == 0
    third = hook(env, "sess-a", "--changes-only")
    assert "B" in json.loads(third.stdout)["hookSpecificOutput"]["additionalContext"]
    assert hook(env, "sess-a", "--changes-only").stdout == ""
    run(env, "bump", "C", "--amount", "8")  # a band change
    assert hook(env, "sess-a", "--changes-only").stdout.strip()
    # a SessionStart injection (always printed) moves the cursor too
    start = run(
        env,
        "context",
        "--hook",
        "claude",
        stdin=json.dumps({"session_id": "sess-c", "hook_event_name": "SessionStart"}),
    )
    assert start.stdout.strip()
    assert hook(env, "sess-c", "--changes-only").stdout == ""


def test_context_plain_and_budget(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    full = run(env, "context")
    assert full.returncode == 0 and full.stdout.startswith("## Drives State")
    short = run(env, "context", "--max-chars", "200")
    assert len(short.stdout.rstrip("\n")) <= 200


def test_satisfy_bump_reset_and_errors(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    ok = run(env, "bump", "b", "--amount", "5", "--reason", "worked")
    assert ok.returncode == 0 and "bumped B by 5: acked (seq" in ok.stdout
    assert "now 5.0/" in ok.stdout
    assert run(env, "satisfy", "B", "--amount", "2").returncode == 0
    data = json.loads(run(env, "status", "--json").stdout)
    assert data["drives"]["B"]["pressure"] == 3.0
    assert run(env, "reset").returncode == 0
    unknown = run(env, "satisfy", "NOPE")
    assert unknown.returncode == 1
    assert "unknown drive 'NOPE'" in one_line_error(unknown)
    bad_depth = run(env, "satisfy", "B", "--depth", "extreme")
    assert bad_depth.returncode == 2 and "invalid choice" in bad_depth.stderr
    both = run(env, "satisfy", "B", "--depth", "deep", "--amount", "1")
    assert both.returncode == 2
    negative = run(env, "bump", "B", "--amount", "-3")
    assert negative.returncode == 1
    assert "amount: expected a number >= 0.0" in one_line_error(negative)  # words, not $.amount


def test_a_capped_bump_says_so(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon({"REST": {"threshold": 20, "activity_driven": True}}, tick_interval=3600)
    out = run(env, "bump", "REST", "--amount", "100").stdout
    assert "now 30.0/20 (crisis), capped at its maximum 30" in out, out


def test_queued_when_down(make_daemon: Factory, env: dict[str, str]) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    d.stop()
    queued = run(env, "satisfy", "B")
    assert queued.returncode == 0 and "queued" in queued.stdout
    assert ": the sidecar is unavailable; queued in " in queued.stdout
    status = json.loads(run(env, "status", "--json").stdout)
    assert status["source"] == "file"


def test_no_state_at_all(env: dict[str, str]) -> None:
    result = run(env, "status")
    assert result.returncode == 3
    assert "no snapshot" in one_line_error(result)
    hooked = hook(env, "s")  # a hook never fails its agent (tests/test_hook_mode.py)
    assert hooked.returncode == 0 and hooked.stdout == ""


def test_malformed_hook_stdin(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    for bad in ("not json", "[1, 2]", '{"session_id": 5}'):
        result = run(env, "context", "--hook", "claude", "--changes-only", stdin=bad)
        assert result.returncode == 0, bad  # a hook never fails its agent
        assert "hook stdin" in one_line_error(result)
        assert result.stdout == ""


def test_unreadable_snapshot(env: dict[str, str], dirs: dict[str, Path]) -> None:
    (dirs["runtime"] / "drives-state.json").write_text("garbage")
    result = run(env, "status")
    assert result.returncode == 1 and "not valid JSON" in one_line_error(result)


def test_hook_does_not_wait_for_an_open_stdin(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctx", "context", "--hook", "claude"],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=10)  # stdin is never written nor closed... until here
    finally:
        proc.kill()
    assert "hookSpecificOutput" in out


def test_watch_plain_lines(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon({"B": BUCKET}, tick_interval=0.1)
    # faulthandler: a watch that ignores Ctrl-C is made to say where it is stuck
    proc = start_module("agentctx", {**env, "PYTHONFAULTHANDLER": "1"}, "watch")
    assert proc.stdout is not None
    lines = Lines(proc.stdout)
    try:
        (first, *_) = lines.until("state seq=")  # up and live (however slow the start)
        run(env, "bump", "B", "--amount", "2")
        seen = lines.until("bumped")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=WATCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"watch did not stop on SIGINT; its stacks:\n{err}")
    finally:
        proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert first.startswith("mode live")
    assert seen[-1].startswith("event ") and "B" in seen[-1]


def test_doctor(make_daemon: Factory, env: dict[str, str], dirs: dict[str, Path]) -> None:
    down = run(env, "doctor")
    assert down.returncode == 1 and "✗" in down.stdout and "→" in down.stdout
    make_daemon()
    up = run(env, "doctor")
    assert "✓ sidecar answering" in up.stdout
    assert "✓ snapshot fresh" in up.stdout
    assert "✓ state dir" in up.stdout
    assert "✓ systemd: no user manager" not in up.stdout  # not a tick for what is missing
    dirs["state"].chmod(0o755)
    loose = run(env, "doctor")
    assert loose.returncode == 1 and "✗" in loose.stdout and "0755" in loose.stdout


def test_watch_fits_the_terminal_and_says_the_snapshot_is_broken(
    env: dict[str, str], dirs: dict[str, Path]
) -> None:
    (dirs["runtime"] / "drives-state.json").write_text("{torn")
    proc = subprocess.Popen(
        ["script", "-qfc", f"{sys.executable} -m agentctx watch", "/dev/null"],
        env={**env, "COLUMNS": "60", "LINES": "20"},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def plain(raw: bytes) -> str:
        return re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", raw).decode(errors="replace")

    assert proc.stdout is not None
    fd, shown = proc.stdout.fileno(), b""  # read raw: the screen comes in pieces
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    try:
        while "not valid JSON" not in " ".join(plain(shown).split()):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break  # never said: the assertion below shows what was
            if not (chunk := os.read(fd, 1 << 16)):
                break
            shown += chunk
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    text = plain(shown + rest)
    assert "not valid JSON" in " ".join(text.split()), text  # wrapped, whole
    assert all(len(line) <= 60 for line in text.splitlines()), text


def test_help_lists_exit_codes(env: dict[str, str]) -> None:
    result = run(env, "--help")
    assert result.returncode == 0 and "exit codes" in result.stdout
