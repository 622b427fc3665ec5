"""Scale: many sessions, as separate processes of many subscriptions each.

    python -m benchmarks.scale [--processes 10] [--per-process 1,10,25,50,100]

Each point runs PROCESSES processes of PER_PROCESS `agentctx.subscribe()`s each (one
asyncio loop per process: a session is a subscription) against one daemon at the
push benchmark's rate, and reports the latency, the daemon's CPU per state it
delivered (satisfies and ticks, to every session) and the readers' CPU per delivery.
The knee is the first point whose p50 is more than twice the first point's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from benchmarks.push import run_systems

KNEE_FACTOR = 2.0


def measure(
    processes: int, per_process: Sequence[int], rounds: int, per_round: int
) -> dict[str, Any]:
    points = []
    for k in per_process:
        print(f"  scale: {processes} processes x {k} subscriptions ...", flush=True)
        row = run_systems({"agentctx": "agentctx"}, processes, rounds, per_round, per_process=k)
        points.append(
            {
                "sessions": processes * k,
                "processes": processes,
                "per_process": k,
                "p50_us": row["agentctx"].get("p50_us"),
                "p99_us": row["agentctx"].get("p99_us"),
                "missed": row["agentctx"]["missed"],
                "reader_cpu_us_per_delivery": row["agentctx"]["cpu_us_per_delivery"],
                "daemon_cpu_percent": row.get("daemon_cpu_percent"),
                "daemon_cpu_us_per_state": row.get("daemon_cpu_us_per_state"),
                "load_avg": row["load_avg"],
                "machine_busy_percent": row["machine_busy_percent"],
            }
        )
    base = points[0]["p50_us"] or 0.0
    knee = next((p["sessions"] for p in points if (p["p50_us"] or 0.0) > KNEE_FACTOR * base), None)
    return {"points": points, "knee_sessions": knee, "knee_factor": KNEE_FACTOR}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=10)
    ap.add_argument("--per-process", default="1,10,25,50,100")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--per-round", type=int, default=20)
    args = ap.parse_args()
    counts = [int(x) for x in args.per_process.split(",")]
    print(json.dumps(measure(args.processes, counts, args.rounds, args.per_round), indent=2))


if __name__ == "__main__":
    main()
