"""One client's outgoing frames: the fast path writes at once, a full socket queues."""

from __future__ import annotations

import socket

import anyio
import pytest

from sidecar.outbox import Outbox

pytestmark = pytest.mark.anyio


def pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    return ours, theirs


def drain(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        out += chunk


async def test_a_push_is_written_at_once_joined_or_not() -> None:
    ours, theirs = pair()
    box = Outbox(ours, send_timeout=5.0)
    box.push(b"S1", [b"E1", b"E2"])
    assert drain(theirs) == b"S1E1E2"  # no sender task ran: written inside push()
    box.push(b"S2", [b"E3"], joined=b"S2E3")  # the hub joins once for every subscriber
    box.push(b"S3")
    assert drain(theirs) == b"S2E3S3"


async def test_a_full_socket_queues_and_the_newest_state_replaces_an_unsent_one() -> None:
    ours, theirs = pair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    box = Outbox(ours, send_timeout=5.0)
    big = b"x" * 100_000
    box.send(big)  # an answer, queued: a state pushed now waits behind it
    box.push(b"OLD", [b"EV1"], joined=b"OLDEV1")
    box.push(b"NEW", [b"EV2"], joined=b"NEWEV2")
    received = b""
    async with anyio.create_task_group() as tg:
        tg.start_soon(box.run)
        with anyio.fail_after(5):
            while not received.endswith(b"EV2"):
                received += drain(theirs)
                await anyio.sleep(0.001)
        box.close()
    # the answer, then the newest state in the slot the first unsent one took, then every
    # event in order: the state OLD was superseded unsent
    assert received == big + b"NEWEV1EV2"
