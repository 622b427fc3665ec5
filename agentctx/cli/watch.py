"""`agentctx watch`: a live terminal view of the drives.

On a terminal it redraws in place: a bar per drive coloured by band, the source
(live socket or snapshot file) and age, and the latest events scrolling below.
Piped, it prints one plain line per state change and per event instead.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from collections import deque
from typing import Final, TextIO

import anyio

from agentctx._core.errors import AgentctxError
from agentctx.render import bar, by_urgency, freshness
from agentctx.state import DriveEvent, DriveState, Transition
from agentctx.subscription import Update, subscribe

__all__ = ["watch"]

EVENTS_SHOWN: Final = 8
REDRAW_S: Final = 1.0
MIN_BAR: Final = 5
MAX_BAR: Final = 30
# beside the bar: name 14, pressure/threshold 7+1+6, band 10, status 9 ("triggered"), 5 spaces
FIXED_COLUMNS: Final = 51
_COLOUR: Final = {
    "latent": "\033[2m",
    "available": "\033[32m",
    "elevated": "\033[33m",
    "triggered": "\033[31m",
    "crisis": "\033[1;31m",
    "emergency": "\033[1;35m",
}
_RESET: Final = "\033[0m"
_HOME_CLEAR: Final = "\033[H\033[J"


def _fit(line: str, width: int) -> str:
    """*line* cut to *width* visible characters (colour codes are not counted), so a
    line never wraps and the redraw in place stays in place."""
    out, shown, i = [], 0, 0
    while i < len(line):
        if line.startswith("\033[", i):
            end = line.index("m", i) + 1
            out.append(line[i:end])
            i = end
            continue
        if shown == width:
            break
        out.append(line[i])
        shown += 1
        i += 1
    return "".join(out) + (_RESET if "\033[" in line else "")


def _screen(
    state: DriveState | None, mode: str, events: deque[str], width: int, problem: str | None
) -> str:
    lines = [f"agentctx watch — {mode}   (Ctrl-C to quit)", ""]
    if state is None:
        lines.append("waiting for the first state…")
    else:
        # the bar takes what the name, the numbers and the band leave of the width
        bar_width = max(MIN_BAR, min(MAX_BAR, width - FIXED_COLUMNS))
        for name, d in by_urgency(state):
            band = str(d.get("band", "?"))
            colour = _COLOUR.get(band, "")
            lines.append(
                f"{name:<14} {colour}{bar(d, bar_width)}{_RESET} "
                f"{float(d.get('pressure', 0)):7.2f}/{float(d.get('threshold', 0)):<6g} "
                f"{colour}{band:<10}{_RESET} {d.get('status')}"
            )
        lines += ["", f"seq {state.seq} · {freshness(state)}"]
    if problem:  # wrapped, not cut: a warning must be read whole
        lines += ["", *textwrap.wrap(f"⚠ {problem}", width, break_long_words=True)]
    if events:
        lines += ["", "events:", *events]
    return "\n".join(_fit(line, width) for line in lines) + "\n"


def _event_text(ev: DriveEvent) -> str:
    d = ev.data
    stamp = time.strftime("%H:%M:%S", time.localtime(float(d.get("ts", time.time()))))
    if ev.kind == "band_changed":
        return f"{stamp} {ev.drive} {d.get('from')} → {d.get('to')} (ratio {d.get('ratio', 0):.2f})"
    how = d.get("depth") or (f"{d['amount']:g}" if d.get("amount") is not None else "")
    why = f" — {d['reason']}" if d.get("reason") else ""
    return f"{stamp} {ev.drive} {ev.kind} {how}{why}".rstrip()


async def _run(out: TextIO, tty: bool) -> None:
    state: DriveState | None = None
    mode = "connecting"
    events: deque[str] = deque(maxlen=EVENTS_SHOWN)
    said: str | None = None
    async with subscribe(client="agentctx-watch") as updates:
        while True:
            # Redrawn at least every REDRAW_S with nothing new: the age shown keeps
            # growing while the sidecar is down, and a broken snapshot gets said.
            update: Update | None = None
            with anyio.move_on_after(REDRAW_S):
                update = await updates.__anext__()
            if isinstance(update, DriveState):
                state = update
                if not tty:
                    drives = " ".join(
                        f"{n}={float(d.get('pressure', 0)):.2f}({d.get('band')})"
                        for n, d in by_urgency(update)
                    )
                    out.write(f"state seq={update.seq} source={update.source} {drives}\n")
            elif isinstance(update, DriveEvent):
                events.append(_event_text(update))
                if not tty:
                    out.write(f"event {_event_text(update)}\n")
            elif isinstance(update, Transition):
                mode = "live" if update.mode == "live" else f"FALLBACK ({update.reason})"
                events.append(f"{time.strftime('%H:%M:%S')} {mode}")
                if not tty:
                    out.write(f"mode {update.mode}: {update.reason}\n")
            problem = updates.file_problem if updates.mode == "fallback" else None
            if tty:
                width = shutil.get_terminal_size().columns - 1  # the last column wraps
                now = DriveState(state.data, state.source) if state is not None else None
                out.write(_HOME_CLEAR + _screen(now, mode, events, width, problem))
            elif problem and problem != said:
                out.write(f"problem {problem}\n")
                said = problem
            out.flush()


def watch(out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    try:
        anyio.run(_run, stream, stream.isatty())
    except BaseExceptionGroup as group:  # one of ours, as one line (the CLI prints it)
        for exc in group.exceptions:
            if isinstance(exc, AgentctxError):
                raise exc from None
        raise
    return 0
