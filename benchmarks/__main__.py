"""Run every benchmark in one go and write benchmarks/results/latest.{json,png}.

    python -m benchmarks            # the full run (~9 min)
    python -m benchmarks --quick    # the same rows, fewer samples (~5 min)

Everything it needs it starts itself (the sidecar, redis-server on a Unix socket in a
temp dir, subscriber processes) and stops again. Missing tools are installed when
that is possible (redis-py and matplotlib with pip; redis-server with apt as root);
otherwise their row is skipped and the reason printed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "push p50/p99 vs redis, each pair": "<= 0.8",
    "push p50/p99 vs the floor of the same kind": "<= 1.3",
    "fallback p99 (under load)": "<= 20 ms",
    "hook wall vs bare python": "<= 2.5x",
    "daemon RSS at 100 subscribers": "<= 30 MB",
    "daemon CPU at 100 subscribers": "<= 2 % of a core",
    "follower push p50 vs raw KV watch (NATS)": "<= 1.5x",
}
SIZES = (1, 10, 100)


def ensure_module(name: str, package: str) -> str | None:
    """Import *name*, installing *package* with pip if needed; the reason if impossible."""
    try:
        importlib.import_module(name)
        return None
    except ImportError:
        pass
    print(f"installing {package} (pip) for the benchmark ...", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", package], capture_output=True, text=True
    )
    if result.returncode != 0:
        return f"{package} is not installed and pip could not install it"
    importlib.invalidate_caches()
    return None


def ensure_redis_server() -> str | None:
    if shutil.which("redis-server"):
        return None
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing redis-server (apt) for the benchmark ...", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "redis-server"],
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        # Debian starts the service where it can; we only want the binary.
        subprocess.run(["service", "redis-server", "stop"], capture_output=True)
    if shutil.which("redis-server"):
        return None
    return "redis-server is not installed (apt-get install redis-server as root)"


def raise_fd_limit() -> None:
    """1000 sessions are 1000 descriptors in the daemon (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str | None] = {}
    for dist in ("redis", "anyio", "msgspec"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        importlib.import_module("hiredis")
        versions["redis_parser"] = "hiredis"
    except ImportError:
        versions["redis_parser"] = "python (no hiredis)"
    redis_server = shutil.which("redis-server")
    if redis_server:
        ver = subprocess.run([redis_server, "--version"], capture_output=True, text=True)
        versions["redis_server"] = ver.stdout.split()[2] if ver.stdout else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def run(quick: bool) -> dict[str, Any]:
    from benchmarks import fallback, follower, footprint, hook, push, scale, throughput, web
    from benchmarks.common import daemon

    skipped: dict[str, str] = {}
    if reason := ensure_redis_server() or ensure_module("redis", "redis"):
        skipped["redis"] = reason
    push.REDIS_ENABLED = "redis" not in skipped
    raise_fd_limit()
    out: dict[str, Any] = {
        "quick": quick,
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "targets": TARGETS,
    }

    rounds, per_round = (3, 10) if quick else (5, 20)
    out["push"] = {}
    for pair in push.PAIRS:
        rows = []
        for n in SIZES:
            print(f"push latency, {pair} pair, {n} subscriber process(es) each ...", flush=True)
            rows.append(push.measure(pair, n, rounds, per_round))
        out["push"][pair] = rows
    # Who owns the sync pair's distance to its floor: `follow()`, a bare blocking reader
    # of the same daemon and the floor, in the same rounds. follow()/raw is what the
    # client library adds; raw/floor is the daemon's own work (building the state).
    out["daemon_share"] = []
    share = {"follow": "agentctx-sync", "raw": "raw-daemon", "floor": "floor-sync"}
    for n in SIZES[:2]:
        print(f"push latency, a bare reader of the daemon, {n} process(es) ...", flush=True)
        row = push.run_systems(share, n, rounds, per_round)
        for key, (a, b) in {
            "vs_floor": ("raw", "floor"),
            "follow_vs_raw": ("follow", "raw"),
            "follow_vs_floor": ("follow", "floor"),
        }.items():
            row[key] = {
                p: push.ratio(row[a].get(f"{p}_us"), row[b].get(f"{p}_us")) for p in ("p50", "p99")
            }
        out["daemon_share"].append(row)

    sessions = (1, 100) if quick else (1, 10, 25, 50, 100)
    print("scale: 10 processes of many subscriptions ...", flush=True)
    out["scale"] = scale.measure(10, sessions, 1 if quick else 2, per_round)

    print("file fallback latency, under the push load ...", flush=True)
    fb = fallback.measure(100 if quick else 300, 0.02, load=100)
    out["fallback"] = fb
    out["fallback_p99_ms"] = {
        kind: round(fb[kind]["latency"]["p99_us"] / 1000, 2) for kind in ("async", "sync")
    }

    print("hook cold start ...", flush=True)
    with daemon(hook.CONFIG) as (_p, run_dir):
        h = hook.measure(20 if quick else 60, run_dir)
    out["hook"] = h

    print("footprint at 1 Hz ...", flush=True)
    fp = footprint.measure((0, 10, 100), 5.0 if quick else 20.0)
    out["footprint"] = fp
    out["daemon_rss_mb"] = max(r["rss_mb"] for r in fp)

    print("web view, 0 and 100 tabs at 1 Hz ...", flush=True)
    out["web_tabs"] = web.measure(web.TABS, 5.0 if quick else 20.0)

    print("satisfy throughput ...", flush=True)
    out["throughput"] = throughput.measure(3.0 if quick else 10.0)

    print("follower push latency over NATS ...", flush=True)
    if reason := ensure_module("nats", "nats-py[nkeys]"):
        skipped["follower"] = reason
    else:
        out["follower"] = follower.measure(150 if quick else 500)
        if "skipped" in out["follower"]:
            skipped["follower"] = out.pop("follower")["skipped"]
    out["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["skipped"] = skipped
    return out


def main() -> None:
    from benchmarks.report import plot, table

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="fewer samples (~5 minutes)")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = run(args.quick)
    res["duration_s"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    if reason := ensure_module("matplotlib", "matplotlib"):
        res["skipped"]["plot"] = reason
    else:
        plot(res, RESULTS / "latest.png")
    (RESULTS / "latest.json").write_text(json.dumps(res, indent=2) + "\n")
    print()
    print(table(res))
    print(f"\nwrote {RESULTS / 'latest.json'} and latest.png in {res['duration_s']} s")


if __name__ == "__main__":
    main()
