"""The request spool: where satisfy/bump/reset go when the sidecar is down.

Each request is one file, written atomically and fsync'd (file and directory)
before the caller is told "queued": once queued it survives a crash or a power
cut. File names start with the creation time in nanoseconds, so the daemon
drains them in the order they were made, applying each at the instant it was
made; the request_id inside makes a repeat harmless (applied once).
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import Final

from agentctx._core import paths
from agentctx._core.errors import UnsafePath
from agentctx._core.files import atomic_write, make_private_dirs
from agentctx._core.protocol import Request, Spooled, encode

__all__ = ["REJECTED_DIR", "check_spool_dir", "is_spooled", "spool_files", "spool_request"]

REJECTED_DIR: Final = "rejected"  # requests the daemon could not apply, kept for a human
SUFFIX: Final = ".json"
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def is_spooled(name: str) -> bool:
    """Whether a file name in the spool dir is a spooled request (not a temp file)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def spool_request(
    req: Request, made_at: float | None = None, directory: Path | None = None
) -> Path:
    """Write *req* durably to the spool; return its path. StoreError if that fails,
    UnsafePath if others could write to the spool dir (the daemon would not drain it)."""
    directory = directory or Path(paths.spool_dir())
    made_at = time.time() if made_at is None else made_at
    make_private_dirs(directory)
    check_spool_dir(directory)
    safe_id = _SAFE.sub("_", req.request_id)[:64]
    path = directory / f"{int(made_at * 1e9):020d}-{safe_id}{SUFFIX}"
    atomic_write(path, encode(Spooled(made_at=made_at, request=req)) + b"\n", durable=True)
    return path


def check_spool_dir(directory: Path) -> None:
    """UnsafePath unless *directory* is a real directory of ours that no one else may
    write to: a spool anyone else can put a file in is a way to make our requests (a
    symlink elsewhere, a foreign or group-writable dir). Readable is fine: the state
    dir around it is 0700."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafePath(f"{directory}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{directory} is a symlink; refusing to use it (make it a directory)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{directory} is not a directory")
    if st.st_uid != os.getuid():
        raise UnsafePath(f"{directory} is owned by uid {st.st_uid}, not by us (uid {os.getuid()})")
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        raise UnsafePath(f"{directory} is writable by others (mode {mode:04o}; chmod 700 it)")


def spool_files(directory: Path) -> list[Path]:
    """Spooled requests in the order they were made."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [directory / n for n in sorted(names) if is_spooled(n)]
