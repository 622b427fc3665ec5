"""Hook cold start, measured as the agents run it: the exact command line
`agentctx hooks install` writes (the absolute path of the installed `agentctx`),
through `sh -c`, fed that agent's hook stdin; against `python -c pass` of the same
interpreter and `cat` of the snapshot, interleaved run by run so machine noise hits
every row alike. `--changes-only` is measured in its usual state: nothing changed
since the session's last injection, so it prints nothing.

    python -m benchmarks.hook [--runs 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentctx.cli.agents import AGENTS, sample_stdin
from agentctx.cli.hooks import SHELL, hook_command
from benchmarks.common import daemon

CONFIG = "[drives.CARE]\nthreshold = 20\nrate_per_hour = 2.0\n"


def _hook(agent: str, changes_only: bool = False) -> tuple[list[str], bytes]:
    """The installed hook for *agent*'s per-turn event, as the agent runs it."""
    event = AGENTS[agent].turn_event
    stdin = json.dumps(sample_stdin(AGENTS[agent], event)).encode()
    return [SHELL, "-c", hook_command(agent, changes_only)], stdin


def measure(runs: int, run_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agentctx-bench-cursors-") as state:
        env = {**os.environ, "AGENTCTX_RUNTIME_DIR": str(run_dir), "AGENTCTX_STATE_DIR": state}
        commands: dict[str, tuple[list[str], bytes | None]] = {
            "python_bare": ([sys.executable, "-c", "pass"], None),
            "hook": _hook("claude"),
            "hook_codex": _hook("codex"),
            "hook_gemini": _hook("gemini"),
            "hook_changes_only": _hook("claude", changes_only=True),
            "cat": (["cat", str(run_dir / "drives-state.json")], None),
        }
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(runs):
            for name in random.sample(list(commands), len(commands)):
                argv, stdin = commands[name]
                t0 = time.perf_counter()
                result = subprocess.run(argv, input=stdin, capture_output=True, env=env)
                samples[name].append(time.perf_counter() - t0)
                if result.returncode != 0 or result.stderr:
                    raise RuntimeError(f"{argv} failed: {result.stderr.decode()}")
    out: dict[str, Any] = {
        f"{k}_ms": round(statistics.median(v) * 1000, 2) for k, v in samples.items()
    }
    for name in ("hook", "hook_codex", "hook_gemini", "hook_changes_only"):
        out[f"{name}_vs_bare"] = round(out[f"{name}_ms"] / out["python_bare_ms"], 2)
    out["hook_command"] = hook_command("claude", False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    with daemon(CONFIG) as (_proc, run_dir):
        print(json.dumps(measure(args.runs, run_dir), indent=2))


if __name__ == "__main__":
    main()
