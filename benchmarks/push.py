"""Push latency: a discrete event at the publisher -> receipt by every subscriber.

Three systems, measured in the same run, rounds interleaved in random order:
  agentctx  satisfy applied by the sidecar -> `agentctx.subscribe()` in N processes
            (delay from the event's own `ts`, stamped by the daemon as it applies it)
  redis     PUBLISH from redis-py -> redis-py pubsub subscribers in N processes
  floor     a bare asyncio Unix-socket publisher -> N bare asyncio readers
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import FrameClient, daemon, percentile

RATE_HZ = 10.0  # messages per second, as the issue measured
DAEMON_CONFIG = (
    "[sidecar]\ntick_interval = 1.0\nmax_clients = 4096\n"
    "[drives.B]\nthreshold = 1e9\nactivity_driven = true\n"
)
READY_TIMEOUT = 120.0
REDIS_ENABLED = True  # switched off by the runner when redis cannot be had


class Pool:
    """N subscriber processes of one system."""

    def __init__(self, system: str, address: str, n: int, per_process: int = 1) -> None:
        self.system = system
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.subscribers", system, address, str(per_process)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready" or time.monotonic() > deadline:
                raise RuntimeError(f"{self.system} subscriber not ready: {line!r}")

    def results(self) -> list[dict[str, float]]:
        out = []
        for p in self.procs:
            assert p.stdout is not None
            out.append(json.loads(p.stdout.readline()))
            p.wait(30)
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()


@contextmanager
def redis_server(root: Path) -> Iterator[str | None]:
    exe = shutil.which("redis-server")
    if exe is None:
        yield None
        return
    path = root / "redis.sock"
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            "0",
            "--unixsocket",
            str(path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield str(path)
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def floor_server(root: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    path = root / "floor.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        yield str(path), proc
    finally:
        proc.kill()
        proc.wait(10)


class Publishers:
    def __init__(self, sock: Path, redis_path: str | None, floor: subprocess.Popen[str]):
        self.agentctx = FrameClient(sock, "bench-publisher", subscribe=False)
        self.redis: Any = None
        if redis_path is not None:
            import redis

            self.redis = redis.Redis(unix_socket_path=redis_path)
        self.floor = floor
        self._id = 0

    def publish(self, system: str, tag: str) -> None:
        if system == "agentctx":
            self._id += 1
            self.agentctx.send(
                {
                    "type": "satisfy",
                    "id": self._id,
                    "request_id": f"{tag}-{self._id}",
                    "drive": "B",
                    "amount": 0.0,
                    "reason": tag,
                }
            )
            while self.agentctx.recv().get("id") != self._id:
                pass
        elif system == "redis":
            body = json.dumps({"ts": time.time(), "tag": tag, "pad": "x" * 800})
            self.redis.publish("drives", body)
        else:
            assert self.floor.stdin is not None and self.floor.stdout is not None
            self.floor.stdin.write(f"pub {tag}\n")
            self.floor.stdin.flush()
            self.floor.stdout.readline()

    def stop(self, system: str) -> None:
        if system == "agentctx":
            self.publish_stop_agentctx()
        elif system == "redis":
            self.redis.publish("drives", json.dumps({"stop": True}))
        else:
            assert self.floor.stdin is not None
            self.floor.stdin.write("stop\n")
            self.floor.stdin.flush()

    def publish_stop_agentctx(self) -> None:
        self._id += 1
        self.agentctx.send(
            {
                "type": "satisfy",
                "id": self._id,
                "request_id": f"stop-{self._id}",
                "drive": "B",
                "amount": 0.0,
                "reason": "stop",
            }
        )


def summarize(samples: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples]
    return {
        "p50_us": round(statistics.median(us), 1),
        "p99_us": round(percentile(us, 99), 1),
        "max_us": round(max(us), 1),
        "n": len(us),
    }


def measure(n: int, rounds: int, per_round_n: int, in_process: bool = False) -> dict[str, Any]:
    """One N: all three systems' subscribers up at once, rounds interleaved."""
    with tempfile.TemporaryDirectory(prefix="acx-push-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        _proc, run = stack.enter_context(daemon(DAEMON_CONFIG))
        sock = run / "sidecar.sock"
        redis_path = stack.enter_context(redis_server(root)) if REDIS_ENABLED else None
        floor_path, floor = stack.enter_context(floor_server(root))
        systems = (
            ["agentctx"]
            + (["redis"] if redis_path and not in_process else [])
            + ([] if in_process else ["floor"])
        )
        pools: dict[str, Pool] = {}
        try:
            if in_process:  # N subscriptions in one process (the 1000-subscriber row)
                pools["agentctx"] = Pool("agentctx", str(sock), 1, per_process=n)
            else:
                pools["agentctx"] = Pool("agentctx", str(sock), n)
                if redis_path:
                    pools["redis"] = Pool("redis", redis_path, n)
                pools["floor"] = Pool("floor", floor_path, n)
            for pool in pools.values():
                pool.wait_ready()
            pubs = Publishers(sock, redis_path, floor)
            for r in range(rounds):
                for system in random.sample(systems, len(systems)):
                    for i in range(per_round_n):
                        pubs.publish(system, f"r{r}m{i}")
                        time.sleep(1 / RATE_HZ)
            for system in systems:
                pubs.stop(system)
            results = {s: pools[s].results() for s in systems}
        finally:
            for pool in pools.values():
                pool.kill()
    out: dict[str, Any] = {"n": n}
    per_round: dict[str, dict[int, list[float]]] = {s: {} for s in systems}
    for system, subs in results.items():
        all_delays = [d for sub in subs for d in sub.values()]
        out[system] = summarize(all_delays)
        out[system]["delivered"] = len(all_delays)
        for sub in subs:
            for tag, d in sub.items():
                r = int(tag.split(":")[-1].split("m")[0][1:])
                per_round[system].setdefault(r, []).append(d)
    if "redis" in results:
        ratios50 = [
            statistics.median(per_round["agentctx"][r]) / statistics.median(per_round["redis"][r])
            for r in range(rounds)
        ]
        ratios99 = [
            percentile(per_round["agentctx"][r], 99) / percentile(per_round["redis"][r], 99)
            for r in range(rounds)
        ]
        out["ratio_p50_vs_redis"] = round(statistics.median(ratios50), 3)
        out["ratio_p99_vs_redis"] = round(statistics.median(ratios99), 3)
    expected = rounds * per_round_n * n
    for system in systems:
        out[system]["missed"] = expected - out[system]["delivered"]
    return out


if __name__ == "__main__":
    print(json.dumps(measure(int(os.environ.get("N", "1")), 2, 10), indent=2))
