"""Rendering: DRIVES.md-style markdown within a budget, table, JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from agentctx.render import bar, markdown, plain, to_json
from agentctx.state import DriveState


def drive(pressure: float, threshold: float, band: str, **extra: Any) -> dict[str, Any]:
    return {
        "pressure": pressure,
        "threshold": threshold,
        "ratio": pressure / threshold,
        "band": band,
        "status": "triggered" if pressure >= threshold else "building",
        "description": f"about {band}",
        "prompt": f"act on {band}",
        "max_pressure": threshold * 1.5,
        **extra,
    }


def state(age: float = 0.3, source: str = "socket") -> DriveState:
    now = time.time()
    return DriveState(
        {
            "seq": 9,
            "tick_ts": now - age,
            "tick_interval": 1.0,
            "last_tick": "2026-11-25T10:00:00+00:00",
            "drives": {
                "CARE": drive(5, 20, "latent"),
                "REST": drive(31, 30, "triggered"),
                "WANDER": drive(16, 20, "elevated"),
                "MAINTENANCE": drive(46, 25, "crisis"),
            },
        },
        source,
        now,
    )


def test_markdown_sorted_triggered_first_with_prompts() -> None:
    text = markdown(state())
    lines = text.splitlines()
    assert lines[0] == "## Drives State"
    assert "live" in lines[1]
    body = [ln for ln in lines if ln and ln[0] in "🔴🟡🟢"]
    assert [ln.split()[1].rstrip(":") for ln in body] == ["MAINTENANCE", "REST", "WANDER", "CARE"]
    assert "**🔥 Triggered:**" in text and "act on crisis" in text
    assert "- **REST** at 103%" in text


def test_markdown_budget_drops_detail_never_cuts_a_line() -> None:
    full = markdown(state())
    lines = set(full.splitlines()) | {"…"} | {f"… and {n} more" for n in range(1, 5)}
    for budget in range(len(full), 0, -7):
        text = markdown(state(), budget)
        assert len(text) <= budget
        for line in text.splitlines():  # every line whole: one of the full block's, or a marker
            assert line in lines or line.startswith(("- **", "🔴", "🟡", "🟢")), line
        # descriptions go first, then the least urgent drives' lines; the prompts of
        # the triggered drives stay longest
        listed = [ln for ln in text.splitlines() if ln.startswith(("🔴", "🟡", "🟢"))]
        if len(listed) < 4:
            assert "about" not in text
        if "act on crisis" not in text:
            assert not listed
    mid = markdown(state(), len(full) - 1)
    assert "about latent" not in mid and "act on crisis" in mid and "🟢 CARE" in mid


def test_satisfied_says_when() -> None:
    s = state()
    s.data["drives"]["CARE"].update(status="satisfied", last_satisfied="2026-11-25T09:59:48+00:00")
    assert "🟢 CARE: 5.0/20 (25%, latent) ✓ satisfied at 09:59:48 UTC" in markdown(s)


def test_a_tick_stamped_in_the_future_is_never_fresh() -> None:
    now = time.time()
    ahead = DriveState({"seq": 1, "tick_ts": now + 3600, "drives": {}}, "file", now)
    assert ahead.age_s == 0.0 and ahead.stale
    assert "in the future" in markdown(ahead) and "STALE" in markdown(ahead)


def test_stale_is_said_out_loud() -> None:
    text = markdown(state(age=3600, source="file"))
    assert "STALE" in text and "snapshot file" in text


def test_plain_and_json() -> None:
    table = plain(state())
    assert table.splitlines()[0].startswith("DRIVE") and "seq 9" in table
    data = json.loads(to_json(state()))
    assert data["source"] == "socket" and "type" not in data and data["age_s"] >= 0.3


def test_bar() -> None:
    assert bar({"pressure": 15, "max_pressure": 30}, 10) == "█████░░░░░"
    assert bar({"pressure": 99, "max_pressure": 30}, 4) == "████"
