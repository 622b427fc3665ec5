"""The history: every acked change exactly once, none that was lost, a torn line
survived, rotation; and `agentctx log` reading it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from conftest import BUCKET
from support import LINE_TIMEOUT, REPO, DaemonProcess, Lines, RawClient, run_module

from agentctx._core import history

Factory = Callable[..., DaemonProcess]


def rid() -> str:
    return uuid.uuid4().hex


def agentctx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("agentctx", env, *args)


def test_kill9_loop_leaves_each_acked_change_exactly_once(make_daemon: Factory) -> None:
    """kill -9 at random instants while a client bumps; it retries what was not acked,
    as agentctx does. Every request ends up acked, and in the history exactly once."""
    d = make_daemon({"B": BUCKET}, tick_interval=0.01)
    rng = random.Random(20261126)
    acked: set[str] = set()
    pending: list[dict[str, object]] = []
    for _ in range(30):
        kill_at = time.monotonic() + rng.uniform(0.02, 0.3)
        try:
            with RawClient(d.socket, timeout=2.0) as c:
                c.hello(subscribe=False)
                while time.monotonic() < kill_at or pending:
                    req = (
                        pending[0]
                        if pending
                        else {"type": "bump", "request_id": rid(), "drive": "B", "amount": 1.0}
                    )
                    if not pending:
                        pending.append(req)
                    if time.monotonic() >= kill_at:
                        break
                    reply = c.request(req, timeout=2.0)
                    assert reply["type"] == "ack", reply
                    acked.add(str(req["request_id"]))
                    pending.pop(0)
        except (OSError, EOFError, TimeoutError):
            pass
        d.kill9()
        d.start()
    with RawClient(d.socket) as c:  # what the last kill left unacked, retried
        c.hello(subscribe=False)
        for req in pending:
            assert c.request(req)["type"] == "ack"
            acked.add(str(req["request_id"]))
        pressure = c.request({"type": "get"})["drives"]["B"]["pressure"]
    d.stop()
    entries = list(history.read_history(d.state_dir))
    logged = Counter(e["request_id"] for e in entries if e.get("request_id"))
    assert len(acked) > 30
    assert set(logged) == acked  # nothing lost, nothing that was never applied
    assert all(n == 1 for n in logged.values())  # each exactly once
    assert pressure == len(acked)
    positions = [(e["seq"], e.get("n", 0)) for e in entries]
    assert positions == sorted(set(positions))  # ordered, no line twice


def test_pipelined_requests_and_actions_are_logged_once(
    make_daemon: Factory, tmp_path: Path
) -> None:
    """Saves overlap with new events (pipelined requests, an action starting right
    after its trigger's save): none may be appended twice."""
    trig = {"threshold": 10.0, "activity_driven": True, "on_trigger": ["true"]}
    d = make_daemon({"B": BUCKET, "T": trig}, tick_interval=0.01)
    ids = [rid() for _ in range(300)]
    with RawClient(d.socket) as c:
        c.hello(subscribe=False)
        for i, request_id in enumerate(ids):  # all sent before any ack is read
            c.send({"type": "bump", "id": i, "request_id": request_id, "drive": "B", "amount": 1})
        c.send({"type": "bump", "id": 999, "request_id": "t", "drive": "T", "amount": 12})
        acks = [c.recv_until(lambda m: m["type"] == "ack")[0] for _ in range(len(ids) + 1)]
    assert len(acks) == len(ids) + 1
    deadline = time.monotonic() + 20
    while not any(e["kind"] == "action_finished" for e in history.read_history(d.state_dir)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    d.stop()
    entries = list(history.read_history(d.state_dir))
    positions = [(e["seq"], e.get("n", 0)) for e in entries]
    assert len(positions) == len(set(positions))  # no line twice
    kinds = Counter(e["kind"] for e in entries if e["drive"] == "T")
    assert kinds["triggered"] == kinds["action_started"] == kinds["action_finished"] == 1
    assert Counter(e.get("request_id") for e in entries if e["kind"] == "bumped") == {
        **dict.fromkeys(ids, 1),
        "t": 1,
    }


def test_a_torn_last_line_is_survived(make_daemon: Factory) -> None:
    d = make_daemon({"B": BUCKET}, tick_interval=3600)
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": "first", "drive": "B", "amount": 1})
    d.kill9()
    path = d.state_dir / history.HISTORY_NAME
    with open(path, "ab") as f:
        f.write(b'{"type":"event","seq":99999,"kind":"bum')  # a crash mid-append
    assert [e["request_id"] for e in history.read_history(d.state_dir)] == ["first"]
    d.start()
    with d.client(subscribe=False) as c:
        c.request({"type": "bump", "request_id": "second", "drive": "B", "amount": 1})
    assert [e["request_id"] for e in history.read_history(d.state_dir)] == ["first", "second"]
    assert path.read_bytes().endswith(b"\n")


def test_rotation_keeps_a_few_files_in_order(tmp_path: Path) -> None:
    for i in range(50):
        line = json.dumps({"seq": i, "kind": "bumped", "drive": "B", "pad": "x" * 100})
        history.append(tmp_path, [line.encode()], max_bytes=1000)
    files = history.history_files(tmp_path)
    assert len(files) == history.HISTORY_KEEP + 1  # the current and three rotated
    seqs = [e["seq"] for e in history.read_history(tmp_path)]
    assert seqs == sorted(seqs) and seqs[-1] == 49  # the oldest ones went, in order
    assert history.last_position(tmp_path) == (49, 0)


def test_agentctx_log(make_daemon: Factory, env: dict[str, str]) -> None:
    d = make_daemon({"B": BUCKET, "C": BUCKET}, tick_interval=3600)
    assert agentctx(env, "bump", "B", "--amount", "3", "--reason", "long refactor").returncode == 0
    assert agentctx(env, "satisfy", "C", "--depth", "full").returncode == 0
    assert agentctx(env, "reset", "B").returncode == 0
    out = agentctx(env, "log").stdout.splitlines()
    assert len(out) == 3 and "B" in out[0] and "bumped +3 → 3.0" in out[0]
    assert "long refactor" in out[0] and "satisfied full" in out[1] and "reset" in out[2]
    assert time.strftime("%Y-%m-%d") in out[0]  # local time
    only_b = agentctx(env, "log", "b").stdout.splitlines()
    assert len(only_b) == 2 and all(" B " in line for line in only_b)
    assert agentctx(env, "log", "--limit", "1").stdout.count("\n") == 1
    assert agentctx(env, "log", "--since", "1h").stdout.count("\n") == 3
    assert agentctx(env, "log", "--since", "2999-01-01T00:00").stdout == ""
    rows = [json.loads(line) for line in agentctx(env, "log", "--json").stdout.splitlines()]
    assert [r["kind"] for r in rows] == ["bumped", "satisfied", "reset"]
    bad = agentctx(env, "log", "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr
    typo = agentctx(env, "log", "NOPE")
    assert typo.returncode == 2 and "no drive 'NOPE'" in typo.stderr and "B, C" in typo.stderr
    negative = agentctx(env, "log", "--limit", "-1")
    assert negative.returncode == 2 and "--limit" in negative.stderr
    for budget in ("-1", "0"):
        refused = agentctx(env, "context", "--max-chars", budget)
        assert refused.returncode == 2 and "--max-chars" in refused.stderr
    follow = subprocess.Popen(
        [sys.executable, "-m", "agentctx", "log", "--follow", "--limit", "0", "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    lines = Lines(follow.stdout)
    try:
        # a bump before the follower subscribed is history, not live: bump until one
        # comes live (each the same change), however slow its start
        deadline = time.monotonic() + LINE_TIMEOUT
        while True:
            assert agentctx(env, "bump", "C", "--amount", "2").returncode == 0
            try:
                (line,) = lines.until("", timeout=0.5)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "log --follow printed nothing live"
        live = json.loads(line)
        # a live line is shaped as a line of the history (`log --json`) is
        assert live.keys() == rows[0].keys() - {"reason"} and live["type"] == "event"
        assert (live["drive"], live["kind"], live["amount"]) == ("C", "bumped", 2.0)
    finally:
        follow.kill()
        follow.wait()
    assert d.proc is not None


def test_an_empty_history_on_a_followers_host_says_where_it_is() -> None:
    from agentctx.cli.log import elsewhere

    assert "ada-desktop, whose sidecar computes these drives, keeps it" in elsewhere(
        "ada-desktop", "laptop"
    )
    assert elsewhere("laptop", "laptop") == ""  # the home itself: just a quiet history
    assert elsewhere(None, "laptop") == ""  # not shared over NATS
