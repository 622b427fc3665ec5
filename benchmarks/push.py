"""Push latency: a discrete event at its source -> in the hands of every subscriber.

Two pairs, each measured with its three systems' subscribers up at once (every one a
process of its own), rounds interleaved in random order:

  async  `agentctx.subscribe()` | redis-py `redis.asyncio` pubsub | a bare asyncio reader
  sync   `agentctx.follow()`    | redis-py `pubsub.listen()`      | a bare blocking reader

Where the delay starts:
  agentctx  the event's `ts`, stamped by the sidecar as it applies a satisfy (the
            source of an agentctx event is the daemon; the satisfy's request is not
            counted, as the hop from a publisher to redis-server is)
  redis     the publisher's clock just before PUBLISH (publisher -> redis-server ->
            subscribers: one more hop than agentctx's, which favours agentctx)
  floor     the floor server's clock just before it writes (benchmarks/floor.py)

    python -m benchmarks.push PAIR N      # one row, e.g. `async 10`
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FrameClient,
    busy_percent,
    cpu_seconds,
    daemon,
    machine_busy,
    summarize,
)

RATE_HZ = 10.0  # messages per second, as the issue measured
TICK_INTERVAL = 1.0  # the daemon's default: every session also gets a state a second
DAEMON_CONFIG = (
    f"[sidecar]\ntick_interval = {TICK_INTERVAL}\nmax_clients = 4096\n"
    "[drives.B]\nthreshold = 1e9\nactivity_driven = true\n"
)
READY_TIMEOUT = 180.0
SETTLE_S = 2.0  # after start-up and after teardown: hundreds of processes come and go
REDIS_ENABLED = True  # switched off by the runner when redis cannot be had
PAIRS: dict[str, dict[str, str]] = {  # role -> subscriber system (benchmarks.subscribers)
    "async": {"agentctx": "agentctx", "redis": "redis-async", "floor": "floor-async"},
    "sync": {"agentctx": "agentctx-sync", "redis": "redis", "floor": "floor-sync"},
}
# Which publisher feeds a subscriber system
SOURCE = {
    "agentctx": "agentctx",
    "agentctx-sync": "agentctx",
    "raw-daemon": "agentctx",
    "redis": "redis",
    "redis-async": "redis",
    "floor-async": "floor",
    "floor-sync": "floor",
}


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
            p.wait(60)
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@contextmanager
def redis_server(root: Path) -> Iterator[str | None]:
    exe = shutil.which("redis-server")
    if exe is None or not REDIS_ENABLED:
        yield None
        return
    path = root / "redis.sock"
    args = ["--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(root)]
    proc = subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    """The publisher of every label: each agentctx label has a daemon of its own (a
    daemon pushes every event to all its subscribers, so two agentctx systems on one
    daemon would each be served as N = 2); Redis and the floor are shared."""

    def __init__(
        self, daemons: dict[str, Path], redis_path: str | None, floor: subprocess.Popen[str]
    ):
        self.agentctx = {
            label: FrameClient(sock, "bench-publisher", subscribe=False)
            for label, sock in daemons.items()
        }
        self.redis: Any = None
        if redis_path is not None:
            import redis

            self.redis = redis.Redis(unix_socket_path=redis_path)
        self.floor = floor
        self._id = 0

    def _satisfy(self, client: FrameClient, tag: str) -> None:
        self._id += 1
        client.send(
            {
                "type": "satisfy",
                "id": self._id,
                "request_id": f"{tag}-{self._id}",
                "drive": "B",
                "amount": 0.0,
                "reason": tag,
            }
        )

    def publish(self, label: str, source: str, tag: str) -> None:
        if source == "agentctx":
            client = self.agentctx[label]
            self._satisfy(client, tag)
            while client.recv().get("id") != self._id:
                pass
        elif source == "redis":
            body = json.dumps({"ts": time.time(), "tag": tag, "pad": "x" * 800})
            self.redis.publish("drives", body)
        else:
            assert self.floor.stdin is not None and self.floor.stdout is not None
            self.floor.stdin.write(f"pub {tag}\n")
            self.floor.stdin.flush()
            self.floor.stdout.readline()

    def stop(self, source: str) -> None:
        if source == "agentctx":
            for client in self.agentctx.values():
                self._satisfy(client, "stop")
        elif source == "redis":
            self.redis.publish("drives", json.dumps({"stop": True}))
        else:
            assert self.floor.stdin is not None
            self.floor.stdin.write("stop\n")
            self.floor.stdin.flush()


def _tag(key: str) -> str:
    """A subscriber's result key without its subscription's prefix ("7:label/r0m1")."""
    return key.rsplit(":", 1)[-1]


def _tag(key: str) -> str:
    """A subscriber's result key without its subscription's prefix ("7:label/r0m1")."""
    return key.rsplit(":", 1)[-1]


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def run_systems(
    systems: dict[str, str],
    n: int,
    rounds: int,
    per_round: int,
    per_process: int = 1,
) -> dict[str, Any]:
    """*systems*: label -> subscriber system, N processes each (of *per_process*
    subscriptions), all up at once; rounds of *per_round* messages per label at
    RATE_HZ, labels in random order each round. Per label: latency summary, how
    many were missed, and the CPU its subscribers used; the daemon's CPU too."""
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="acx-push-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        daemons: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for label, system in systems.items():
            if SOURCE[system] == "agentctx":
                proc, run = stack.enter_context(daemon(DAEMON_CONFIG))
                daemons[label] = (proc, run / "sidecar.sock")
        sources = {SOURCE[s] for s in systems.values()}
        redis_path = stack.enter_context(redis_server(root)) if "redis" in sources else None
        floor_path, floor = stack.enter_context(floor_server(root))
        shared = {"redis": redis_path, "floor": floor_path}
        address = {
            lb: str(daemons[lb][1]) if lb in daemons else shared[SOURCE[system]]
            for lb, system in systems.items()
        }
        labels = [lb for lb in systems if address[lb] is not None]
        pools: dict[str, Pool] = {}
        stack.callback(lambda: [pool.kill() for pool in pools.values()])
        for label in labels:
            addr = address[label]
            assert addr is not None
            pools[label] = Pool(systems[label], addr, n, per_process)
        for pool in pools.values():
            pool.wait_ready()
        time.sleep(SETTLE_S)  # let start-up CPU settle
        pubs = Publishers({lb: sock for lb, (_, sock) in daemons.items()}, redis_path, floor)
        pids = [proc.pid for proc, _ in daemons.values()]
        busy0 = machine_busy()
        daemon_cpu0, t0 = sum(map(cpu_seconds, pids)), time.monotonic()
        for r in range(rounds):
            for label in random.sample(labels, len(labels)):
                for i in range(per_round):
                    pubs.publish(label, SOURCE[systems[label]], f"{label}/r{r}m{i}")
                    time.sleep(1 / RATE_HZ)
        wall = time.monotonic() - t0
        daemon_cpu = sum(map(cpu_seconds, pids)) - daemon_cpu0
        busy = busy_percent(busy0, machine_busy())
        for source in sorted({SOURCE[systems[lb]] for lb in labels}):
            pubs.stop(source)
        results = {lb: pools[lb].results() for lb in labels}
    out: dict[str, Any] = {"n": n, "per_process": per_process, "wall_s": round(wall, 1)}
    expected = rounds * per_round * n * per_process
    for label, subs in results.items():
        prefix = f"{label}/"
        delays = [d for sub in subs for tag, d in sub.items() if _tag(tag).startswith(prefix)]
        row = summarize(delays)
        row["delivered"] = len(delays)
        row["missed"] = expected - len(delays)
        # The readers' own CPU from ready to stop, per message they received (ticks
        # add wake-ups of their own; the other labels' messages when a source is shared:
        # Redis, the floor).
        received = sum(1 for sub in subs for tag in sub if not tag.startswith("_"))
        cpu = sum(sub.get("_cpu_s", 0.0) for sub in subs)
        row["cpu_us_per_delivery"] = round(cpu / max(1, received) * 1e6, 1)
        out[label] = row
    daemon_labels = [lb for lb in labels if SOURCE[systems[lb]] == "agentctx"]
    if daemon_labels:
        # Everything the daemons did (ticks, the satisfy requests, fsyncs) per state they
        # delivered: each a state per satisfy of its label and per tick, to its sessions.
        states = rounds * per_round + wall / TICK_INTERVAL
        delivered = states * n * per_process * len(daemon_labels)
        out["daemon_cpu_percent"] = round(100 * daemon_cpu / wall / len(daemon_labels), 2)  # each
        out["daemon_cpu_us_per_state"] = round(daemon_cpu / delivered * 1e6, 2)
    out["load_avg"] = [round(x, 2) for x in load0] + [round(os.getloadavg()[0], 2)]
    # how busy both cores were while the messages went out (everyone's processes)
    out["machine_busy_percent"] = busy
    time.sleep(SETTLE_S)  # the pools' teardown, before the next row starts
    return out


def measure(pair: str, n: int, rounds: int, per_round: int) -> dict[str, Any]:
    """One row of a pair: agentctx, redis and the floor of that kind at N subscribers."""
    row = run_systems(PAIRS[pair], n, rounds, per_round)
    row["pair"] = pair
    a = row["agentctx"]
    for other in ("redis", "floor"):
        if other in row:
            row[f"vs_{other}"] = {
                "p50": ratio(a["p50_us"], row[other]["p50_us"]),
                "p99": ratio(a["p99_us"], row[other]["p99_us"]),
            }
    return row


def main(argv: Sequence[str]) -> None:
    if len(argv) == 2 and argv[0] in PAIRS:
        print(json.dumps(measure(argv[0], int(argv[1]), 2, 10), indent=2))
        return
    # ad hoc: python -m benchmarks.push N ROUNDS PER_ROUND SYSTEM...
    n, rounds, per_round, *systems = argv
    print(
        json.dumps(
            run_systems({s: s for s in systems}, int(n), int(rounds), int(per_round)), indent=2
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
