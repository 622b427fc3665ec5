"""Atomic, symlink-safe file primitives shared by the daemon and the clients.

A file is replaced by writing a temp file in the same directory and renaming it
over the old one, so a reader (or a crash) only ever sees the whole old or the
whole new file. With ``durable=True`` the temp file is fsync'd before the rename
and the directory after it: without the first a power cut can leave the new name
pointing at an empty file; without the second the rename itself may not have
reached the disk. Nothing here follows a symlink (O_NOFOLLOW / O_EXCL).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat

from agentctx._core.errors import StoreError, UnsafePath

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from agentctx._core.paths import StrPath

__all__ = [
    "MAX_STATE_FILE",
    "atomic_write",
    "clean_orphans",
    "ensure_private_dir",
    "failpoint",
    "fsync_dir",
    "make_private_dirs",
    "read_file",
]

# A state is a few KiB; the largest a config allows is one 64 MiB frame, which the
# pretty-printed snapshot stretches by its indentation. Anything larger is refused.
MAX_STATE_FILE: Final = 256 << 20

# Fault injection for the crash-consistency tests, inert unless the variable is set:
# the file it names lists armed points ("after-fsync@state.json", "mid-drain", ...),
# re-read at every check so a test can arm a point in a running daemon.
FAILPOINTS_ENV: Final = "AGENTCTX_FAILPOINTS_FILE"
FAILPOINT_EXIT: Final = 86
_failpoints_file = os.environ.get(FAILPOINTS_ENV)
TMP_SUFFIX: Final = ".tmp"
_counter = itertools.count()


def read_file(path: StrPath, limit: int = MAX_STATE_FILE) -> bytes | None:
    """The bytes of *path*, None if absent; StoreError for anything but a regular file.

    Never follows a symlink, and never blocks on a FIFO or a device planted at the
    path: it is opened non-blocking and refused unless it is a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{path}: not a regular file; refusing to read it")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(limit + 1)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise StoreError(f"{path}: larger than {limit} bytes")
    return data


def failpoint(point: str, path: StrPath | None = None) -> bool:
    """At a named point: crash here (os._exit) if a test armed it, or return True for
    points that inject an error instead of crashing (their name ends in "-eio")."""
    if _failpoints_file is None:
        return False
    try:
        with open(_failpoints_file) as f:
            armed = f.read().split()
    except OSError:
        return False
    name = os.path.basename(os.fspath(path)) if path is not None else ""
    if point not in armed and f"{point}@{name}" not in armed:
        return False
    if point.endswith("-eio"):
        return True
    os._exit(FAILPOINT_EXIT)


def atomic_write(path: StrPath, data: bytes, *, durable: bool, mode: int = 0o600) -> None:
    """Replace *path* with *data* atomically; with ``durable``, crash-safely too.

    A failed write leaves the old file intact and no temp file behind. After an
    fsync error the data may be lost from the page cache (Linux drops dirty pages
    it could not write), so the caller must write a fresh file, never fsync again.
    """
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{next(_counter)}{TMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise StoreError(f"{tmp}: cannot create: {exc.strerror}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            failpoint("after-temp-write", path)
            if durable:
                if failpoint("fsync-eio", path):
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                os.fsync(fd)
                failpoint("after-fsync", path)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        failpoint("after-rename", path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StoreError(f"{path}: cannot write: {exc.strerror}") from None
    if durable:
        fsync_dir(directory or ".")
        failpoint("after-dir-fsync", path)


def make_private_dirs(path: StrPath) -> None:
    """`mkdir -p` where every directory it creates is 0700 (those that exist are left
    as they are). A client that creates the state or spool dir while the daemon is
    down must leave them as private as the daemon would (it refuses anything else)."""
    path = os.fspath(path)
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"{directory}: cannot create: {exc.strerror}") from None


def ensure_private_dir(path: StrPath, *, create: bool = True) -> None:
    """Make sure *path* is a real directory, ours, mode 0700 (creating it if asked)."""
    if create:
        make_private_dirs(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafePath(f"{path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path} is a symlink; refusing to use it (remove it and retry)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_ISVTX or mode & 0o002:  # /tmp and the like: shared by everyone
        raise UnsafePath(
            f"{path} is a shared directory (mode {mode:04o}); give the sidecar a private "
            f"directory inside it instead, e.g. {os.path.join(path, f'agentctx-{os.getuid()}')}"
        )
    if st.st_uid != os.getuid():
        raise UnsafePath(f"{path} is owned by uid {st.st_uid}, not by us (uid {os.getuid()})")
    if mode & 0o077:
        raise UnsafePath(f"{path} has mode {mode:04o}; it must be 0700 (chmod 700 {path})")


def fsync_dir(directory: StrPath) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot open for fsync: {exc.strerror}") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StoreError(f"{directory}: fsync failed: {exc.strerror}") from None
    finally:
        os.close(fd)


def _unlink_quietly(path: StrPath) -> None:
    try:  # noqa: SIM105 - not contextlib.suppress: importing contextlib costs a hook ~0.7 ms
        os.unlink(path)
    except OSError:
        pass


def clean_orphans(path: StrPath) -> int:
    """Remove temp files a crashed writer of *path* left behind; return how many."""
    removed = 0
    directory, name = os.path.split(os.fspath(path))
    prefix = f".{name}."
    try:
        entries = list(os.scandir(directory or "."))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX):
            _unlink_quietly(entry.path)
            removed += 1
    return removed
