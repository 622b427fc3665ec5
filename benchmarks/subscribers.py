"""Subscriber processes for the push benchmark: one per system under test.

    python -m benchmarks.subscribers agentctx|redis|floor ADDRESS [COUNT]

Prints "ready" once subscribed, then records for every message the delay from
the timestamp the publisher put in it to its arrival here, until a message marked
"stop"; then prints one JSON object {round-message-tag: delay_s}. COUNT > 1 (agentctx
only) runs that many subscriptions in this one process.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from typing import Any


def _done(delays: dict[str, float]) -> None:
    sys.stdout.write(json.dumps(delays) + "\n")
    sys.stdout.flush()


def run_agentctx(address: str, count: int) -> None:
    import anyio

    import agentctx
    from agentctx.state import DriveEvent, Transition

    async def one(ready: anyio.Event, delays: dict[str, float]) -> None:
        async with agentctx.subscribe(socket_path=address, client="bench") as updates:
            async for u in updates:
                if isinstance(u, Transition) and u.mode == "live":
                    ready.set()
                elif isinstance(u, DriveEvent) and u.kind == "satisfied":
                    now = time.time()
                    tag = u.data.get("reason") or ""
                    if tag == "stop":
                        return
                    delays[tag] = now - float(u.data["ts"])

    async def main() -> None:
        all_delays = [dict[str, float]() for _ in range(count)]
        readies = [anyio.Event() for _ in range(count)]
        async with anyio.create_task_group() as tg:
            for ready, delays in zip(readies, all_delays, strict=True):
                tg.start_soon(one, ready, delays)
            for ready in readies:
                await ready.wait()
            print("ready", flush=True)
        if count == 1:
            _done(all_delays[0])
        else:  # many in one process: every delivery, tagged per subscriber
            _done({f"{i}:{k}": v for i, d in enumerate(all_delays) for k, v in d.items()})

    anyio.run(main)


def run_redis(address: str) -> None:
    import redis

    r = redis.Redis(unix_socket_path=address)
    p = r.pubsub()
    p.subscribe("drives")
    delays: dict[str, float] = {}
    for m in p.listen():
        if m["type"] == "subscribe":
            print("ready", flush=True)
        elif m["type"] == "message":
            now = time.time()
            data = json.loads(m["data"])
            if data.get("stop"):
                break
            delays[data["tag"]] = now - data["ts"]
    _done(delays)


def run_floor(address: str) -> None:
    async def main() -> None:
        reader, _writer = await asyncio.open_unix_connection(address)
        print("ready", flush=True)
        delays: dict[str, float] = {}
        while True:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            data: dict[str, Any] = json.loads(await reader.readexactly(n))
            now = time.time()
            if data.get("stop"):
                break
            delays[data["tag"]] = now - data["ts"]
        _done(delays)

    asyncio.run(main())


def main() -> None:
    system, address = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if system == "agentctx":
        run_agentctx(address, count)
    elif system == "redis":
        run_redis(address)
    elif system == "floor":
        run_floor(address)
    else:
        raise SystemExit(f"unknown system {system}")


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
