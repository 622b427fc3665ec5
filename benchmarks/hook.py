"""Hook cold start: `agentctx context --hook claude` whole-process wall time,
against `python -c pass` and `cat` of the snapshot, interleaved run by run so
machine noise hits every row alike.

    python -m benchmarks.hook [--runs 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import daemon

HOOK_STDIN = json.dumps({"session_id": "bench", "hook_event_name": "UserPromptSubmit"}).encode()
CONFIG = "[drives.CARE]\nthreshold = 20\nrate_per_hour = 2.0\n"


def measure(runs: int, run_dir: Path) -> dict[str, float]:
    bindir = Path(sys.executable).parent
    agentctx = shutil.which("agentctx", path=str(bindir)) or "agentctx"
    env = {**os.environ, "AGENTCTX_RUNTIME_DIR": str(run_dir)}
    commands = {
        "python_bare": ([sys.executable, "-c", "pass"], None),
        "hook": ([agentctx, "context", "--hook", "claude"], HOOK_STDIN),
        "hook_changes_only": (
            [agentctx, "context", "--hook", "claude", "--changes-only"],
            HOOK_STDIN,
        ),
        "cat": (["cat", str(run_dir / "drives-state.json")], None),
    }
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for name in random.sample(list(commands), len(commands)):
            argv, stdin = commands[name]
            t0 = time.perf_counter()
            result = subprocess.run(argv, input=stdin, capture_output=True, env=env)
            samples[name].append(time.perf_counter() - t0)
            if result.returncode != 0:
                raise RuntimeError(f"{argv} failed: {result.stderr.decode()}")
    out = {f"{k}_ms": round(statistics.median(v) * 1000, 2) for k, v in samples.items()}
    out["hook_vs_bare"] = round(out["hook_ms"] / out["python_bare_ms"], 2)
    out["hook_changes_only_vs_bare"] = round(out["hook_changes_only_ms"] / out["python_bare_ms"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    with daemon(CONFIG) as (_proc, run_dir):
        print(json.dumps(measure(args.runs, run_dir), indent=2))


if __name__ == "__main__":
    main()
