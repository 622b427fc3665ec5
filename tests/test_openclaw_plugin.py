"""The OpenClaw plugin's own code against a real sidecar, without OpenClaw (which
tests/test_openclaw_e2e.py adds): the service's subscription (live, then the
snapshot file while the sidecar is down, never going back) and the prompt hook (the
block only on a change, remembered across restarts, never failing a prompt).

tests/js/plugin_driver.mjs runs the plugin's modules in node and answers one JSON
line per command; every wait in it is for an event, bounded, never a sleep.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from openclaw_rig import node_for_tests
from support import REPO, DaemonProcess

import agentctx
from agentctx._core.errors import StoreError
from agentctx._core.files import atomic_write
from agentctx._core.snapshot import read_snapshot_file
from agentctx.render import markdown

DRIVER = REPO / "tests" / "js" / "plugin_driver.mjs"
DRIVES = {
    "CARE": {"threshold": 20, "activity_driven": True, "description": "the human"},
    "REST": {"threshold": 30, "activity_driven": True, "description": "recovery"},
}
QUIET = {"tick_interval": 3600}  # states change only when a test changes them
AGE = re.compile(r"\d+(\.\d)?(s|min|h) old")


@pytest.fixture(scope="module")
def node() -> str:
    found, why = node_for_tests()
    if found is None:
        pytest.skip(why)
    return found


class Driver:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            assert self.proc.stderr is not None
            raise AssertionError(f"the plugin driver died:\n{self.proc.stderr.read()}")
        return json.loads(line)


@pytest.fixture
def plugin(node: str, env: dict[str, str], tmp_path: Path) -> Callable[..., Any]:
    """plugin(config) -> a context manager running the driver with that plugin config,
    OpenClaw's state dir (the per-session memory) in the test's temp dir."""

    @contextmanager
    def run(config: dict[str, Any] | None = None, **extra_env: str) -> Iterator[Driver]:
        environ = {**env, "OPENCLAW_STATE_DIR": str(tmp_path / "openclaw"), **extra_env}
        proc = subprocess.Popen(
            [node, str(DRIVER), json.dumps(config or {})],
            cwd=REPO,
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield Driver(proc)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)

    return run


def python_block(source: str | None = None) -> str:
    """What `agentctx context` prints now, the age figure left open."""
    state = agentctx.read() if source != "file" else agentctx.read_snapshot()
    return AGE.sub("AGE", markdown(state))


def test_the_service_follows_the_sidecar_live_then_the_file_and_never_goes_back(
    make_daemon: Callable[..., DaemonProcess], plugin: Callable[..., Any]
) -> None:
    daemon = make_daemon(DRIVES, **QUIET)
    with plugin() as feed:
        feed("start")
        assert feed("wait", mode="live")["source"] == "socket"
        receipt = agentctx.bump("CARE", 5.0)
        assert feed("wait", seq=receipt.seq) == {"seq": receipt.seq, "source": "socket"}
        bumped = [e for e in feed("events") if e["kind"] == "bumped"]
        assert [(e["drive"], e["seq"]) for e in bumped] == [("CARE", receipt.seq)]

        daemon.stop()
        # the same state, now said to be the snapshot's
        assert feed("wait", mode="fallback") == {"seq": receipt.seq, "source": "file"}
        snapshot = daemon.read_snapshot()
        older = {**snapshot, "seq": snapshot["seq"] - 1, "tick_ts": snapshot["tick_ts"] - 1}
        atomic_write(daemon.snapshot, json.dumps(older).encode(), durable=False)
        newer = {**snapshot, "seq": snapshot["seq"] + 5}
        atomic_write(daemon.snapshot, json.dumps(newer).encode(), durable=False)
        assert feed("wait", seq=newer["seq"]) == {"seq": newer["seq"], "source": "file"}

        daemon.start()  # a restarted sidecar continues above the snapshot's seq
        back = feed("wait", mode="live")
        assert back["source"] == "socket" and back["seq"] > newer["seq"]
        seqs = [h["seq"] for h in feed("history")]
        assert seqs == sorted(set(seqs)), f"went back: {seqs}"  # the older file came after
        assert feed("log") == []


def test_a_hung_sidecar_counts_as_down(
    make_daemon: Callable[..., DaemonProcess], plugin: Callable[..., Any]
) -> None:
    """Silent for a few ticks (5 s at least): the service follows the file, and goes
    live again once the sidecar answers."""
    daemon = make_daemon(DRIVES, tick_interval=0.5)
    with plugin() as feed:
        feed("start")
        feed("wait", mode="live")
        daemon.signal(signal.SIGSTOP)
        try:
            assert feed("wait", mode="fallback")["source"] == "file"
        finally:
            daemon.signal(signal.SIGCONT)
        assert feed("wait", mode="live")["source"] == "socket"


def test_the_hook_adds_the_block_only_on_a_change_and_remembers_it(
    make_daemon: Callable[..., DaemonProcess], plugin: Callable[..., Any]
) -> None:
    make_daemon(DRIVES, **QUIET)

    def block(driver: Driver, session: str | None, live: bool = False) -> str | None:
        text: str | None = driver("hook", session=session, live=live)["block"]
        return text if text is None else AGE.sub("AGE", text)

    changes = {"mode": "changes"}
    with plugin(changes) as hook:
        assert block(hook, "s1") == python_block()
        assert block(hook, "s1") is None  # nothing changed
        assert block(hook, "s2") == python_block()  # another session
        assert block(hook, None) == python_block()  # no session to remember: every time
    with plugin(changes) as restarted:  # a new process: the memory is in files
        assert block(restarted, "s1") is None
        agentctx.bump("REST", 1.0)  # no band moves, but a bump is a change
        assert block(restarted, "s1") == python_block()
        restarted("start")
        restarted("wait", mode="live")
        assert block(restarted, "s1", live=True) is None  # from the service's state too
        agentctx.satisfy("CARE")
        restarted("wait", seq=agentctx.read().seq)
        assert block(restarted, "s1", live=True) == python_block()
    with plugin() as always:  # the default: OpenClaw keeps no block in the history
        assert block(always, "s1") == block(always, "s1") == python_block()


def test_the_hook_never_fails_a_prompt(
    env: dict[str, str], plugin: Callable[..., Any], tmp_path: Path
) -> None:
    snapshot = Path(env["AGENTCTX_RUNTIME_DIR"]) / "drives-state.json"
    with plugin() as hook:
        # no sidecar, no snapshot: no block, and nothing worth a warning
        assert hook("hook", session="s1") == {"block": None}
        assert hook("log") == []
        snapshot.write_text("{not json")
        assert hook("hook", session="s1") == {"block": None}
        (warning,) = hook("log")
        assert str(snapshot) in warning and "not valid JSON" in warning
        # a hand-edited file with a wrong type: refused as the Python reader refuses it,
        # not shown as zeros
        wrong = {"seq": 3, "tick_ts": 1.0, "drives": {"A": {"pressure": "high"}}}
        snapshot.write_text(json.dumps(wrong))
        assert hook("hook", session="s1") == {"block": None}
        warning = hook("log")[-1]  # (what the plugin logged so far)
        assert 'drives.A.pressure: expected a number, got "high"' in warning, warning
        with pytest.raises(StoreError, match=r"drives\.A\.pressure: expected a number"):
            read_snapshot_file(snapshot)
        for field, value in (("seq", 2.5), ("boot_id", 7), ("stale", "no")):
            snapshot.write_text(json.dumps({**wrong, "drives": {}, field: value}))
            assert hook("hook", session="s1") == {"block": None}
            warning = hook("log")[-1]
            assert f"({field}: expected" in warning, warning
            with pytest.raises(StoreError, match=f"{field}: expected"):
                read_snapshot_file(snapshot)
    # the snapshot alone is enough; a memory that cannot be written costs a repeat
    state = {"seq": 3, "tick_ts": 1.0, "last_tick": "x", "drives": {"A": {"pressure": 1}}}
    atomic_write(snapshot, json.dumps(state).encode(), durable=False)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    with plugin(OPENCLAW_STATE_DIR=str(blocked)) as hook:
        sent = hook("hook", session="s1")["block"]
        assert AGE.sub("AGE", sent) == python_block("file")
        (warning,) = hook("log")
        assert "could not remember" in warning
        again = hook("hook", session="s1")["block"]  # nothing remembered: shown again
        assert AGE.sub("AGE", again) == AGE.sub("AGE", sent)


WAKE_PROMPT = "Your CARE drive triggered. Check in with your human."
# cooldown 0: every crossing fires, so one test can fire the same drive again
FIRING = {"CARE": {**DRIVES["CARE"], "prompt": WAKE_PROMPT, "cooldown_minutes": 0}}


def fire(amount: float = 21.0) -> int:
    """Take CARE from calm over its threshold (20): the sidecar fires. The seq of it."""
    agentctx.satisfy("CARE", depth="full")
    fired = agentctx.bump("CARE", amount).seq
    assert fired is not None
    view = agentctx.read().drives["CARE"]
    assert view["last_fired"] is not None and view["band"] == "triggered", view
    return fired


def test_a_fire_wakes_once_through_event_state_reconnects_and_restarts(
    make_daemon: Callable[..., DaemonProcess], plugin: Callable[..., Any]
) -> None:
    """The service's wake against a real sidecar (OpenClaw's queue is a stand-in here;
    tests/test_openclaw_wake.py has the real one): the state and the `triggered`
    event of one fire, a sidecar restart, a gateway restart, each wake once at most."""
    daemon = make_daemon(FIRING, **QUIET)
    old = fire()  # before the plugin ever ran
    with plugin() as service:
        service("start")
        service("wait", mode="live")
        assert service("wakes") == [], "installing the plugin woke the agent for an old fire"

        seq = fire(25.0)
        service("wait", event="triggered", seq=seq)  # its state came first, then the event
        (wake,) = service("wakes")
        assert wake["contextKey"] == "agentctx:CARE"
        assert wake["text"].endswith(f"(now 25.0/20). {WAKE_PROMPT}"), wake["text"]
        assert old < seq

        daemon.stop()
        service("wait", mode="fallback")
        daemon.start()  # a reconnect: the whole state again, the same last_fired
        service("wait", mode="live")
        assert len(service("wakes")) == 1
        assert service("take") == [wake["text"]]  # the agent's turn took it
        service("stop")

        seq = fire()  # while the gateway is down
    with plugin() as restarted:  # a new gateway process, the same OpenClaw state dir
        restarted("start")
        restarted("wait", seq=seq)
        (again,) = restarted("wakes")
        assert "(now 21.0/20)" in again["text"] and again["text"] != wake["text"]
        assert restarted("log") == []
    with plugin({"wake": False}) as off:
        off("start")
        off("wait", seq=fire())
        assert off("wakes") == []
