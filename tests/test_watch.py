"""`agentctx watch`'s screen: what fits in a terminal's width."""

from __future__ import annotations

import re
import time
from collections import deque

import pytest

from agentctx.cli.watch import _screen
from agentctx.state import DriveState

ANSI = re.compile(r"\033\[[0-9;]*m")


def state(status: str, band: str) -> DriveState:
    drive = {"pressure": 31.5, "threshold": 25, "band": band, "status": status, "ratio": 1.26}
    data = {
        "seq": 7,
        "tick_ts": time.time(),
        "tick_interval": 1.0,
        "drives": {"MAINTENANCE": drive},
    }
    return DriveState(data, "socket")


@pytest.mark.parametrize("width", [79, 100, 60])
@pytest.mark.parametrize(("status", "band"), [("triggered", "emergency"), ("satisfied", "latent")])
def test_a_drive_line_fits_whole_down_to_80_columns(width: int, status: str, band: str) -> None:
    screen = _screen(state(status, band), "live", deque(), width, None)
    line = next(ANSI.sub("", s) for s in screen.splitlines() if s.startswith("MAINTENANCE"))
    if width >= 79:  # an 80-column terminal (its last column wraps) and wider
        assert line.endswith(f"{band:<10} {status}"), line
    assert len(line) <= width
