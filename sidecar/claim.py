"""Claiming a sidecar's directories, its lock and its socket, without stealing a live one.

Order matters (docs/design.md, "Known traps"): check the directory, take the lock file
(flock, so a crashed daemon releases it automatically), probe any socket already
at the path with a connect, and only then bind. Binding under a umask of 0177
means the socket is never, even for an instant, reachable by anyone but us.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from agentctx._core.errors import AlreadyRunning, UnsafePath

__all__ = ["bind_socket", "ensure_private_dir", "hold_lock"]

log = logging.getLogger(__name__)

BACKLOG: Final = 128
PROBE_TIMEOUT: Final = 0.5


def ensure_private_dir(path: Path, *, create: bool = True) -> None:
    """Make sure *path* is a real directory, ours, mode 0700 (creating it if asked)."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafePath(f"{path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path} is a symlink; refusing to use it (remove it and retry)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise UnsafePath(f"{path} is owned by uid {st.st_uid}, not by us (uid {os.getuid()})")
    if st.st_mode & 0o077:
        raise UnsafePath(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0700 (chmod 700 {path})"
        )


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on *path* for the life of the daemon."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UnsafePath(f"{path}: cannot open lock file: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(
                f"another agentctx-sidecar (pid {other}) is running on {path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _probe(path: Path) -> bool:
    """True when something is accepting connections on the socket at *path*."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(PROBE_TIMEOUT)
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            # anything but "nobody there" (e.g. EAGAIN: backlog full) means alive
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
        return True


def bind_socket(path: Path) -> socket.socket:
    """Bind and listen on *path* (0600). Call with the lock held."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise UnsafePath(f"{path} exists and is not a socket; refusing to replace it")
        if _probe(path):
            raise AlreadyRunning(f"a live sidecar already answers on {path}")
        log.info("removing stale socket %s (its daemon is gone)", path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise AlreadyRunning(f"{path}: cannot bind: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
