"""The hub and server in-process: isolation between clients, group commit."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest
from support import AsyncRawClient

from agentctx._core.protocol import Bump
from sidecar.daemon import Daemon
from sidecar.store import load_durable

pytestmark = pytest.mark.anyio


def bump(n: int, drive: str = "A", request_id: str | None = None) -> dict[str, object]:
    return {
        "type": "bump",
        "id": n,
        "request_id": request_id or uuid.uuid4().hex,
        "drive": drive,
        "amount": 1.0,
    }


async def test_handler_exception_stays_in_its_connection(
    inproc: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = inproc.hub
    assert hub is not None
    real_submit = hub.submit

    async def exploding_submit(req: Bump, at: float | None = None) -> int:
        if req.reason == "explode":
            raise RuntimeError("injected bug")
        return await real_submit(req, at)

    monkeypatch.setattr(hub, "submit", exploding_submit)
    bystander = await AsyncRawClient.connect(inproc.layout.socket)
    victim = await AsyncRawClient.connect(inproc.layout.socket, subscribe=False)
    await victim.send({**bump(1), "reason": "explode"})
    error = await victim.recv_until(lambda m: m["type"] == "error")
    assert error["code"] == "internal"
    await bystander.send(bump(2))
    ack = await bystander.recv_until(lambda m: m["type"] == "ack")
    assert ack["id"] == 2
    # and new connections are still accepted
    late = await AsyncRawClient.connect(inproc.layout.socket, subscribe=False)
    await late.send({"type": "ping", "id": 9})
    assert (await late.recv())["type"] == "pong"
    for c in (bystander, victim, late):
        await c.aclose()


async def test_concurrent_requests_share_fsyncs(inproc: Daemon) -> None:
    hub = inproc.hub
    assert hub is not None
    before = hub.durable_writer.written_seq
    clients = [
        await AsyncRawClient.connect(inproc.layout.socket, subscribe=False) for _ in range(20)
    ]
    writes = 0
    real_save = hub._save

    def counting_save(state: object) -> None:
        nonlocal writes
        writes += 1
        real_save(state)  # type: ignore[arg-type]

    hub.durable_writer._write = counting_save  # type: ignore[assignment]

    async def one(c: AsyncRawClient, n: int) -> None:
        await c.send(bump(n))
        assert (await c.recv_until(lambda m: m["type"] in ("ack", "error")))["type"] == "ack"

    async with anyio.create_task_group() as tg:
        for n, c in enumerate(clients):
            tg.start_soon(one, c, n)
    assert hub.engine.pressure("A") == 20.0
    assert hub.durable_writer.written_seq > before
    assert writes < 20  # group commit: fewer fsyncs than requests
    durable = load_durable(inproc.layout.durable)
    assert durable is not None and durable.drives["A"].pressure == 20.0
    for c in clients:
        await c.aclose()


class TestFastTicks:
    @pytest.fixture
    def inproc_config(self) -> str:
        return (
            "[sidecar]\ntick_interval = 0.001\nclient_send_timeout = 0.5\n"
            "[drives.A]\nthreshold = 1e9\nactivity_driven = true\n"
        )

    async def test_stuck_subscriber_is_dropped_others_unaffected(self, inproc: Daemon) -> None:
        await stuck_subscriber_is_dropped(inproc)


async def stuck_subscriber_is_dropped(inproc: Daemon) -> None:
    stuck = await AsyncRawClient.connect(inproc.layout.socket)  # never reads again
    reader = await AsyncRawClient.connect(inproc.layout.socket)
    server_side_count = len(inproc.hub.subscribers) if inproc.hub else 0
    assert server_side_count == 2
    deadline = time.monotonic() + 10
    last_seq = 0
    while inproc.hub is not None and len(inproc.hub.subscribers) == 2:
        msg = await reader.recv()
        if msg["type"] == "state":
            assert msg["seq"] > last_seq
            last_seq = msg["seq"]
        assert time.monotonic() < deadline, "stuck client never dropped"
    # the reader still gets fresh states after the drop
    msg = await reader.recv_until(lambda m: m["type"] == "state" and m["seq"] > last_seq)
    assert msg["seq"] > last_seq
    # the stuck client, reading at last, finds its backlog and then a final error
    frames: list[dict[str, object]] = []
    with anyio.fail_after(10):
        try:
            while True:
                frames.append(await stuck.recv())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "slow_consumer"
    assert all(f["type"] in ("state", "event") for f in frames[:-1])
    await stuck.aclose()
    await reader.aclose()
