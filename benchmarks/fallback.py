"""File fallback latency: a snapshot write -> the follower (following the file while
the socket is down) hands over the new state; for `subscribe()` and `follow()`. Also
counts missed updates and the follower's CPU use.

    python -m benchmarks.fallback [--updates 300] [--interval 0.02] [--load 100]

A writer process replaces the snapshot atomically (temp + rename, as the daemon
does) every --interval seconds with a new seq and its write time; this process
follows it with no daemon socket and timestamps each state it is handed. With
--load N (the default in `python -m benchmarks`), N `subscribe()` processes of a
daemon receiving 10 satisfies a second run meanwhile: the machine is as busy as
during the push benchmark, not idle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio

from agentctx.feed import Update
from agentctx.follower import Follower
from agentctx.state import DriveState
from agentctx.subscription import Subscription
from benchmarks.common import busy_percent, machine_busy, summary_us
from benchmarks.load import push_load

WRITER = r"""
import json, os, sys, time
path, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
base = json.loads(open(path).read())
time.sleep(0.5)  # let the follower settle into fallback
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
NO_RECONNECT = 3600.0  # the socket never comes back during the measurement


class _Tally:
    def __init__(self, snap: Path, n: int) -> None:
        self.snap = snap
        self.n = n
        self.last_seq = 10 + n
        self.latencies: list[float] = []
        self.seen: set[int] = set()
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
        self.cpu0 = time.process_time()
        self.t0 = time.monotonic()

    def writer_argv(self, interval: float) -> list[str]:
        return [sys.executable, "-c", WRITER, str(self.snap), str(self.n), str(interval)]

    def add(self, u: Update) -> bool:
        """Count *u*; True once the last write was handed over."""
        if isinstance(u, DriveState) and "written_at" in u.data:
            self.latencies.append(time.time() - float(u.data["written_at"]))
            self.seen.add(u.seq)
            return u.seq == self.last_seq
        return False

    def result(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.t0
        cpu = time.process_time() - self.cpu0
        return {
            "updates_written": self.n,
            "updates_received": len(self.seen),
            "missed": self.n - len(self.seen),
            "final_received": self.last_seq in self.seen,
            "latency": summary_us(self.latencies),
            "reader_cpu_percent": round(100 * cpu / elapsed, 2),
        }


def _kwargs(run: Path, snap: Path) -> dict[str, Any]:
    return {
        "socket_path": run / "absent.sock",
        "snapshot_path": snap,
        "reconnect_min": NO_RECONNECT,
        "reconnect_max": NO_RECONNECT,
    }


async def follow_async(run: Path, n: int, interval: float) -> dict[str, Any]:
    """`subscribe()` following the file."""
    tally = _Tally(run / "drives-state.json", n)
    writer = await anyio.open_process(tally.writer_argv(interval))
    with anyio.fail_after(30 + n * interval * 2):
        async with Subscription(**_kwargs(run, tally.snap)) as updates:
            async for u in updates:
                if tally.add(u):
                    break
    out = tally.result()
    await writer.wait()
    return out


def follow_sync(run: Path, n: int, interval: float) -> dict[str, Any]:
    """`follow()` following the file."""
    import subprocess

    tally = _Tally(run / "drives-state.json", n)
    writer = subprocess.Popen(tally.writer_argv(interval))
    try:
        with Follower(**_kwargs(run, tally.snap)) as updates:
            deadline = time.monotonic() + 30 + n * interval * 2
            for u in updates:
                if tally.add(u) or time.monotonic() > deadline:
                    break
        return tally.result()
    finally:
        writer.wait(30)


def measure(n: int, interval: float, load: int) -> dict[str, Any]:
    """Both followers, one after the other, under *load* subscribers of a busy daemon."""
    out: dict[str, Any] = {"interval_s": interval, "load_subscribers": load}
    with ExitStack() as stack:
        if load:
            stack.enter_context(push_load(load))
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        busy0 = machine_busy()
        for kind in ("async", "sync"):
            with tempfile.TemporaryDirectory(prefix="acx-fb-") as tmp:
                run = Path(tmp)
                os.chmod(run, 0o700)
                if kind == "async":
                    out[kind] = anyio.run(follow_async, run, n, interval)
                else:
                    out[kind] = follow_sync(run, n, interval)
        out["machine_busy_percent"] = busy_percent(busy0, machine_busy())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--load", type=int, default=100)
    args = ap.parse_args()
    print(json.dumps(measure(args.updates, args.interval, args.load), indent=2))


if __name__ == "__main__":
    main()
