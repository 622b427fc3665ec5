"""The web view's cost: CPU and RSS of the `agentctx web` process (the bridge, uvicorn,
the SSE streams) with 0 and 100 browser tabs at 1 Hz state updates (the sidecar's
tick), the tabs being SSE clients in a separate process (benchmarks/tabs.py).

    python -m benchmarks.web [--quick]   this row alone, merged into results/latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_seconds, daemon, rss_mb

TABS = (0, 100)
# The built-in drives, ticked every second: every tab gets a full state per second.
CONFIG = "[sidecar]\ntick_interval = 1.0\n" + "".join(
    f"[drives.{name}]\nthreshold = {threshold}\nrate_per_hour = {rate}\n"
    for name, threshold, rate in (
        ("CARE", 20, 2.0),
        ("MAINTENANCE", 25, 1.5),
        ("REST", 30, 0.0),
        ("WANDER", 20, 1.0),
    )
)
START_TIMEOUT = 30.0
READY_TIMEOUT = 120.0
SETTLE_S = 2.0  # after the tabs connect, before the window
URL_LINE = re.compile(rb"(http://\S+)/\?token=(\S+)")
RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def web_view(run_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`agentctx web` on the daemon's dirs; yields (process, base URL, token)."""
    env = {
        **os.environ,
        "AGENTCTX_RUNTIME_DIR": str(run_dir),
        "AGENTCTX_STATE_DIR": str(run_dir.parent / "state"),
    }
    argv = [sys.executable, "-m", "agentctx", "web", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, bufsize=0)
    try:
        assert proc.stdout is not None
        out, deadline = b"", time.monotonic() + START_TIMEOUT
        while not (m := URL_LINE.search(out)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"agentctx web did not start: {out!r}")
            if select.select([proc.stdout], [], [], 0.1)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
        yield proc, m.group(1).decode(), m.group(2).decode()
    finally:
        proc.terminate()
        proc.wait(10)


def measure(counts: tuple[int, ...], window: float) -> list[dict[str, Any]]:
    rows = []
    with daemon(CONFIG) as (_sidecar, run), web_view(run) as (web, base, token):
        for n in counts:
            tabs = None
            if n:
                tabs = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.tabs", base, token, str(n)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert tabs.stdout is not None
                if tabs.stdout.readline().strip() != "ready":
                    raise RuntimeError("the tabs did not connect")
            try:
                time.sleep(SETTLE_S)
                cpu0, t0 = cpu_seconds(web.pid), time.monotonic()
                time.sleep(window)
                cpu = (cpu_seconds(web.pid) - cpu0) / (time.monotonic() - t0) * 100
                row: dict[str, Any] = {
                    "tabs": n,
                    "rss_mb": round(rss_mb(web.pid), 1),
                    "cpu_percent": round(cpu, 2),
                }
                if tabs is not None:
                    got, _ = tabs.communicate(timeout=READY_TIMEOUT)
                    seen = json.loads(got)
                    row["states_per_tab_per_s"] = round(seen["states"] / seen["seconds"] / n, 2)
                rows.append(row)
            finally:
                if tabs is not None and tabs.poll() is None:
                    tabs.kill()
                    tabs.wait(10)
    return rows


def line(rows: list[dict[str, Any]]) -> str:
    return "web view at 1 Hz: " + ", ".join(
        f"{r['tabs']} tabs: {r['rss_mb']} MB, {r['cpu_percent']} % CPU"
        + (f" ({r['states_per_tab_per_s']} states/s each)" if "states_per_tab_per_s" in r else "")
        for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a 5 s window instead of 20 s")
    args = ap.parse_args()
    rows = measure(TABS, 5.0 if args.quick else 20.0)
    print(line(rows))
    latest = RESULTS / "latest.json"
    results = json.loads(latest.read_text()) if latest.exists() else {}
    results["web_tabs"] = rows
    results["web_tabs_measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    latest.write_text(json.dumps(results, indent=2) + "\n")
    print(f"merged into {latest}")


if __name__ == "__main__":
    main()
