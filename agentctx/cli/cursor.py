"""Per-session cursors for `agentctx context --changes-only`.

A cursor remembers, for one agent session, each drive's band and last discrete
event at the last injection. The next call injects again only when one of those
moved, so a per-turn hook adds nothing to the context while nothing happened.
Cursors are tiny files under the state dir, pruned after CURSOR_TTL.
"""

from __future__ import annotations

import os
import time

from agentctx._core import fastjson, paths
from agentctx._core.errors import StoreError
from agentctx._core.files import atomic_write, make_private_dirs, read_file
from agentctx.state import DriveState

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["CURSOR_TTL", "changed_since", "load_cursor", "save_cursor"]

CURSOR_TTL: Final = 7 * 86400.0
PRUNE_EVERY: Final = 3600.0
# the characters a session id may keep in a file name (no `re`: see _core/fastjson.py)
_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
SAFE_MAX: Final = 80


def cursor_dir() -> str:
    return os.path.join(paths.state_dir(), "cursors")


def _path(session_id: str) -> str:
    if 0 < len(session_id) <= SAFE_MAX and _SAFE.issuperset(session_id) and session_id[0] != ".":
        name = session_id  # Claude Code session ids are UUIDs: the usual case
    else:
        import hashlib  # only for odd ids; keeps the per-turn hook's imports small

        # surrogatepass: an id from JSON may hold a lone surrogate ("\ud800")
        name = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return os.path.join(cursor_dir(), f"{name}.json")


def _summary(state: DriveState) -> dict[str, Any]:
    return {
        "bands": {n: d.get("band") for n, d in state.drives.items()},
        "events": {n: d.get("last_event") for n, d in state.drives.items()},
    }


def load_cursor(session_id: str) -> dict[str, Any] | None:
    try:
        data = read_file(_path(session_id))
        obj = fastjson.loads(data) if data is not None else None
    except (StoreError, ValueError):
        return None  # a damaged cursor only means one extra injection
    return obj if isinstance(obj, dict) else None


def changed_since(state: DriveState, cursor: dict[str, Any] | None) -> bool:
    """True when a band moved or a drive was satisfied/bumped/reset since *cursor*."""
    if cursor is None:
        return True
    now = _summary(state)
    return bool(now["bands"] != cursor.get("bands") or now["events"] != cursor.get("events"))


def save_cursor(session_id: str, state: DriveState) -> None:
    directory = cursor_dir()
    make_private_dirs(directory)
    body = {**_summary(state), "seq": state.seq, "saved_at": time.time()}
    atomic_write(_path(session_id), fastjson.dumps(body).encode(), durable=False)
    _prune(directory)


def _prune(directory: str) -> None:
    """Drop cursors of sessions idle for CURSOR_TTL; at most once per PRUNE_EVERY."""
    marker = os.path.join(directory, ".pruned")
    now = time.time()
    try:
        if now - os.stat(marker).st_mtime < PRUNE_EVERY:
            return
    except FileNotFoundError:
        pass
    with open(marker, "w"):
        pass
    for entry in os.scandir(directory):
        if entry.name.endswith(".json"):
            try:
                if now - entry.stat().st_mtime > CURSOR_TTL:
                    os.unlink(entry.path)
            except OSError:
                pass
