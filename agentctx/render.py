"""Rendering a drive state for an agent's context, a terminal, or a program.

`markdown()` follows emergence's DRIVES.md block (the format agents already
know): drives sorted by ratio, triggered ones first and called out with their
prompt, a marker per drive, and an honest freshness line. It fits a character
budget by dropping detail before dropping drives.
"""

from __future__ import annotations

import os
import time

from agentctx.state import FUTURE_TOLERANCE_S, DriveState

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_CHARS",
    "as_dict",
    "bar",
    "by_urgency",
    "freshness",
    "markdown",
    "plain",
    "to_json",
]

DEFAULT_MAX_CHARS: Final = 2000
_HOT: Final = frozenset({"triggered", "crisis", "emergency"})
_MARK: Final = {"emergency": "🔴", "crisis": "🔴", "triggered": "🔴", "elevated": "🟡"}


def by_urgency(state: DriveState) -> list[tuple[str, dict[str, Any]]]:
    """Triggered (and worse) drives first, then by ratio, highest first."""
    return sorted(
        state.drives.items(),
        key=lambda kv: (kv[1].get("band") not in _HOT, -float(kv[1].get("ratio", 0))),
    )


def _age(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def freshness(state: DriveState) -> str:
    """Where the state came from and how old it is, said plainly when it may be stale."""
    where = "live from the socket" if state.source == "socket" else "from the snapshot file"
    origin = state.origin
    if origin and origin != os.uname().nodename:
        where += f" (computed on {origin})"
    if state.data.get("stale"):
        return (
            f"⚠ STALE: {where}, {_age(state.age_s)} old; its home sidecar is out of reach "
            "(NATS down or the home stopped), numbers may be out of date"
        )
    if state.clock_ahead_s > FUTURE_TOLERANCE_S:
        return (
            f"⚠ STALE: {where}, stamped {_age(state.clock_ahead_s)} in the future "
            "(the clock was changed); its age is unknown, numbers may be out of date"
        )
    text = f"{where}, {_age(state.age_s)} old"
    if state.stale:
        text = f"⚠ STALE: {text}; the sidecar looks down, numbers may be out of date"
    return text


def _num(x: Any) -> str:
    return f"{float(x):.1f}"


def _clock(text: Any) -> str:
    """The time of day of an ISO-8601 UTC instant from the state ("09:41:07 UTC"), or ""."""
    if isinstance(text, str) and len(text) >= 19 and text[10] == "T" and text.endswith("+00:00"):
        return f" at {text[11:19]} UTC"
    return ""


def _drive_line(name: str, d: dict[str, Any], with_description: bool) -> str:
    pct = round(float(d.get("ratio", 0)) * 100)
    line = (
        f"{_MARK.get(d.get('band', ''), '🟢')} {name}: {_num(d.get('pressure', 0))}/"
        f"{float(d.get('threshold', 0)):g} ({pct}%, {d.get('band', '?')})"
    )
    if d.get("status") == "satisfied":
        # when, not "just": a shallow satisfaction can leave the drive elevated
        line += f" ✓ satisfied{_clock(d.get('last_satisfied'))}"
    desc = d.get("description")
    if with_description and desc:
        line += f" — {desc}"
    return line


def markdown(state: DriveState, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The DRIVES.md-style block, at most *max_chars* characters.

    To fit, it drops detail in this order: descriptions, the list lines of the
    least urgent drives (triggered ones stay named in their own section), the
    triggered drives' prompts; and only then whole lines from the end. It never
    cuts a line in the middle."""
    drives = by_urgency(state)
    hot = [(n, d) for n, d in drives if d.get("band") in _HOT]
    head = [
        "## Drives State",
        f"*{len(drives)} drives, updated {state.last_tick} ({freshness(state)})*",
        "",
    ]

    def build(prompts: bool, descriptions: bool, keep: int) -> list[str]:
        lines = list(head)
        if hot:
            lines.append("**🔥 Triggered:**")
            for name, d in hot:
                item = (
                    f"- **{name}** at {round(float(d.get('ratio', 0)) * 100)}% "
                    f"({_num(d.get('pressure', 0))}/{float(d.get('threshold', 0)):g})"
                )
                prompt = str(d.get("prompt") or "").strip()
                if prompts and prompt:
                    item += f" — {prompt.splitlines()[0]}"
                lines.append(item)
            lines.append("")
        lines += [_drive_line(n, d, descriptions) for n, d in drives[:keep]]
        if keep < len(drives):
            lines.append(f"… and {len(drives) - keep} more")
        return lines

    everything = len(drives)
    tries = [(True, True, everything)]
    tries += [(True, False, keep) for keep in range(everything, -1, -1)]
    tries.append((False, False, 0))
    for prompts, descriptions, keep in tries:
        lines = build(prompts, descriptions, keep)
        if len("\n".join(lines)) <= max_chars:
            return "\n".join(lines)
    return _whole_lines(lines, max_chars)


def _whole_lines(lines: list[str], max_chars: int) -> str:
    """As many whole lines as fit, then "…" (if even that fits)."""
    kept: list[str] = []
    size = 0
    for line in lines:
        extra = len(line) + (1 if kept else 0)
        if size + extra + len("\n…") > max_chars:
            break
        kept.append(line)
        size += extra
    kept.append("…")
    text = "\n".join(kept)
    return text if len(text) <= max_chars else ""


def bar(d: dict[str, Any], width: int = 20) -> str:
    """Pressure as a bar over the drive's full range (0 .. max_pressure)."""
    top = float(d.get("max_pressure") or d.get("threshold") or 1.0)
    filled = max(0, min(width, round(float(d.get("pressure", 0)) / top * width)))
    return "█" * filled + "░" * (width - filled)


def plain(state: DriveState) -> str:
    """A table for `agentctx status`."""
    rows = [f"{'DRIVE':<14} {'PRESSURE':>9} {'THRESH':>7} {'RATIO':>6}  {'BAND':<10} STATUS"]
    for name, d in by_urgency(state):
        rows.append(
            f"{name:<14} {float(d.get('pressure', 0)):>9.2f} {float(d.get('threshold', 0)):>7g} "
            f"{float(d.get('ratio', 0)):>6.2f}  {d.get('band', '?'):<10} {d.get('status', '?')}"
        )
    rows.append(f"seq {state.seq}, {freshness(state)}")
    return "\n".join(rows)


def as_dict(state: DriveState) -> dict[str, Any]:
    """The state plus where it came from and how old it is, for programs: what
    `agentctx status --json` prints and what `agentctx web` serves."""
    out = {k: v for k, v in state.data.items() if k not in ("type", "id")}
    out.update(
        source=state.source,
        age_s=round(state.age_s, 3),
        stale=state.stale,
        read_at=round(time.time(), 3),
    )
    return out


def to_json(state: DriveState) -> str:
    """`as_dict()` as indented JSON."""
    import json  # here only: the hook path renders markdown(), and json costs it ~9 ms

    return json.dumps(as_dict(state), indent=2, ensure_ascii=False)
