"""agentctx web, piece by piece: the listen address, the Host rule, the SSE framing,
the bridge's fan-out and what a slow tab may hold. The whole, over real sockets, is
in test_web_http.py and (in Chromium) test_web_browser.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentctx._core.errors import UsageError
from agentctx._core.history import append
from agentctx.state import DriveEvent, DriveState, Transition
from agentctx.web.address import parse_listen
from agentctx.web.bridge import Bridge
from agentctx.web.security import HostCheck, host_name
from agentctx.web.sse import HEARTBEAT, OUTLET_EVENTS, Outlet, message


def state(seq: int, boot: str = "b1", tick_ts: float = 1000.0) -> DriveState:
    drive = {"pressure": 1.0, "threshold": 10.0, "ratio": 0.1, "band": "latent"}
    data = {
        "type": "state",
        "seq": seq,
        "boot_id": boot,
        "tick_ts": tick_ts,
        "drives": {"A": drive},
    }
    return DriveState(data, "socket")


def event(seq: int, kind: str = "bumped") -> DriveEvent:
    return DriveEvent({"type": "event", "seq": seq, "kind": kind, "drive": "A", "ts": 1.0})


def parse(chunk: bytes) -> list[dict[str, Any]]:
    """SSE messages in a chunk, as {event, id?, data}."""
    out = []
    for block in chunk.decode().split("\n\n"):
        if not block or block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        fields["data"] = json.loads(fields["data"])
        out.append(fields)
    return out


# --- the address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8765", "127.0.0.1", 8765),
        ("localhost:0", "127.0.0.1", 0),
        ("[::1]:9000", "::1", 9000),
        ("127.1.2.3:80", "127.1.2.3", 80),
    ],
)
def test_loopback_addresses_are_taken(text: str, host: str, port: int) -> None:
    address = parse_listen(text, allow_remote=False)
    assert (address.host, address.port) == (host, port)
    assert address.loopback


@pytest.mark.parametrize("text", ["0.0.0.0:8765", "192.168.1.5:80", "[::]:8765"])
def test_other_addresses_need_allow_remote(text: str) -> None:
    with pytest.raises(UsageError, match="--allow-remote"):
        parse_listen(text, allow_remote=False)
    assert not parse_listen(text, allow_remote=True).loopback


@pytest.mark.parametrize("text", ["8765", "example.com:80", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(text, allow_remote=True)


def test_a_wildcard_address_opens_on_loopback() -> None:
    assert parse_listen("0.0.0.0:8765", True).url(8765) == "http://127.0.0.1:8765/"
    assert parse_listen("[::1]:0", False).url(4000) == "http://[::1]:4000/"


# --- the Host rule (DNS rebinding) ----------------------------------------------------


def test_host_names_lose_their_port() -> None:
    assert host_name("LocalHost:8765") == "localhost"
    assert host_name("[::1]:8765") == "::1"
    assert host_name("example.com") == "example.com"


def test_loopback_listener_answers_only_to_its_own_names() -> None:
    hosts = HostCheck(parse_listen("127.0.0.1:8765", False))
    for ok in ("127.0.0.1:8765", "localhost:8765", "localhost", "127.0.0.1"):
        assert hosts.allows(ok), ok
    for bad in ("evil.example", "evil.example:8765", "127.0.0.2:8765", "10.0.0.1", "", None):
        assert not hosts.allows(bad), bad


def test_a_wildcard_listener_takes_addresses_but_no_foreign_names() -> None:
    hosts = HostCheck(parse_listen("0.0.0.0:8765", True))
    assert hosts.allows("10.0.0.7:8765")  # an address cannot be rebound
    assert hosts.allows("[fe80::1]:8765")
    assert not hosts.allows("attacker.example:8765")


# --- SSE framing and one tab's outlet ---------------------------------------------------


def test_a_message_is_one_event_line_and_one_data_line() -> None:
    raw = message("drive", {"reason": "two\nlines\r\u2028"}, id=7)
    assert raw.endswith(b"\n\n")
    lines = raw.decode().rstrip("\n").split("\n")
    assert lines[:2] == ["event: drive", "id: 7"]
    assert len(lines) == 3
    assert json.loads(lines[2].removeprefix("data: ")) == {"reason": "two\nlines\r\u2028"}


@pytest.mark.anyio
async def test_a_slow_tab_holds_the_newest_state_and_a_bounded_queue() -> None:
    outlet = Outlet()
    for seq in range(10_000):
        outlet.put_state(seq, message("state", {"seq": seq}, id=seq))
        outlet.put_event(message("drive", {"seq": seq}))
    outlet.put_status(message("status", {"mode": "live"}))
    assert len(outlet.events) == OUTLET_EVENTS
    assert outlet.dropped == 10_000 - OUTLET_EVENTS
    chunk = await outlet.take(1.0)
    assert chunk is not None
    sent = parse(chunk)
    assert [m["event"] for m in sent[:2]] == ["state", "status"]
    assert sent[0]["data"] == {"seq": 9999}  # only the newest state, first
    assert [m["data"]["seq"] for m in sent[2:]] == list(range(10_000 - OUTLET_EVENTS, 10_000))
    assert await outlet.take(0.01) == b""  # drained: the caller sends a heartbeat
    outlet.close()
    assert await outlet.take(1.0) is None
    assert HEARTBEAT.startswith(b":")


# --- the bridge ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_new_tab_gets_the_state_first_then_status_then_the_history(tmp_path: Path) -> None:
    append(tmp_path, [json.dumps(event(s).data).encode() for s in (3, 4, 5)])
    bridge = Bridge(tmp_path, recent=2)
    bridge.recent.extend(bridge._load_history())
    bridge.apply(Transition("live", "connected"))
    bridge.apply(state(6))
    sent = parse(await bridge.attach(None).take(1.0) or b"")
    assert [(m["event"], m.get("id")) for m in sent] == [
        ("state", "6"),
        ("status", None),
        ("drive", None),
        ("drive", None),
    ]
    assert [m["data"]["seq"] for m in sent[2:]] == [4, 5]  # the newest `recent` of the history
    assert sent[0]["data"]["source"] == "socket"
    assert sent[1]["data"]["mode"] == "live"


@pytest.mark.anyio
async def test_last_event_id_is_never_answered_with_that_seq_or_older(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    for seq in (10, 11, 12):
        bridge.apply(state(seq))
        bridge.apply(event(seq))
    caught_up = parse(await bridge.attach(12).take(1.0) or b"")
    assert [m["event"] for m in caught_up] == ["status"]  # has 12: no state, no event
    behind = parse(await bridge.attach(10).take(1.0) or b"")
    assert [(m["event"], m["data"].get("seq")) for m in behind] == [
        ("state", 12),
        ("status", None),
        ("drive", 11),
        ("drive", 12),
    ]
    ahead = parse(await bridge.attach(99).take(1.0) or b"")  # a sidecar that lost its seq
    assert [m["event"] for m in ahead] == ["status"]


@pytest.mark.anyio
async def test_a_tab_back_before_the_first_state_still_gets_nothing_older(tmp_path: Path) -> None:
    """A restarted web view has no state yet when the tab reconnects with its seq."""
    bridge = Bridge(tmp_path)
    tab = bridge.attach(7)
    await tab.take(1.0)  # the status
    bridge.apply(state(7))  # the same state the tab has: not sent
    bridge.apply(state(8))
    assert [(m["event"], m["data"]["seq"]) for m in parse(await tab.take(1.0) or b"")] == [
        ("state", 8)
    ]


@pytest.mark.anyio
async def test_the_bridge_fans_out_and_a_gone_tab_is_forgotten(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    tabs = [bridge.attach(None) for _ in range(3)]
    bridge.apply(state(1))
    bridge.apply(Transition("fallback", "sidecar gone"))
    bridge.apply(state(2))
    for tab in tabs:
        sent = parse(await tab.take(1.0) or b"")
        assert [m["event"] for m in sent] == ["state", "status"]
        assert sent[0]["data"]["seq"] == 2
        assert sent[0]["data"]["source"] == "file"  # current by the file while down
        assert sent[1]["data"]["mode"] == "fallback"
    tabs[0].dropped = 5
    bridge.detach(tabs[0])
    bridge.detach(tabs[0])
    assert len(bridge.outlets) == 2
    assert bridge.dropped_events == 5
    bridge.close()
    for tab in tabs[1:]:
        assert await tab.take(1.0) is None


def test_the_state_is_aged_when_it_is_sent(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    bridge.apply(state(1, tick_ts=1000.0))
    payload = bridge.state_payload(now=1012.5)
    assert payload is not None
    assert payload["age_s"] == 12.5
    assert payload["stale"] is True
    assert bridge.status_payload(now=1012.5)["age_s"] == 12.5
