"""What both followers (`subscribe()`, `follow()`) must live through, as one scenario
driven by the updates either hands out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support import DaemonProcess

from agentctx._core.files import atomic_write
from agentctx.state import DriveEvent, DriveState, Transition


def write_snapshot(path: Path, base: dict[str, Any], seq: int) -> None:
    """A snapshot as another writer would leave it: *base* at *seq*, ticked now."""
    data = {**base, "seq": seq, "tick_ts": time.time()}
    atomic_write(path, json.dumps(data).encode(), durable=False)


class KillAndFallBack:
    """Live from the socket; the daemon killed -9; the snapshot followed (first an
    older seq is written there, which must never be handed out, then newer ones, as by
    another writer); the daemon started again; live again. Never an older or repeated
    seq, and every newer snapshot written while down handed over."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.d = daemon
        self.seqs: list[int] = []
        self.sources: list[str] = []
        self.modes: list[str] = []
        self.file_seqs: list[int] = []
        self.phase = "live"
        self.last: DriveState | None = None

    def __repr__(self) -> str:
        return f"phase {self.phase}, modes {self.modes}, sources {self.sources}"

    def on(self, u: DriveState | DriveEvent | Transition) -> bool:
        """Take one update; True once the scenario is complete."""
        if isinstance(u, Transition):
            self.modes.append(u.mode)
            if self.phase == "down" and u.mode == "fallback":
                self.phase = "fallback"
                assert self.last is not None
                # older than what the socket gave: must never be handed out
                write_snapshot(self.d.snapshot, self.last.data, self.seqs[-1] - 3)
                self._write_newer(self.last, self.seqs[-1] + 1000)
            elif self.phase == "restarted" and u.mode == "live":
                self.phase = "live2"
            return False
        if not isinstance(u, DriveState):
            return False
        assert not self.seqs or u.seq > self.seqs[-1], "a state went back or repeated"
        self.seqs.append(u.seq)
        self.last = u
        self.sources.append(u.source)
        if self.phase == "live" and self.sources.count("socket") >= 5:
            self.d.kill9()
            self.phase = "down"
        elif self.phase == "fallback" and u.source == "file":
            if len(self.file_seqs) < 3:  # another writer updates the file meanwhile
                self._write_newer(u, u.seq + 1000)
            elif u.seq == self.file_seqs[-1]:
                self.d.start()
                self.phase = "restarted"
        elif self.phase == "live2" and u.source == "socket":
            assert u.seq > self.file_seqs[-1]
            return sum(1 for s in self.sources[-3:] if s == "socket") == 3
        return False

    def check(self) -> None:
        """After the scenario completed: the modes it went through, nothing missed."""
        assert self.modes[:1] == ["live"], self
        assert "fallback" in self.modes and self.modes[-1] == "live", self
        for fs in self.file_seqs:
            assert fs in self.seqs, (fs, self)

    def _write_newer(self, base: DriveState, seq: int) -> None:
        self.file_seqs.append(seq)
        write_snapshot(self.d.snapshot, base.data, seq)
