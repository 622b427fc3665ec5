"""The history: every discrete event, one JSON line each, in `history.jsonl`.

A line is an encoded wire `event` (agentctx._core.protocol.Event): satisfied,
bumped, reset, band_changed, triggered, action_started, action_finished, each with
the `seq` of the state that reflects it and `n`, its place among that state's
events; (seq, n) orders the history and makes every line unique.

The daemon appends in the same group commit as the change (docs/design.md,
"History"): the durable state is written first and carries the events not yet in
the history; they are appended after it, and a restart appends whatever a crash cut
off. So an acknowledged change is in the history exactly once, and a change that
was lost (never saved) never is. A line a crash tore in half is cut off at restart
and skipped by readers. The file is rotated by size, a few old files kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from agentctx._core.errors import StoreError
from agentctx._core.files import fsync_dir

__all__ = [
    "HISTORY_KEEP",
    "HISTORY_MAX_BYTES",
    "HISTORY_NAME",
    "append",
    "history_files",
    "last_position",
    "read_history",
    "repair_tail",
]

HISTORY_NAME: Final = "history.jsonl"
HISTORY_MAX_BYTES: Final = 8 << 20  # rotate past this (tens of thousands of events)
HISTORY_KEEP: Final = 3  # rotated files kept: history.jsonl.1 (newest) .. .3
TAIL_READ: Final = 64 << 10  # enough of a file's end to find its last whole line

Position = tuple[int, int]  # (seq, n)


def history_files(directory: Path) -> list[Path]:
    """The history files that exist, oldest first."""
    rotated = [directory / f"{HISTORY_NAME}.{i}" for i in range(HISTORY_KEEP, 0, -1)]
    return [p for p in (*rotated, directory / HISTORY_NAME) if p.exists()]


def read_history(directory: Path) -> Iterator[dict[str, Any]]:
    """Every whole entry, oldest first (a torn or damaged line is skipped)."""
    for path in history_files(directory):
        try:
            with open(path, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and "seq" in entry:
                        yield entry
        except OSError as exc:
            raise StoreError(f"{path}: cannot read: {exc.strerror}") from None


def _position(entry: dict[str, Any]) -> Position:
    return int(entry["seq"]), int(entry.get("n", 0))


def last_position(directory: Path) -> Position:
    """(seq, n) of the newest entry in the history; (-1, -1) when there is none."""
    for path in reversed(history_files(directory)):
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_READ))
            for line in reversed(f.read().splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and "seq" in entry:
                    return _position(entry)
    return (-1, -1)


def repair_tail(directory: Path) -> int:
    """Cut a half-written last line (a crash mid-append) off the current file; return
    how many bytes were cut. Its entry is still pending in the durable state."""
    path = directory / HISTORY_NAME
    try:
        with open(path, "rb+") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - TAIL_READ))
            tail = f.read()
            if not tail or tail.endswith(b"\n"):
                return 0
            keep = size - len(tail) + tail.rfind(b"\n") + 1
            f.truncate(keep)
            os.fsync(f.fileno())
            return size - keep
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"{path}: cannot repair: {exc.strerror}") from None


def append(directory: Path, lines: list[bytes], max_bytes: int = HISTORY_MAX_BYTES) -> None:
    """Append whole lines durably (write + fsync), rotating first when the file is full."""
    if not lines:
        return
    path = directory / HISTORY_NAME
    new = not path.exists()
    try:
        if not new and path.stat().st_size >= max_bytes:
            new = True
            for i in range(HISTORY_KEEP - 1, 0, -1):
                older = directory / f"{HISTORY_NAME}.{i}"
                if older.exists():
                    os.replace(older, directory / f"{HISTORY_NAME}.{i + 1}")
            os.replace(path, directory / f"{HISTORY_NAME}.1")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            data = memoryview(b"".join(line + b"\n" for line in lines))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{path}: cannot append: {exc.strerror}") from None
    if new:  # a file created or rotated just now must survive a power cut
        fsync_dir(directory)
