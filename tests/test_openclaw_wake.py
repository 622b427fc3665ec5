"""The wake, with the real OpenClaw: a trigger that fires in the sidecar gives the
agent exactly one turn carrying the drive's prompt; a crossing the sidecar does not
fire (inside the cooldown) gives none; a fire while the gateway is stopped gives one
turn once it is back; fires from before the plugin was installed give none; with
the plugin's `sessionKey` set to another session, the turn runs in that session.

A real sidecar, the stub model (tests/stub_model.py records every request) and the
real openclaw (tests/openclaw_rig.py) in a private home, the plugin installed with
`agentctx hooks install openclaw`. The agent's heartbeat cadence is off
(`heartbeat.every: "0m"`): the config in which OpenClaw drops wakes of source
"other", so the wake must be one of source "hook" to pass at all.

"No turn" is checked over a quiet window of QUIET_S seconds after the last thing
that could have caused one (a wake reaches the model in 0.5 to 5 s here).

Skipped only when npm cannot reach its registry. Wall time on 2 cores shared with
other jobs, Node 24 and openclaw cached: 105 s measured (three `openclaw` calls of
~5 s to install, two gateway starts of 15 to 25 s, two wakes of 1 to 6 s, three quiet
windows of 6 s), and 40 to 60 s for the session test (one gateway start, two turns
over its HTTP endpoint, one wake); a wake that never comes costs WAKE_TIMEOUT_S more
before it fails.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openclaw_rig import OpenClaw, agentctx, install
from stub_model import StubModel
from support import DaemonProcess

import agentctx as client

PROMPTS = {
    "CARE": "Your CARE drive triggered. Check in with your human.",
    "REST": "Your REST drive triggered. Consolidate and reflect; start nothing new.",
    "PLAY": "Your PLAY drive triggered. Make something for fun.",
}
DRIVES = {
    name: {"threshold": 20, "activity_driven": True, "prompt": prompt, "cooldown_minutes": 30}
    for name, prompt in PROMPTS.items()
}
SIDECAR = {"tick_interval": 3600}  # a state changes only when the test changes it
QUIET_S = 6.0
WAKE_TIMEOUT_S = 90.0  # from the fire (or the gateway's start) to the model request
POLL_S = 0.2
FIRED_MEMORY = Path("plugins-state") / "agentctx" / "fired.json"
WAKE_PREFIX = "agentctx drive "
# OpenClaw shows each system event to the model as a JSON string of "System: [time] text" lines
CONVERSATION_DATA = re.compile(
    r'Conversation data \(data, not instructions\):\n("(?:[^"\\]|\\.)*")'
)
SYSTEM_LINE = re.compile(r"^System: \[[^\]]*\] (.*)$", re.M)


@pytest.fixture(scope="module")
def openclaw_cli() -> None:
    reason = install()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def rig(
    openclaw_cli: None,
    make_daemon: Callable[..., DaemonProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> Iterator[tuple[OpenClaw, StubModel]]:
    make_daemon(DRIVES, **SIDECAR)
    with (
        tempfile.TemporaryDirectory(prefix="agentctx-oc-") as root,
        StubModel(tmp_path / "requests.jsonl") as stub,
    ):
        yield OpenClaw(Path(root), stub.openai_url, env), stub


def system_events(body: dict[str, Any]) -> list[str]:
    """The texts of the system events OpenClaw put in this model request."""
    events = []
    for message in body["messages"]:
        content = message["content"]
        parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content]
        for part in parts:
            for quoted in CONVERSATION_DATA.findall(part):
                events += SYSTEM_LINE.findall(json.loads(quoted))
    return events


def wakes(body: dict[str, Any]) -> list[str]:
    return [e for e in system_events(body) if e.startswith(WAKE_PREFIX)]


def fire(name: str, amount: float) -> str:
    """Take *name* from calm to *amount* (over its threshold): the sidecar fires unless
    inside the cooldown. Its last_fired after."""
    client.satisfy(name, depth="full")
    client.bump(name, amount)
    drive = client.read().drives[name]
    assert drive["band"] == "triggered", drive
    last_fired: str = drive["last_fired"]
    return last_fired


def chats_after(stub: StubModel, since: int, want: int) -> list[dict[str, Any]]:
    """The model requests from the *since*-th on, once there are *want* of them (or the
    wait is over) and then none more for QUIET_S."""
    deadline = time.monotonic() + WAKE_TIMEOUT_S
    while len(stub.chats(since)) < want and time.monotonic() < deadline:
        time.sleep(POLL_S)
    time.sleep(QUIET_S)
    return stub.chats(since)


def handled(claw: OpenClaw) -> dict[str, datetime | None]:
    """The plugin's memory of the fires it handled, drive -> instant."""
    fired = json.loads((claw.state / FIRED_MEMORY).read_text())["fired"]
    return {drive: instant(iso) for drive, iso in fired.items()}


def instant(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso)


def test_a_fire_wakes_the_agent_once_even_while_the_gateway_was_down(
    rig: tuple[OpenClaw, StubModel],
) -> None:
    claw, stub = rig
    config = claw.seed()
    config["agents"]["defaults"]["heartbeat"]["every"] = "0m"  # no heartbeat cadence
    claw.config_path.write_text(json.dumps(config, indent=2))
    old = fire("PLAY", 21.0)  # before the plugin existed: no wake, ever
    client.satisfy("PLAY", depth="full")
    agentctx(claw, "hooks", "install", "openclaw")

    with claw.gateway() as gateway:
        gateway.wait_for("agentctx: live:")
        memory = claw.state / FIRED_MEMORY
        deadline = time.monotonic() + WAKE_TIMEOUT_S
        while not memory.exists() and time.monotonic() < deadline:
            time.sleep(POLL_S)  # the plugin's first state: old fires recorded as handled
        assert handled(claw) == {"CARE": None, "REST": None, "PLAY": instant(old)}

        # (a) a fire: one turn, the drive's prompt in its request
        mark = len(stub.requests())
        care = fire("CARE", 21.3)
        (turn,) = chats_after(stub, mark, 1)
        (text,) = wakes(turn)
        when = care[:19].replace("T", " ")
        assert text == f"{WAKE_PREFIX}CARE triggered at {when} UTC (now 21.3/20). {PROMPTS['CARE']}"

        # (b) a second crossing inside the cooldown: the sidecar does not fire, no turn
        mark = len(stub.requests())
        assert fire("CARE", 22.0) == care
        assert chats_after(stub, mark, 0) == []
    assert handled(claw)["CARE"] == instant(care)  # a turn took it: handled, not woken again

    # (c) a fire while no gateway runs: one turn once it is back, and only that one
    rest = fire("REST", 25.0)
    mark = len(stub.requests())
    with claw.gateway():
        (turn,) = chats_after(stub, mark, 1)
    (text,) = wakes(turn)
    when = rest[:19].replace("T", " ")
    assert text.startswith(f"{WAKE_PREFIX}REST triggered at {when} UTC (now 25.0/20). "), text
    assert text.endswith(PROMPTS["REST"]), text
    assert handled(claw) == {"CARE": instant(care), "REST": instant(rest), "PLAY": instant(old)}


SIDE_SESSION = "agent:main:side"  # a session of its own next to OpenClaw's main one
SIDE_MARK = "This is the side session, opened by the test."


def test_a_fire_wakes_the_session_the_plugin_is_told_to(
    rig: tuple[OpenClaw, StubModel],
) -> None:
    """`sessionKey` set to a session other than main: the wake's turn runs in that
    session (its own earlier turn is in the request's history) and main gets none."""
    claw, stub = rig
    config = claw.seed()
    config["agents"]["defaults"]["heartbeat"]["every"] = "0m"
    claw.config_path.write_text(json.dumps(config, indent=2))
    agentctx(claw, "hooks", "install", "openclaw")
    config = claw.config()
    config["plugins"]["entries"]["agentctx"].setdefault("config", {})["sessionKey"] = SIDE_SESSION
    claw.config_path.write_text(json.dumps(config, indent=2))

    with claw.gateway() as gateway:
        gateway.wait_for("agentctx: live:")
        gateway.turn(SIDE_MARK, session_key=SIDE_SESSION)  # the side session exists now
        gateway.turn("A turn in the main session.")
        mark = len(stub.requests())
        care = fire("CARE", 21.0)
        (turn,) = chats_after(stub, mark, 1)
        (text,) = wakes(turn)
        assert text.startswith(f"{WAKE_PREFIX}CARE triggered at {care[:19].replace('T', ' ')}")
        history = json.dumps(turn["messages"])
        assert SIDE_MARK in history, history[-3000:]  # woken in the side session...
        assert "A turn in the main session." not in history  # ...not in main
        gateway.wait_for(f"woke {SIDE_SESSION}")
    assert handled(claw)["CARE"] == instant(care)
