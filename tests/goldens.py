"""The drive block's golden files, shared by the Python and the JavaScript renderer.

tests/golden/render/NAME.json holds a drive state as a reader holds it (the daemon's
message, its source, the time it was received, so the age text is fixed) and the
character budgets to render it at; NAME.BUDGET.md beside it is the block
`agentctx.render.markdown()` makes of it. tests/test_openclaw_render.py checks that
the Python renderer still makes exactly these, tests/js/render.test.mjs that the
OpenClaw plugin's does.

After a deliberate change to the block, regenerate them and review the diff:

    .venv/bin/python tests/goldens.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agentctx.render import DEFAULT_MAX_CHARS, markdown
from agentctx.state import DriveState

__all__ = ["GOLDEN_DIR", "cases", "expected", "main"]

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "render"


def cases() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.json"))


def _load(case: Path) -> tuple[DriveState, list[int]]:
    spec: dict[str, Any] = json.loads(case.read_text(encoding="utf-8"))
    state = DriveState(spec["state"], spec["source"], spec["received_at"])
    return state, spec.get("max_chars", [DEFAULT_MAX_CHARS])


def expected(case: Path) -> dict[Path, str]:
    """Each golden file of *case* and the block the Python renderer makes for it now."""
    state, budgets = _load(case)
    return {case.with_suffix(f".{budget}.md"): markdown(state, budget) for budget in budgets}


def main() -> int:
    wanted: dict[Path, str] = {}
    for case in cases():
        wanted.update(expected(case))
    for path, text in wanted.items():
        path.write_bytes(text.encode("utf-8"))
    for stale in set(GOLDEN_DIR.glob("*.md")) - set(wanted):
        stale.unlink()
    print(f"{len(wanted)} golden blocks written to {GOLDEN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
