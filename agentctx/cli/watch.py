"""`agentctx watch`: a live terminal view of the drives.

On a terminal it redraws in place: a bar per drive coloured by band, the source
(live socket or snapshot file) and age, and the latest events scrolling below.
Piped, it prints one plain line per state change and per event instead.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Final, TextIO

import anyio

from agentctx.render import bar, by_urgency, freshness
from agentctx.state import DriveEvent, DriveState, Transition
from agentctx.subscription import subscribe

__all__ = ["watch"]

EVENTS_SHOWN: Final = 8
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


def _screen(state: DriveState | None, mode: str, events: deque[str]) -> str:
    lines = [f"agentctx watch — {mode}   (Ctrl-C to quit)", ""]
    if state is None:
        lines.append("waiting for the first state…")
    else:
        for name, d in by_urgency(state):
            band = str(d.get("band", "?"))
            colour = _COLOUR.get(band, "")
            lines.append(
                f"{name:<14} {colour}{bar(d, 30)}{_RESET} {float(d.get('pressure', 0)):7.2f}/"
                f"{float(d.get('threshold', 0)):<6g} {colour}{band:<10}{_RESET} {d.get('status')}"
            )
        lines += ["", f"seq {state.seq} · {freshness(state)}"]
    if events:
        lines += ["", "events:", *events]
    return "\n".join(lines) + "\n"


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
    async with subscribe(client="agentctx-watch") as updates:
        async for update in updates:
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
            if tty:
                out.write(_HOME_CLEAR + _screen(state, mode, events))
            out.flush()


def watch(out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    anyio.run(_run, stream, stream.isatty())
    return 0
