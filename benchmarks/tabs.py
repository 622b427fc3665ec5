"""Browser tabs for the web benchmark: N SSE clients of `agentctx web` in one process.

    python -m benchmarks.tabs BASE_URL TOKEN N

Prints "ready" once every tab has had its first state, then reads until stdin
closes and prints one JSON object: {"states": received, "seconds": since ready}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

HEADER = "X-Agentctx-Token"


async def tab(client: httpx.AsyncClient, ready: asyncio.Event, counts: list[int], i: int) -> None:
    async with client.stream("GET", "/events") as r:
        async for line in r.aiter_lines():
            if line == "event: state":
                counts[i] += 1
                if counts[i] == 1:
                    ready.set()


async def main(base: str, token: str, n: int) -> None:
    counts = [0] * n
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(30.0)
    async with httpx.AsyncClient(
        base_url=base, headers={HEADER: token}, limits=limits, timeout=timeout
    ) as client:
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(tab(client, readies[i], counts, i)) for i in range(n)]
        for ready in readies:
            await ready.wait()
        before, t0 = sum(counts), time.monotonic()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the runner closes our stdin
        result = {"states": sum(counts) - before, "seconds": time.monotonic() - t0}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
