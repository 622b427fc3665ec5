"""The message schema: one definition, tagged union, strict on the way in."""

from __future__ import annotations

import json
import typing

import msgspec
import pytest

from agentctx import blocking
from agentctx._core import protocol as p
from agentctx._core.errors import RequestFailed


def test_client_messages_decode_and_ignore_unknown_fields() -> None:
    msg = p.decode_client(
        b'{"type":"satisfy","id":3,"request_id":"r","drive":"CARE",'
        b'"depth":"deep","future_field":[1,2]}'
    )
    assert isinstance(msg, p.Satisfy) and msg.depth == "deep"
    hello = p.decode_client(b'{"type":"hello","proto":1}')
    assert isinstance(hello, p.Hello) and hello.subscribe is True


@pytest.mark.parametrize(
    ("payload", "code", "id"),
    [
        (b"garbage", "bad_frame", None),
        (b"[1,2]", "bad_frame", None),
        (b'{"id":4}', "bad_frame", 4),
        (b'{"type":"nope","id":4}', "unknown_type", 4),
        (b'{"type":"bump","id":5,"request_id":"r","drive":"A"}', "bad_request", 5),
        (b'{"type":"bump","id":5,"request_id":"r","drive":"A","amount":1e400}', "bad_request", 5),
        (b'{"type":"bump","id":5,"request_id":"r","drive":"A","amount":-1}', "bad_request", 5),
        (b'{"type":"satisfy","id":6,"request_id":"r","drive":"A","depth":"x"}', "bad_request", 6),
        (b'{"type":"get","id":"seven"}', "bad_request", None),
        (b'{"type":"ping","id":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "bad_frame", None),
    ],
)
def test_bad_client_frames_are_classified(payload: bytes, code: str, id: int | None) -> None:
    with pytest.raises(RequestFailed) as info:
        p.decode_client(payload)
    assert info.value.code == code
    assert info.value.id == id


def test_event_uses_from_and_to_keys() -> None:
    ev = p.Event(
        seq=1,
        kind="band_changed",
        drive="A",
        ts=1.0,
        pressure=1.0,
        ratio=1.0,
        band="triggered",
        from_band="elevated",
        to_band="triggered",
    )
    data = json.loads(p.encode(ev))
    assert data["from"] == "elevated" and data["to"] == "triggered"
    assert msgspec.json.decode(p.encode(ev), type=p.ServerMessage) == ev


def test_state_is_a_superset_of_emergence_drives_state() -> None:
    view = p.DriveView(
        pressure=1.0,
        threshold=2.0,
        status="building",
        description="d",
        last_triggered=None,
        ratio=0.5,
        band="available",
        rate_per_hour=1.0,
        max_pressure=3.0,
        activity_driven=False,
        last_satisfied=None,
    )
    state = p.State(
        version="1.0",
        last_tick="2026-01-01T00:00:00+00:00",
        seq=1,
        boot_id="b",
        tick_ts=0.0,
        tick_interval=1.0,
        drives={"A": view},
    )
    data = json.loads(p.encode(state))
    assert "id" not in data  # omitted unless answering a get
    assert data["version"] == "1.0" and data["last_tick"]
    for key in ("pressure", "threshold", "status", "description", "last_triggered"):
        assert key in data["drives"]["A"]
    assert p.state_from_dict(json.loads(p.encode(state))) == state


# --- the hand copies on the stdlib hook path, tied to the schema ----------------------


@pytest.mark.parametrize("subscribe", [True, False])
def test_hook_hello_is_what_the_schema_encodes(subscribe: bool) -> None:
    assert blocking.PROTO == p.PROTO_VERSION
    hello = p.Hello(proto=p.PROTO_VERSION, client="hook", subscribe=subscribe)
    assert blocking.hello_payload("hook", subscribe) == p.encode(hello)


def test_hook_get_frame_is_what_the_schema_encodes() -> None:
    assert p.encode_message(p.Get(id=blocking.GET_ID)) == blocking.GET_FRAME


def test_client_types_are_read_off_the_union() -> None:
    tags = {t.__struct_config__.tag for t in typing.get_args(p.ClientMessage)}
    assert p.CLIENT_TYPES == tags == {"hello", "get", "satisfy", "bump", "reset", "ping"}


def test_depths_match_the_schema_literal() -> None:
    assert tuple(p.DEPTHS) == typing.get_args(p.Depth)
