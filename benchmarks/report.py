"""The printed table and latest.png of a benchmark run (see benchmarks/__main__.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import web

REDIS_TARGET = 0.8
FLOOR_TARGET = 1.3
LABELS = {
    "async": ("subscribe()", "redis.asyncio pubsub", "bare asyncio reader (floor)"),
    "sync": ("follow()", "redis-py listen()", "bare blocking reader (floor)"),
}


def _f(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _mark(ratio: float | None, target: float) -> str:
    return "" if ratio is None else ("" if ratio <= target else "!")


def push_lines(res: dict[str, Any]) -> list[str]:
    lines = []
    for pair, rows in res["push"].items():
        a, r, fl = LABELS[pair]
        lines += [
            f"push latency, {pair} pair: {a} | {r} | {fl}  (us; ratios: ! = target missed)",
            f"{'N':>4} {'agentctx p50':>12} {'p99':>7} {'redis p50':>10} {'p99':>7} "
            f"{'floor p50':>10} {'p99':>7} {'/redis p50':>10} {'p99':>5} "
            f"{'/floor p50':>10} {'p99':>5}  {'load avg':>9} {'busy':>5}",
        ]
        for row in rows:
            ag, rd, fo = row["agentctx"], row.get("redis", {}), row.get("floor", {})
            vr, vf = row.get("vs_redis", {}), row.get("vs_floor", {})
            lines.append(
                f"{row['n']:>4} {_f(ag.get('p50_us')):>12} {_f(ag.get('p99_us')):>7} "
                f"{_f(rd.get('p50_us')):>10} {_f(rd.get('p99_us')):>7} "
                f"{_f(fo.get('p50_us')):>10} {_f(fo.get('p99_us')):>7} "
                f"{_f(vr.get('p50'), 2) + _mark(vr.get('p50'), REDIS_TARGET):>10} "
                f"{_f(vr.get('p99'), 2) + _mark(vr.get('p99'), REDIS_TARGET):>5} "
                f"{_f(vf.get('p50'), 2) + _mark(vf.get('p50'), FLOOR_TARGET):>10} "
                f"{_f(vf.get('p99'), 2) + _mark(vf.get('p99'), FLOOR_TARGET):>5}  "
                f"{_f(row['load_avg'][0], 1):>4}-{_f(row['load_avg'][-1], 1):<4} "
                f"{_f(row.get('machine_busy_percent'), 0):>4}%"
            )
            missed = {k: row[k]["missed"] for k in ("agentctx", "redis", "floor") if k in row}
            if any(missed.values()):
                lines.append(f"     missed: {missed}")
        lines.append("")
    for row in res.get("daemon_share", []):
        raw, fl, vf = row["raw"], row["floor"], row["vs_floor"]
        lines.append(
            f"the daemon's share, N = {row['n']}: a bare blocking reader of the daemon p50 "
            f"{_f(raw.get('p50_us'))} / p99 {_f(raw.get('p99_us'))} us, the sync floor "
            f"{_f(fl.get('p50_us'))} / {_f(fl.get('p99_us'))} us: {_f(vf['p50'], 2)} / "
            f"{_f(vf['p99'], 2)}x the floor before any client library"
        )
        if "follow" in row:  # (older results measured the bare reader and the floor only)
            fo, vr = row["follow"], row["follow_vs_raw"]
            lines.append(
                f"     follow() in the same rounds p50 {_f(fo.get('p50_us'))} / p99 "
                f"{_f(fo.get('p99_us'))} us: {_f(vr['p50'], 2)} / {_f(vr['p99'], 2)}x the bare "
                f"reader of the same daemon (what the library adds)"
            )
    return lines


def table(res: dict[str, Any]) -> str:
    lines = push_lines(res)
    sc = res["scale"]
    lines += ["", "scale (10 processes x k subscribe()s; daemon CPU per state delivered):"]
    for p in sc["points"]:
        lines.append(
            f"  {p['sessions']:>5} sessions: p50 {_f(p['p50_us'])} us, p99 {_f(p['p99_us'])} "
            f"us, missed {p['missed']}, daemon {_f(p['daemon_cpu_us_per_state'], 1)} us/state "
            f"({_f(p['daemon_cpu_percent'], 1)} % CPU), reader "
            f"{_f(p['reader_cpu_us_per_delivery'])} us/delivery; machine "
            f"{_f(p.get('machine_busy_percent'), 0)} % busy"
        )
    lines.append(f"  latency doubles from {sc['knee_sessions'] or 'never (in range)'} sessions")
    fb = res["fallback"]
    for kind in ("async", "sync"):
        f = fb[kind]
        lines.append(
            f"file fallback, {kind} (meanwhile {fb['load_subscribers']} subscribers at 10/s, "
            f"machine {_f(fb.get('machine_busy_percent'), 0)} % busy): "
            f"p50 {f['latency']['p50_us'] / 1000:.1f} ms, p99 {res['fallback_p99_ms'][kind]} ms, "
            f"missed {f['missed']} of {f['updates_written']}, reader CPU "
            f"{f['reader_cpu_percent']} %"
        )
    h = res["hook"]
    lines += [
        f"hook cold start (as installed, sh -c): {h['hook_ms']} ms vs bare python "
        f"{h['python_bare_ms']} ms ({h['hook_vs_bare']}x); codex {h['hook_codex_ms']} ms, "
        f"gemini {h['hook_gemini_ms']} ms; --changes-only {h['hook_changes_only_ms']} ms; "
        f"cat {h['cat_ms']} ms",
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
            f"us in another process ({fo['ratio_p50']}x / {fo['ratio_p99']}x), in the "
            f"putting process {fo['raw_kv_watch_same_process']['p50_us']:g} / "
            f"{fo['raw_kv_watch_same_process']['p99_us']:g} us; home's own subscriber "
            f"{fo['home_local']['p50_us']:g} / {fo['home_local']['p99_us']:g} us; "
            f"relay overhead p50 {fo['relay_overhead_us']:g} us"
        )
    lines.append(
        f"load average: {res['load_avg_at_start']} at start, {res['load_avg_at_end']} at end"
    )
    for name, why in res["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    colors = {"agentctx": "tab:blue", "redis": "tab:red", "floor": "tab:gray"}
    for ax, (pair, rows) in zip(axes, res["push"].items(), strict=False):
        names = LABELS[pair]
        for key, name, marker in zip(("agentctx", "redis", "floor"), names, "os^", strict=True):
            for pct, style in (("p50_us", "-"), ("p99_us", "--")):
                pts = [(r["n"], r[key][pct]) for r in rows if r.get(key, {}).get(pct)]
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] / 1000 for p in pts],
                        marker + style,
                        color=colors[key],
                        label=f"{name} {pct[:3]}",
                    )
        if pair == "sync" and res.get("daemon_share"):
            share = res["daemon_share"]
            ax.plot(
                [r["n"] for r in share],
                [r["raw"]["p50_us"] / 1000 for r in share],
                "d:",
                color="tab:green",
                label="bare reader of the daemon p50",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscriber processes")
        ax.set_ylabel("event -> in the reader's hands (ms)")
        ax.set_title(f"{pair} pair")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    pts = res["scale"]["points"]
    xs = [p["sessions"] for p in pts]
    ax.plot(xs, [(p["p50_us"] or 0) / 1000 for p in pts], "o-", label="subscribe() p50")
    ax.plot(xs, [(p["p99_us"] or 0) / 1000 for p in pts], "o--", label="subscribe() p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sessions (10 processes)")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    twin = ax.twinx()
    twin.plot(xs, [p["daemon_cpu_us_per_state"] for p in pts], "s:", color="gray",
              label="daemon CPU per state (us)")  # fmt: skip
    twin.set_yscale("log")
    twin.set_ylabel("daemon CPU per delivered state (us)")
    ax.set_title("scale")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)
    m = res["machine"]
    fig.suptitle(
        f"agentctx push latency at 10 msgs/s, {m['cores']} cores, load average "
        f"{res['load_avg_at_start'][0]:.1f} at start{' (quick run)' if res['quick'] else ''}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
