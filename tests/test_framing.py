"""Framing as pure functions: no sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctx._core.errors import FrameTooLarge, ProtocolError
from agentctx._core.framing import FrameDecoder, encode_frame


def test_roundtrip_and_split_at_every_byte() -> None:
    payloads = [b'{"type":"ping","id":1}', b"{}", b'{"x":"' + b"y" * 1000 + b'"}']
    stream = b"".join(encode_frame(p) for p in payloads)
    for cut in range(len(stream) + 1):
        dec = FrameDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert got == payloads
        assert dec.pending == 0


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=20), st.data())
def test_any_chunking_gives_the_same_frames(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    dec = FrameDecoder()
    got: list[bytes] = []
    i = 0
    while i < len(stream):
        n = data.draw(st.integers(1, 64))
        got += dec.feed(stream[i : i + n])
        i += n
    assert got == payloads


def test_oversize_header_refused_before_body() -> None:
    dec = FrameDecoder(max_frame=1024)
    with pytest.raises(FrameTooLarge):
        dec.feed(struct.pack(">I", 1025))
    assert FrameDecoder(max_frame=1024).feed(struct.pack(">I", 1024)) == []


def test_zero_length_frame_is_an_error() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", 0))
    with pytest.raises(ProtocolError):
        encode_frame(b"")


def test_partial_header_waits() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x00") == []
    assert dec.feed(b"\x00\x02{}") == [b"{}"]
