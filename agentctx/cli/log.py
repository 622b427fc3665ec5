"""`agentctx log`: the history of discrete events, in local time, and live with --follow.

    agentctx log                    the newest 20 events
    agentctx log CARE --since 2h    CARE's events of the last two hours
    agentctx log --since 2026-11-26T09:00 --limit 100 --json
    agentctx log --follow           ... and then every new one as it happens

The history is `history.jsonl` in the state dir (see agentctx._core.history): what
the daemon saved, so an acknowledged satisfaction is there and a lost one is not.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from agentctx._core import paths
from agentctx._core.errors import AgentctxError, UsageError
from agentctx._core.history import read_history
from agentctx._core.protocol import drive_key
from agentctx.oneshot import read

__all__ = ["DEFAULT_LIMIT", "describe", "elsewhere", "log", "parse_since"]

DEFAULT_LIMIT: Final = 20
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def parse_since(text: str, now: float | None = None) -> float:
    """`2h`, `30m`, `1d` ago, or an ISO time (without an offset: local time), as a
    Unix time."""
    now = time.time() if now is None else now
    if m := _AGO.match(text.strip()):
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration (90s, 30m, 2h, 1d, 1w) or a time "
            "(2026-11-26T09:00, local unless it has an offset)"
        ) from None
    return when.timestamp()  # naive means local time, as datetime.timestamp() takes it


def _num(x: Any) -> str:
    return f"{float(x):.1f}"


def describe(e: dict[str, Any]) -> str:
    """One event as words."""
    kind = str(e.get("kind", "?"))
    where = f"→ {_num(e.get('pressure', 0))} ({e.get('band', '?')})"
    why = f" — {e['reason']}" if e.get("reason") else ""
    if kind == "satisfied":
        how = e.get("depth") or (f"by {e['amount']:g}" if e.get("amount") is not None else "")
        return f"satisfied {how} {where}{why}".replace("  ", " ")
    if kind == "bumped":
        return f"bumped +{float(e.get('amount') or 0):g} {where}{why}"
    if kind == "reset":
        return f"reset {where}{why}"
    if kind == "band_changed":
        return f"{e.get('from')} → {e.get('to')} (ratio {float(e.get('ratio', 0)):.2f})"
    if kind == "triggered":
        return (
            f"TRIGGERED at {round(float(e.get('ratio', 0)) * 100)}% ({_num(e.get('pressure', 0))})"
        )
    if kind == "action_started":
        return f"action started: {e.get('detail', '')}"
    if kind == "action_finished":
        return f"action finished: {e.get('detail', '')}"
    return kind


def _line(e: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(e, ensure_ascii=False)
    stamp = datetime.fromtimestamp(float(e.get("ts", 0))).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}  {e.get('drive', '?'):<14} {describe(e)}"


def _select(
    entries: Iterable[dict[str, Any]], drive: str | None, since: float | None
) -> Iterator[dict[str, Any]]:
    for e in entries:
        if drive is not None and e.get("drive") != drive:
            continue
        if since is not None and float(e.get("ts", 0)) < since:
            continue
        yield e


def log(
    drive: str | None = None,
    since: str | None = None,
    limit: int = DEFAULT_LIMIT,
    as_json: bool = False,
    follow: bool = False,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    name = drive_key(drive) if drive else None
    start = parse_since(since) if since else None
    kept: list[dict[str, Any]] = []
    for e in _select(read_history(Path(paths.state_dir())), name, start):
        kept.append(e)
        if len(kept) > limit:  # the newest `limit`, without holding the whole history
            kept.pop(0)
    if not kept:
        _explain_nothing(name)
    for e in kept:
        stream.write(_line(e, as_json) + "\n")
    stream.flush()
    if follow:
        last = max(((int(e["seq"]), int(e.get("n", 0))) for e in kept), default=(-1, -1))
        _follow(name, last, as_json, stream)
    return 0


def _explain_nothing(name: str | None) -> None:
    """Nothing to show: say why when it is not just a quiet history. A drive filter
    with a typo is refused; on a NATS follower's host the history lives at the home."""
    try:
        state = read(client="agentctx-log")
    except AgentctxError:
        return  # no state to tell: an empty answer is all there is
    if name is not None and name not in state.drives:
        known = ", ".join(state.drives) or "none"
        raise UsageError(f"no drive {name!r} in the history or the current state (drives: {known})")
    if note := elsewhere(state.origin, os.uname().nodename):
        print(f"agentctx log: {note}", file=sys.stderr)


def elsewhere(origin: str | None, here: str) -> str:
    """Why this host has no history of an agent whose drives another host computes."""
    if not origin or origin == here:
        return ""
    return f"no history here: {origin}, whose sidecar computes these drives, keeps it"


def _follow(drive: str | None, last: tuple[int, int], as_json: bool, out: TextIO) -> None:
    import anyio  # only for --follow

    from agentctx.state import DriveEvent
    from agentctx.subscription import subscribe

    async def run() -> None:
        async with subscribe(client="agentctx-log") as updates:
            async for update in updates:
                if not isinstance(update, DriveEvent):
                    continue
                e = update.data
                if (int(e["seq"]), int(e.get("n", 0))) <= last:
                    continue  # already printed from the history
                if drive is None or e.get("drive") == drive:
                    out.write(_line(e, as_json) + "\n")  # as the history has it
                    out.flush()

    anyio.run(run)
