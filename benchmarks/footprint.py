"""Daemon footprint: RSS and CPU % at 1 Hz ticks with 0, 10 and 100 subscribers
(real `agentctx.subscribe()` processes)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import cpu_seconds, daemon, rss_mb
from benchmarks.push import DAEMON_CONFIG, Pool


def measure(counts: tuple[int, ...], window: float) -> list[dict[str, Any]]:
    rows = []
    with daemon(DAEMON_CONFIG) as (proc, run):
        sock = str(run / "sidecar.sock")
        pools: list[Pool] = []
        try:
            have = 0
            for n in counts:
                if n > have:
                    pool = Pool("agentctx", sock, n - have)
                    pool.wait_ready()
                    pools.append(pool)
                    have = n
                time.sleep(1.0)  # let connection set-up settle
                cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(window)
                cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
                rows.append(
                    {
                        "subscribers": n,
                        "rss_mb": round(rss_mb(proc.pid), 1),
                        "cpu_percent": round(cpu, 2),
                    }
                )
        finally:
            for pool in pools:
                pool.kill()
    return rows
