"""Reading the live snapshot file: the one reader every side uses.

The snapshot is an encoded `State` (agentctx._core.protocol), pretty-printed so
`cat` shows it. This reader parses it with the stdlib `json` (it is on the hook's
start-up path) and checks only that it is a drive state; callers that need the
typed `State` (the daemon restoring from it) pass the result to `state_from_dict`.
"""

from __future__ import annotations

from agentctx._core import fastjson
from agentctx._core.errors import StoreError
from agentctx._core.files import read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agentctx._core.paths import StrPath

__all__ = ["parse_snapshot", "read_snapshot_file"]


def read_snapshot_file(path: StrPath) -> dict[str, Any] | None:
    """The snapshot at *path* as a dict; None if there is no file; StoreError if it
    cannot be read or is not a drive state."""
    data = read_file(path)
    return None if data is None else parse_snapshot(data, str(path))


def parse_snapshot(data: bytes, source: str) -> dict[str, Any]:
    """Snapshot bytes (or a `state` frame) as a dict; StoreError naming *source*."""
    try:
        obj = fastjson.loads(data)
    except ValueError as exc:
        raise StoreError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("drives"), dict):
        raise StoreError(f"{source}: not a drive state (no 'drives' object)")
    checked: dict[str, Any] = obj
    return checked
