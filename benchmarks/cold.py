"""The push path with cold caches: what one rare event costs the daemon and a reader.

    python -m benchmarks.cold [SAMPLES]

A satisfy 100 ms after the last one finds the daemon's code and data evicted by
everything else the machine ran meanwhile; there, every Python call costs ~2 us
instead of ~0.1 (and a builtin ~1), which is where the push latency goes. This
evicts the caches before each sample (it walks 24 MiB and 70 000 objects), then
times, in this process:

  daemon  a satisfy through the real Hub: from its event's `ts` (the clock read that
          stamps it) to the last byte handed to the subscriber's socket
  reader  a state and its event, as `follow()` gets them from one read: frames
          split, the state's head and the event decoded, both handed out
  floor   the floor's publisher (json.dumps, header, send) and its reader (json.loads)

Each as the median over SAMPLES cold runs, then over as many warm ones. It is what
profiled the daemon's path step by step (docs/performance.md, "The cold path"); the
push rows of `python -m benchmarks` measure the whole, across processes.
"""

from __future__ import annotations

import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from agentctx._core.config import parse_config
from agentctx._core.framing import MAX_FRAME_LIMIT, FrameDecoder
from agentctx._core.protocol import Satisfy, encode_message
from agentctx.feed import Feed
from sidecar.clock import StepWatch
from sidecar.engine import Engine
from sidecar.hub import Hub
from sidecar.outbox import Outbox

CONFIG = b"[drives.B]\nthreshold = 1e9\nactivity_driven = true\n"  # as benchmarks.push
EVICT_BYTES = 24 << 20  # more than this machine's L3
_junk = bytearray(EVICT_BYTES)
_junk_objects = [str(i) * 3 for i in range(70_000)]


def evict() -> None:
    bytes(_junk)
    for s in _junk_objects:
        hash(s)


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def timed(fn: Callable[[], float], n: int) -> dict[str, float]:
    """*fn* returns the seconds it measured; n cold runs, then n warm ones."""
    cold = []
    for _ in range(n):
        evict()
        cold.append(fn())
    warm = [fn() for _ in range(n)]
    return {"cold_us": median_us(cold), "warm_us": median_us(warm)}


async def daemon(n: int, ours: socket.socket) -> dict[str, float]:
    """*ours*: a socket whose peer a process of its own drains (as a subscriber would)."""
    engine = Engine.create(parse_config(CONFIG, "cold"), time.time())
    tmp = Path(tempfile.mkdtemp(prefix="acx-cold-"))
    hub = Hub(engine, boot_id="0" * 32, seq=1, durable_path=tmp / "d", snapshot_path=tmp / "s")
    hub.steps = StepWatch()
    box = Outbox(ours, send_timeout=5.0)
    sent_at = [0.0]

    class Subscriber:
        def push(self, state: bytes, events: Any = (), joined: bytes = b"") -> None:
            box.push(state, events, joined)
            sent_at[0] = time.time()

    hub.subscribers.add(Subscriber())
    results: dict[str, float] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.run)
        await hub.save()
        ids = iter(range(1, 1 << 30))
        for label, evicting in (("cold_us", True), ("warm_us", False)):
            samples = []
            for _ in range(n):
                if evicting:
                    evict()
                i = next(ids)
                await hub.submit(Satisfy(id=i, request_id=f"cold-{i}", drive="B", amount=0.0))
                ts = engine.runtime()["B"].last_event
                assert ts is not None
                samples.append(sent_at[0] - ts)
                await anyio.sleep(0.001)  # the durable writer's turn
            results[label] = median_us(samples)
        tg.cancel_scope.cancel()
    return results


def reader(n: int) -> dict[str, float]:
    engine = Engine.create(parse_config(CONFIG, "cold"), time.time())
    hub = Hub(engine, boot_id="0" * 32, seq=1, durable_path=Path("d"), snapshot_path=Path("s"))
    reads = []
    for seq in range(2, 2 * n + 2):  # one read per sample, each a newer state
        events = engine.satisfy("B", time.time(), amount=0.0)
        hub.seq = seq
        for e in events:
            e.seq, e.reason = seq, "cold"
        reads.append(encode_message(hub.state()) + b"".join(encode_message(e) for e in events))
    buffer = memoryview(bytearray(1 << 16))
    decoder, feed, pending = FrameDecoder(MAX_FRAME_LIMIT), Feed(), iter(reads)

    def one() -> float:
        data = next(pending)
        buffer[: len(data)] = data  # as recv_into() leaves it
        t0 = time.perf_counter()
        feed.frames(decoder.feed(buffer[: len(data)]))
        feed.ready.popleft()
        feed.ready.popleft().data.get("ts")
        return time.perf_counter() - t0

    return timed(one, n)


def floor(n: int, ours: socket.socket) -> dict[str, Any]:
    header = struct.Struct(">I")
    pad = "x" * 800  # benchmarks.floor

    def publish() -> float:
        t0 = time.perf_counter()
        body = json.dumps({"ts": time.time(), "tag": "cold", "pad": pad}).encode()
        ours.send(header.pack(len(body)) + body)
        return time.perf_counter() - t0

    body = json.dumps({"ts": 1.0, "tag": "cold", "pad": pad}).encode()
    frame = header.pack(len(body)) + body

    def read() -> float:
        t0 = time.perf_counter()
        (size,) = header.unpack_from(frame)
        json.loads(frame[4 : 4 + size])
        return time.perf_counter() - t0

    return {"publisher": timed(publish, n), "reader": timed(read, n)}


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 300
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    drain = subprocess.Popen(["cat"], stdin=theirs.fileno(), stdout=subprocess.DEVNULL)
    theirs.close()
    try:
        out = {"daemon": anyio.run(daemon, n, ours), "reader": reader(n), "floor": floor(n, ours)}
    finally:
        drain.kill()
        drain.wait()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
