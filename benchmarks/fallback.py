"""File fallback latency: a snapshot write -> `subscribe()` (following the file while
the socket is down) hands over the new state. Also counts missed updates and the
subscriber's CPU use.

    python -m benchmarks.fallback [--updates 300] [--interval 0.02]

A writer process replaces the snapshot atomically (temp + rename, as the daemon
does) every --interval seconds with a new seq and its write time; this process
subscribes with no daemon socket and timestamps each state it is handed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

from agentctx.state import DriveState
from agentctx.subscription import Subscription
from benchmarks.common import summary_us

WRITER = r"""
import json, os, sys, time
path, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
base = json.loads(open(path).read())
time.sleep(0.5)  # let the subscriber settle into fallback
for i in range(1, n + 1):
    base["seq"] = 10 + i
    base["tick_ts"] = time.time()
    tmp = path + ".tmp"
    base["written_at"] = time.time()
    with open(tmp, "wb") as f:
        f.write(json.dumps(base).encode())
    os.replace(tmp, path)
    time.sleep(interval)
"""


async def follow(run: Path, n: int, interval: float) -> dict[str, object]:
    snap = run / "drives-state.json"
    snap.write_text(
        json.dumps(
            {
                "seq": 10,
                "tick_ts": time.time(),
                "tick_interval": 1.0,
                "drives": {"A": {"pressure": 0.0}},
            }
        )
    )
    latencies: list[float] = []
    seen: set[int] = set()
    last_seq = 10 + n
    cpu0 = time.process_time()
    writer = await anyio.open_process(
        [sys.executable, "-c", WRITER, str(snap), str(n), str(interval)]
    )
    t_start = time.monotonic()
    with anyio.fail_after(30 + n * interval * 2):
        async with Subscription(
            socket_path=run / "absent.sock",
            snapshot_path=snap,
            reconnect_min=3600,
            reconnect_max=3600,
        ) as updates:
            async for u in updates:
                if isinstance(u, DriveState) and "written_at" in u.data:
                    latencies.append(time.time() - float(u.data["written_at"]))
                    seen.add(u.seq)
                    if u.seq == last_seq:
                        break
    elapsed = time.monotonic() - t_start
    cpu = time.process_time() - cpu0
    await writer.wait()
    return {
        "updates_written": n,
        "updates_received": len(seen),
        "missed": n - len(seen),
        "final_received": last_seq in seen,
        "latency": summary_us(latencies),
        "reader_cpu_percent": round(100 * cpu / elapsed, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentctx-fallback-") as tmp:
        run = Path(tmp)
        os.chmod(run, 0o700)
        result = anyio.run(follow, run, args.updates, args.interval)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
