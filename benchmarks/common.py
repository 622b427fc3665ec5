"""Shared benchmark plumbing: a private daemon subprocess and a minimal frame client."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentctx._core.framing import FrameDecoder, encode_frame


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_us(samples_s: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples_s]
    if not us:
        return {"n": 0}
    return {
        "n": len(us),
        "p50_us": round(statistics.median(us), 1),
        "p99_us": round(percentile(us, 99), 1),
        "max_us": round(max(us), 1),
    }


summarize = summary_us


class FrameClient:
    def __init__(self, path: Path, name: str, subscribe: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.dec = FrameDecoder()
        self.pending: list[dict[str, Any]] = []
        self.send({"type": "hello", "proto": 1, "client": name, "subscribe": subscribe})
        assert self.recv()["type"] == "welcome"

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(json.dumps(obj).encode()))

    def recv(self) -> dict[str, Any]:
        while not self.pending:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError
            self.pending += [json.loads(p) for p in self.dec.feed(data)]
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU so far, from /proc/stat: two readings give how
    busy the whole machine was in between (ours and everybody else's processes)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100 * busy / total, 1) if total else 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def daemon(config_toml: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A sidecar in private temp dirs; yields (process, runtime dir)."""
    with tempfile.TemporaryDirectory(prefix="agentctx-bench-") as tmp:
        root = Path(tmp)
        (root / "run").mkdir(mode=0o700)
        (root / "state").mkdir(mode=0o700)
        (root / "drives.toml").write_text(config_toml)
        env = {
            **os.environ,
            "AGENTCTX_RUNTIME_DIR": str(root / "run"),
            "AGENTCTX_STATE_DIR": str(root / "state"),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sidecar",
                "run",
                "--config",
                str(root / "drives.toml"),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        sock = root / "run" / "sidecar.sock"
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    FrameClient(sock, "probe", subscribe=False).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("daemon did not start") from None
                    time.sleep(0.02)
            yield proc, root / "run"
        finally:
            proc.terminate()
            proc.wait(10)
