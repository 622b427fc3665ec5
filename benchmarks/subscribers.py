"""Subscriber processes for the push benchmark: one per system under test.

    python -m benchmarks.subscribers SYSTEM ADDRESS [COUNT]

SYSTEM is one of
  agentctx        `agentctx.subscribe()` (asyncio)       | the async pair
  redis-async     redis-py's `redis.asyncio` pubsub       |
  floor-async     a bare asyncio reader (StreamReader)    |
  agentctx-sync   `agentctx.follow()` (blocking)          | the sync pair
  redis           redis-py's blocking `pubsub.listen()`   |
  floor-sync      a bare blocking-socket reader           |
  raw-daemon      a bare blocking-socket reader of the agentctx daemon itself (what
                  the daemon's own fan-out costs, without any client library)

Prints "ready" once subscribed, then records for every message the delay from the
timestamp its publisher put in it to the moment the message is in the reader's
hands (decoded), until a message marked "stop"; then prints one JSON object
{round-message-tag: delay_s}. COUNT > 1 (agentctx only) runs that many
subscriptions in this one process, and the tags are prefixed with theirs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from typing import Any

_HEADER = struct.Struct(">I")


_cpu_at_ready = 0.0


def _done(delays: dict[str, float]) -> None:
    # This process's CPU (user + system) from "ready" to the stop message: what the
    # reader costs per delivery (ticks included), measured where it is spent.
    delays["_cpu_s"] = time.process_time() - _cpu_at_ready
    sys.stdout.write(json.dumps(delays) + "\n")
    sys.stdout.flush()


def _ready() -> None:
    global _cpu_at_ready
    _cpu_at_ready = time.process_time()
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def run_agentctx(address: str, count: int) -> None:
    import anyio

    import agentctx
    from agentctx.state import DriveEvent, Transition

    async def one(ready: anyio.Event, delays: dict[str, float]) -> None:
        async with agentctx.subscribe(socket_path=address, client="bench") as updates:
            async for u in updates:
                if type(u) is DriveEvent:
                    now = time.time()
                    data = u.data
                    if data.get("kind") != "satisfied":
                        continue
                    tag = data.get("reason") or ""
                    if tag == "stop":
                        return
                    delays[tag] = now - data["ts"]
                elif isinstance(u, Transition) and u.mode == "live":
                    ready.set()

    async def main() -> None:
        all_delays = [dict[str, float]() for _ in range(count)]
        readies = [anyio.Event() for _ in range(count)]
        async with anyio.create_task_group() as tg:
            for ready, delays in zip(readies, all_delays, strict=True):
                tg.start_soon(one, ready, delays)
            for ready in readies:
                await ready.wait()
            _ready()
        if count == 1:
            _done(all_delays[0])
        else:  # many in one process: every delivery, tagged per subscriber
            _done({f"{i}:{k}": v for i, d in enumerate(all_delays) for k, v in d.items()})

    anyio.run(main)


def run_agentctx_sync(address: str) -> None:
    from pathlib import Path

    import agentctx
    from agentctx.state import DriveEvent, Transition

    delays: dict[str, float] = {}
    with agentctx.follow(socket_path=Path(address), client="bench-sync") as updates:
        for u in updates:
            if type(u) is DriveEvent:
                now = time.time()
                data = u.data
                if data.get("kind") != "satisfied":
                    continue
                tag = data.get("reason") or ""
                if tag == "stop":
                    break
                delays[tag] = now - data["ts"]
            elif isinstance(u, Transition) and u.mode == "live":
                _ready()
    _done(delays)


def run_redis(address: str) -> None:
    import redis

    r = redis.Redis(unix_socket_path=address)
    p = r.pubsub()
    p.subscribe("drives")
    delays: dict[str, float] = {}
    for m in p.listen():
        if m["type"] == "subscribe":
            _ready()
        elif m["type"] == "message":
            now = time.time()
            data = json.loads(m["data"])
            if data.get("stop"):
                break
            delays[data["tag"]] = now - data["ts"]
    _done(delays)


def run_redis_async(address: str) -> None:
    import redis.asyncio as aioredis

    async def main() -> None:
        r = aioredis.Redis(unix_socket_path=address)
        p = r.pubsub()
        await p.subscribe("drives")
        delays: dict[str, float] = {}
        async for m in p.listen():
            if m["type"] == "subscribe":
                _ready()
            elif m["type"] == "message":
                now = time.time()
                data = json.loads(m["data"])
                if data.get("stop"):
                    break
                delays[data["tag"]] = now - data["ts"]
        await r.aclose()
        _done(delays)

    asyncio.run(main())


def run_floor_async(address: str) -> None:
    async def main() -> None:
        reader, _writer = await asyncio.open_unix_connection(address)
        _ready()
        delays: dict[str, float] = {}
        while True:
            (n,) = _HEADER.unpack(await reader.readexactly(4))
            data: dict[str, Any] = json.loads(await reader.readexactly(n))
            now = time.time()
            if data.get("stop"):
                break
            delays[data["tag"]] = now - data["ts"]
        _done(delays)

    asyncio.run(main())


def _blocking_frames(sock: socket.socket) -> Any:
    """Frames from a blocking socket: one recv per wake-up, split in place."""
    buf = b""
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        buf += data
        while len(buf) >= 4:
            (n,) = _HEADER.unpack_from(buf)
            if len(buf) < 4 + n:
                break
            yield buf[4 : 4 + n]
            buf = buf[4 + n :]


def run_floor_sync(address: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    _ready()
    delays: dict[str, float] = {}
    for frame in _blocking_frames(sock):
        data = json.loads(frame)
        now = time.time()
        if data.get("stop"):
            break
        delays[data["tag"]] = now - data["ts"]
    _done(delays)


def run_raw_daemon(address: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    hello = json.dumps({"type": "hello", "proto": 1, "client": "bench-raw", "subscribe": True})
    sock.sendall(_HEADER.pack(len(hello)) + hello.encode())
    delays: dict[str, float] = {}
    for frame in _blocking_frames(sock):
        data = json.loads(frame)
        if data.get("type") == "welcome":
            _ready()
        if data.get("type") != "event" or data.get("kind") != "satisfied":
            continue
        now = time.time()
        if data.get("reason") == "stop":
            break
        delays[data["reason"]] = now - data["ts"]
    _done(delays)


def main() -> None:
    system, address = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if system == "agentctx":
        run_agentctx(address, count)
        return
    runners = {
        "agentctx-sync": run_agentctx_sync,
        "redis": run_redis,
        "redis-async": run_redis_async,
        "floor-async": run_floor_async,
        "floor-sync": run_floor_sync,
        "raw-daemon": run_raw_daemon,
    }
    if system not in runners:
        raise SystemExit(f"unknown system {system}")
    runners[system](address)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
