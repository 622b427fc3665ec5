"""The followers' feed: frames of one read in, updates out, in order, never older."""

from __future__ import annotations

import json

import msgspec
import pytest

from agentctx._core.errors import ProtocolError
from agentctx._core.protocol import Event, encode
from agentctx.feed import Feed
from agentctx.state import DriveEvent, DriveState


def state(seq: int, boot_id: str = "b1", tick_ts: float = 100.0) -> bytes:
    # what the feed reads of a state is its head; the rest is decoded on first use
    body = {"type": "state", "seq": seq, "boot_id": boot_id, "tick_ts": tick_ts}
    return json.dumps({**body, "drives": {"CARE": {"pressure": 1.0}}}).encode()


def event(seq: int) -> bytes:
    return encode(
        Event(
            seq=seq, kind="satisfied", drive="CARE", ts=1.0, pressure=0.5, ratio=0.05, band="latent"
        )
    )


def test_a_state_then_its_event_in_order_with_the_head_read_before_the_data() -> None:
    feed = Feed()
    feed.frames([state(7), event(7)])
    s, e = feed.ready
    assert isinstance(s, DriveState) and isinstance(e, DriveEvent)
    assert (s.seq, s.boot_id, s.tick_ts, s.marked_stale) == (7, "b1", 100.0, False)
    assert s.data["drives"]["CARE"]["pressure"] == 1.0  # decoded now, the same head
    assert (s.seq, s.boot_id, s.tick_ts) == (7, "b1", 100.0)
    assert e.kind == "satisfied" and e.seq == 7 and e.data["pressure"] == 0.5


def test_an_event_written_in_another_key_order_is_still_an_event() -> None:
    # Events are recognised by how the daemon writes them (the tag first) without a
    # second decode; any other spelling goes the general way and is an event all the same.
    reordered = json.dumps({"seq": 3, "kind": "bumped", "drive": "CARE", "type": "event"})
    feed = Feed()
    feed.frames([reordered.encode(), event(4)])
    assert [type(u) for u in feed.ready] == [DriveEvent, DriveEvent]
    assert [u.seq for u in feed.ready] == [3, 4]


@pytest.mark.parametrize(
    "frame",
    [b'{"type":"event","seq":', b'{"type":"event"}}', b"[1, 2]", b"nope"],
)
def test_a_broken_frame_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError, match="bad frame from the sidecar"):
        Feed().frames([frame])


@pytest.mark.parametrize("seq", ['"seven"', "null", "[7]"])
def test_a_state_whose_seq_is_not_a_number_is_a_protocol_error(seq: str) -> None:
    frame = state(7).replace(b'"seq": 7', b'"seq": ' + seq.encode())
    with pytest.raises(ProtocolError, match=r"bad frame from the sidecar: .*\$\.seq"):
        Feed().frames([frame])


def test_an_older_state_is_never_handed_out_but_its_events_are() -> None:
    feed = Feed()
    feed.frames([state(9)])
    feed.frames([state(8), event(8)])
    assert [(type(u).__name__, u.seq) for u in feed.ready] == [("DriveState", 9), ("DriveEvent", 8)]
    # a daemon that lost its state (new boot id, lower seq) is followed once its tick is newer
    feed.frames([state(1, boot_id="b2", tick_ts=50.0), state(2, boot_id="b2", tick_ts=200.0)])
    assert feed.last is not None and (feed.last.seq, feed.last.boot_id) == (2, "b2")


def test_a_lazy_state_compares_with_a_state_read_from_a_file() -> None:
    feed = Feed()
    from_file = DriveState(msgspec.json.decode(state(5)), "file")
    feed.file_state(from_file)
    feed.frames([state(5), state(6)])
    assert [u.seq for u in feed.ready] == [5, 6]
    assert feed.ready[1].source == "socket"
