"""Run every benchmark in one go and write benchmarks/results/latest.{json,png}.

    python -m benchmarks            # the full run (~10 min)
    python -m benchmarks --quick    # the same rows, fewer samples (< 3 min)

Everything it needs it starts itself (the sidecar, redis-server on a Unix socket in a
temp dir, subscriber processes) and stops again. Missing tools are installed when
that is possible (redis-py and matplotlib with pip; redis-server with apt as root);
otherwise their row is skipped and the reason printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import fallback, follower, footprint, hook, push, throughput, web
from benchmarks.common import daemon

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "push p50/p99 vs redis": "<= 0.8",
    "fallback p99": "<= 20 ms",
    "hook wall vs bare python": "<= 2.5x",
    "daemon RSS at 100 subscribers": "<= 30 MB",
    "daemon CPU at 100 subscribers": "<= 2 % of a core",
    "follower push p50 vs raw KV watch (NATS)": "<= 1.5x",
}


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


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def run(quick: bool) -> dict[str, Any]:
    skipped: dict[str, str] = {}
    if reason := ensure_redis_server() or ensure_module("redis", "redis"):
        skipped["redis"] = reason
    push.REDIS_ENABLED = "redis" not in skipped
    out: dict[str, Any] = {
        "quick": quick,
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": TARGETS,
    }

    rounds, per_round = (2, 8) if quick else (5, 20)
    rows = []
    for n in (1, 10, 100):
        print(f"push latency, {n} subscriber process(es) per system ...", flush=True)
        rows.append(push.measure(n, rounds, per_round))
    if not quick:
        print("push latency, 1000 in-process subscribers ...", flush=True)
        rows.append(push.measure(1000, rounds, per_round, in_process=True))
    out["push_detail"] = rows
    out["push_latency"] = [
        {
            "n": r["n"],
            "agentctx_p50_us": r["agentctx"]["p50_us"],
            "agentctx_p99_us": r["agentctx"]["p99_us"],
            "redis_p50_us": r.get("redis", {}).get("p50_us"),
            "redis_p99_us": r.get("redis", {}).get("p99_us"),
            "floor_p50_us": r.get("floor", {}).get("p50_us"),
            "floor_p99_us": r.get("floor", {}).get("p99_us"),
            "ratio_p50_vs_redis": r.get("ratio_p50_vs_redis"),
            "ratio_p99_vs_redis": r.get("ratio_p99_vs_redis"),
        }
        for r in rows
    ]

    print("file fallback latency ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="acx-fb-") as tmp:
        os.chmod(tmp, 0o700)
        import anyio

        fb = anyio.run(fallback.follow, Path(tmp), 100 if quick else 300, 0.02)
    out["fallback"] = fb
    out["fallback_p99_ms"] = round(fb["latency"]["p99_us"] / 1000, 2)

    print("hook cold start ...", flush=True)
    with daemon(hook.CONFIG) as (_p, run_dir):
        h = hook.measure(20 if quick else 60, run_dir)
    out["hook"] = h
    out["hook_wall_ms"] = h["hook_ms"]
    out["python_bare_ms"] = h["python_bare_ms"]

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
    out["skipped"] = skipped
    return out


def table(res: dict[str, Any]) -> str:
    lines = [
        "push latency, satisfy -> every subscriber (us)",
        f"{'N':>6} {'agentctx p50':>13} {'p99':>8} {'redis p50':>10} {'p99':>8} "
        f"{'floor p50':>10} {'p99':>8} {'vs redis p50':>13} {'p99':>6}",
    ]
    for r in res["push_latency"]:

        def f(v: Any) -> str:
            return "-" if v is None else f"{v:g}"

        lines.append(
            f"{r['n']:>6} {f(r['agentctx_p50_us']):>13} {f(r['agentctx_p99_us']):>8} "
            f"{f(r['redis_p50_us']):>10} {f(r['redis_p99_us']):>8} "
            f"{f(r['floor_p50_us']):>10} {f(r['floor_p99_us']):>8} "
            f"{f(r['ratio_p50_vs_redis']):>13} {f(r['ratio_p99_vs_redis']):>6}"
        )
    fb = res["fallback"]
    lines += [
        "",
        f"file fallback: p50 {fb['latency']['p50_us'] / 1000:.1f} ms, p99 "
        f"{res['fallback_p99_ms']} ms, missed {fb['missed']} of {fb['updates_written']}, "
        f"reader CPU {fb['reader_cpu_percent']} %",
        f"hook cold start (as installed, sh -c): {res['hook_wall_ms']} ms vs bare python "
        f"{res['python_bare_ms']} ms ({res['hook']['hook_vs_bare']}x); codex "
        f"{res['hook']['hook_codex_ms']} ms, gemini {res['hook']['hook_gemini_ms']} ms; "
        f"--changes-only {res['hook']['hook_changes_only_ms']} ms; cat {res['hook']['cat_ms']} ms",
        "footprint at 1 Hz: "
        + ", ".join(
            f"{r['subscribers']} subs: {r['rss_mb']} MB, {r['cpu_percent']} % CPU"
            for r in res["footprint"]
        ),
        web.line(res["web_tabs"]),
        f"satisfy throughput: {res['throughput']['serial_per_s']}/s one at a time, "
        f"{res['throughput']['pipelined_per_s']}/s pipelined",
    ]
    if fo := res.get("follower"):
        lines.append(
            f"follower (NATS), bump at home -> follower's subscriber: p50 "
            f"{fo['follower']['p50_us']:g} / p99 {fo['follower']['p99_us']:g} us; raw KV "
            f"put -> watch {fo['raw_kv_watch']['p50_us']:g} / {fo['raw_kv_watch']['p99_us']:g} "
            f"us ({fo['ratio_p50']}x / {fo['ratio_p99']}x); home's own subscriber "
            f"{fo['home_local']['p50_us']:g} / {fo['home_local']['p99_us']:g} us"
        )
    for name, why in res["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> str | None:
    if reason := ensure_module("matplotlib", "matplotlib"):
        return reason
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["push_latency"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, label, style in (
        ("agentctx_p50_us", "agentctx p50", "o-"),
        ("agentctx_p99_us", "agentctx p99", "o--"),
        ("redis_p50_us", "redis pub/sub p50", "s-"),
        ("redis_p99_us", "redis pub/sub p99", "s--"),
        ("floor_p50_us", "raw asyncio UDS (floor) p50", "^-"),
        ("floor_p99_us", "raw asyncio UDS (floor) p99", "^--"),
    ):
        pts = [(r["n"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] / 1000 for p in pts], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subscribers")
    ax.set_ylabel("satisfy -> receipt latency (ms)")
    ax.set_title(f"Push latency at {push.RATE_HZ:g} msgs/s ({res['machine']['cores']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="fewer samples, under 3 minutes")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = run(args.quick)
    res["duration_s"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    if reason := plot(res, RESULTS / "latest.png"):
        res["skipped"]["plot"] = reason
    (RESULTS / "latest.json").write_text(json.dumps(res, indent=2) + "\n")
    print()
    print(table(res))
    print(f"\nwrote {RESULTS / 'latest.json'} and latest.png in {res['duration_s']} s")


if __name__ == "__main__":
    main()
