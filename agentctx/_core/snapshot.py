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
    problem = _check(obj, _STATE_FIELDS, "")
    for name, drive in obj["drives"].items():
        if problem:
            break
        if not isinstance(drive, dict):
            problem = f"drives.{name}: expected an object, got {drive!r:.40}"
        else:
            problem = _check(drive, _DRIVE_FIELDS, f"drives.{name}.")
    if problem:
        raise StoreError(f"{source}: not a drive state ({problem})")
    checked: dict[str, Any] = obj
    return checked


# The fields a reader relies on, and the JSON types each may have: a file written by
# anything but the daemon (a hand edit, another tool) is refused in one line here
# rather than failing wherever a view first uses the value. Absent is fine (the views
# have defaults): older and emergence-written files lack some.
_NUMBER = (int, float)
_TEXT = (str,)
_OPTIONAL_TEXT = (str, type(None))
_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "seq": (int,),
    "tick_ts": _NUMBER,
    "tick_interval": _NUMBER,
    "last_tick": _TEXT,
    "boot_id": _TEXT,
    "stale": (bool,),
    "origin": _OPTIONAL_TEXT,
}
_DRIVE_FIELDS: dict[str, tuple[type, ...]] = {
    "pressure": _NUMBER,
    "threshold": _NUMBER,
    "ratio": _NUMBER,
    "max_pressure": _NUMBER,
    "rate_per_hour": _NUMBER,
    "status": _TEXT,
    "band": _TEXT,
    "description": _TEXT,
    "prompt": _TEXT,
    "activity_driven": (bool,),
    "last_triggered": _OPTIONAL_TEXT,
    "last_satisfied": _OPTIONAL_TEXT,
    "last_event": _OPTIONAL_TEXT,
    "last_fired": _OPTIONAL_TEXT,
}


def _check(obj: dict[str, Any], fields: dict[str, tuple[type, ...]], prefix: str) -> str:
    """The first field of *obj* whose value is not of its types, described; else ""."""
    for key, types in fields.items():
        if key not in obj:
            continue
        value = obj[key]
        # bool is an int to isinstance: true/false where a number belongs is refused too
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{prefix}{key}: expected {_KINDS[types]}, got {value!r:.40}"
    return ""


_KINDS = {
    _NUMBER: "a number",
    _TEXT: "a string",
    _OPTIONAL_TEXT: "a string or null",
    (int,): "an integer",
    (bool,): "true or false",
}
