"""An agent's hook settings file, edited in place: our hooks in, our hooks out,
everything else kept.

Claude Code (`settings.json`), Codex (`hooks.json`) and Gemini CLI (`settings.json`)
share one shape: `{"hooks": {EVENT: [GROUP, ...]}}`, a GROUP being `{"matcher"?: ...,
"hooks": [HANDLER, ...]}` and a HANDLER `{"type": "command", "command": ...}`. Our
handlers are recognised by their command (`.../agentctx context --hook AGENT ...`),
so a reinstall from another path replaces the old entry instead of adding a second
one, and uninstall removes exactly those. A file is only written when its content
changes, atomically, with the previous version kept next to it.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from agentctx._core.errors import ConfigError, StoreError
from agentctx._core.files import atomic_write, read_file

__all__ = [
    "BACKUP_SUFFIX",
    "Placed",
    "find_ours",
    "is_ours",
    "load",
    "place",
    "remove",
    "save",
    "write_with_backup",
]

BACKUP_SUFFIX: Final = ".agentctx-backup"
NEW_FILE_MODE: Final = 0o644  # what the agents create their own settings with
MAX_SETTINGS: Final = 16 << 20

Placed = tuple[str, int, int, dict[str, Any]]  # event, group index, handler index, handler


def load(path: Path) -> tuple[dict[str, Any], bytes | None]:
    """The settings at *path* ({} when absent) and their bytes (None when absent).
    ConfigError, naming the file, when it is not a JSON object of the expected shape."""
    try:
        raw = read_file(os.path.realpath(path), MAX_SETTINGS)  # a dotfiles symlink is fine
    except StoreError as exc:
        raise ConfigError(f"{exc}; nothing changed") from None
    if raw is None or not raw.strip():
        return {}, raw
    try:
        doc = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{path}: not plain JSON ({exc}); nothing changed: fix it (comments too "
            "must go) or add the hooks by hand"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object; nothing changed")
    hooks = doc.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        raise ConfigError(f'{path}: "hooks" is a {_kind(hooks)}, not an object; nothing changed')
    return doc, raw


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN/Infinity; agents may not


def _shape_problem(hooks: dict[str, Any], events: Iterable[str]) -> str:
    """Where *events* deviate from {EVENT: [{"matcher"?, "hooks": [{...}]}]}, or "":
    we would not know how to keep anything else intact. (Other keys are the agent's
    business: some versions keep settings such as "enabled" beside the events.)"""
    for event in events:
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            return f"hooks.{event} is a {_kind(groups)}, not a list"
        for g, group in enumerate(groups):
            where = f"hooks.{event}[{g}]"
            if not isinstance(group, dict):
                return f"{where} is a {_kind(group)}, not an object"
            handlers = group.get("hooks", [])
            if not isinstance(handlers, list):
                return f"{where}.hooks is a {_kind(handlers)}, not a list"
            for h, handler in enumerate(handlers):
                if not isinstance(handler, dict):
                    return f"{where}.hooks[{h}] is a {_kind(handler)}, not an object"
    return ""


def is_ours(command: object, agent: str) -> bool:
    """Whether a handler command is an `agentctx context --hook AGENT` hook, wherever
    agentctx lives (`/x/bin/agentctx ...` or `/x/bin/python -m agentctx ...`)."""
    if not isinstance(command, str):
        return False
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    if len(argv) > 2 and argv[1:3] == ["-m", "agentctx"]:
        argv = argv[2:]
    elif not argv or os.path.basename(argv[0]) != "agentctx":
        return False
    args = argv[1:]
    return bool(args[:1] == ["context"]) and (
        f"--hook={agent}" in args
        or any(a == "--hook" and b == agent for a, b in itertools.pairwise(args))
    )


def _is_our_handler(handler: object, agent: str) -> bool:
    return isinstance(handler, dict) and is_ours(handler.get("command"), agent)


def find_ours(doc: dict[str, Any], agent: str) -> list[Placed]:
    """Every handler of ours in *doc*, with where it sits."""
    found: list[Placed] = []
    hooks = doc.get("hooks")
    for event, groups in (hooks or {}).items():
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for h, handler in enumerate(handlers if isinstance(handlers, list) else []):
                if _is_our_handler(handler, agent):
                    found.append((event, g, h, handler))
    return found


def place(
    doc: dict[str, Any], agent: str, wanted: dict[str, dict[str, Any]], path: Path
) -> tuple[bool, list[Placed]]:
    """Make our handlers in *doc* exactly *wanted* (event -> handler), each alone in a
    group of its own at the end of its event's list. Returns (changed, where they are)."""
    current = find_ours(doc, agent)
    unchanged = len(current) == len(wanted) and all(
        event in wanted
        and handler == wanted[event]
        and doc["hooks"][event][g] == {"hooks": [handler]}
        and sum(1 for p in current if p[0] == event) == 1
        for event, g, _h, handler in current
    )
    if not unchanged:
        if problem := _shape_problem(doc.get("hooks") or {}, wanted):
            raise ConfigError(f"{path}: {problem}; nothing changed")
        remove(doc, agent)
        hooks = doc.setdefault("hooks", {})
        for event, handler in wanted.items():
            hooks.setdefault(event, []).append({"hooks": [handler]})
    return not unchanged, find_ours(doc, agent)


def remove(doc: dict[str, Any], agent: str) -> int:
    """Take every handler of ours out of *doc*; drop the groups, event lists and the
    "hooks" object that this empties (and only those). Returns how many went."""
    hooks = doc.get("hooks")
    if not isinstance(hooks, dict):
        return 0
    removed = 0
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(handlers, list):
                kept.append(group)
                continue
            others = [h for h in handlers if not _is_our_handler(h, agent)]
            removed += len(handlers) - len(others)
            if others or not handlers:
                kept.append({**group, "hooks": others} if len(others) < len(handlers) else group)
        if len(kept) < len(groups) and not kept:
            del hooks[event]
        else:
            groups[:] = kept
    if removed and not hooks:
        del doc["hooks"]
    return removed


def save(path: Path, doc: dict[str, Any], previous: bytes | None) -> Path | None:
    """Write *doc* to *path* (see write_with_backup)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return write_with_backup(path, text.encode(), previous)


def write_with_backup(path: Path, data: bytes, previous: bytes | None) -> Path | None:
    """Replace *path* with *data* atomically, keeping *previous* (its old bytes) as the
    backup, whose path is returned. A symlink (dotfiles) is written through, not replaced."""
    real = Path(os.path.realpath(path))
    backup = None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(real.stat().st_mode) if previous is not None else NEW_FILE_MODE
    except OSError as exc:
        raise StoreError(f"{real}: {exc.strerror}") from None
    if previous is not None and not mode & 0o222:
        # read-only on purpose (root could write it anyway): the user's call, not ours
        raise StoreError(f"{real}: read-only (mode {mode:04o}); nothing changed")
    if previous is not None:
        backup = real.with_name(real.name + BACKUP_SUFFIX)
        atomic_write(backup, previous, durable=True, mode=0o600)  # settings may hold API keys
    atomic_write(real, data, durable=True, mode=mode)
    return backup


def _kind(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
