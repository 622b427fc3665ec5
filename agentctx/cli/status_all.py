"""`agentctx status --all`: every agent (named sidecar) on this machine, one line each.

The agents are found in the runtime dir itself: the unnamed agent's files sit at
its top, each named agent's in a `NAME/` subdirectory (agentctx._core.paths). A
directory counts once it holds a socket or a snapshot, so an agent whose sidecar
is stopped is still listed, with its last state and how old that is.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Final

from agentctx._core import paths
from agentctx._core.errors import AgentctxError, UsageError
from agentctx.oneshot import read
from agentctx.render import by_urgency, freshness
from agentctx.state import DriveState

__all__ = ["UNNAMED", "agents", "status_all"]

UNNAMED: Final = "(unnamed)"  # how the agent without a name is shown
EXIT_OK: Final = 0
EXIT_NO_STATE: Final = 3


def _has_files(directory: str) -> bool:
    names = (paths.SOCKET_NAME, paths.SNAPSHOT_NAME)
    return any(os.path.lexists(os.path.join(directory, n)) for n in names)


def agents() -> list[str]:
    """The agents with files in the runtime dir: "" for the unnamed one, then names."""
    base = paths.runtime_base()
    found = [""] if _has_files(base) else []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        try:
            paths.check_agent(entry.name)
        except UsageError:
            continue  # not an agent's dir
        if entry.is_dir(follow_symlinks=False) and _has_files(entry.path):
            found.append(entry.name)
    return found


def _line(name: str, state: DriveState | None, problem: str) -> str:
    who = name or UNNAMED
    if state is None:
        return f"{who:<16} {problem}"
    hot = by_urgency(state)[:1]
    top = ""
    if hot:
        drive, d = hot[0]
        top = f"{drive} {float(d.get('ratio', 0)):.2f} {d.get('band', '?')}; "
    return f"{who:<16} seq {state.seq:<8} {top}{freshness(state)}"


def _record(name: str, state: DriveState | None, problem: str) -> dict[str, Any]:
    if state is None:
        return {"agent": name or None, "error": problem}
    out = {k: v for k, v in state.data.items() if k not in ("type", "id")}
    out.update(
        agent=name or None,
        source=state.source,
        age_s=round(state.age_s, 3),
        stale=state.stale,
        read_at=round(time.time(), 3),
    )
    return out


def status_all(timeout: float, as_json: bool) -> int:
    names = agents()
    rows: list[tuple[str, DriveState | None, str]] = []
    for name in names:
        try:
            rows.append((name, read(timeout, client="agentctx-cli", agent=name), ""))
        except AgentctxError as exc:
            rows.append((name, None, str(exc)))
    if as_json:
        print(json.dumps([_record(*row) for row in rows], indent=2, ensure_ascii=False))
    elif not rows:
        print(f"no agent has files in {paths.runtime_base()}")
    else:
        print("\n".join(_line(*row) for row in rows))
    return EXIT_OK if rows else EXIT_NO_STATE
