"""A sidecar's hold on its files: private dirs, two locks and the socket, for its life.

Order matters (docs/design.md, "Known traps"): check the directories, lock the
state dir (what must never have two writers: the durable state and the spool),
lock the runtime dir (flock on a lock file holding our pid), probe any socket
already at the path with a connect, and only then bind. Locks are flocks, so a
crashed daemon releases them by itself. Binding under a umask of 0177 means the
socket is never, even for an instant, reachable by anyone but us.

The runtime dir can vanish under a running daemon (logind removes
/run/user/UID at logout, tmpfiles cleans up). The state-dir lock keeps a second
daemon from starting meanwhile, and `lost()` / `reclaim()` let the running one
notice and put its dir, lock and socket back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Final

from agentctx._core.errors import AlreadyRunning, StoreError, UnsafePath
from agentctx._core.files import ensure_private_dir
from agentctx._core.layout import Layout
from sidecar.notify import activated_socket

__all__ = ["Claim", "bind_socket"]

log = logging.getLogger(__name__)

BACKLOG: Final = 128
PROBE_TIMEOUT: Final = 0.5


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
    """Bind and listen on *path* (0600). Call with the locks held."""
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


def _flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _inode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


class Claim:
    """Held from `acquire()` to `release()`; `sockets` are the listening sockets."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.sockets: list[socket.socket] = []
        self.activated = False  # the first socket is systemd's: never unlink or rebind it
        self._state_fd = -1
        self._lock_fd = -1
        self._inodes: dict[Path, int | None] = {}

    def acquire(self) -> socket.socket:
        """Take everything; return the socket to serve on. AgentctxError subclasses
        (one line each) when something is not ours to take."""
        ensure_private_dir(self.layout.state)
        try:
            self._state_fd = os.open(self.layout.state, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoreError(f"{self.layout.state}: cannot open: {exc.strerror}") from None
        if not _flock(self._state_fd):  # a directory can be flocked, even read-only
            raise AlreadyRunning(
                f"another agentctx-sidecar is using the state dir {self.layout.state}"
            )
        sock = activated_socket()
        if sock is not None:
            log.info("using the socket passed by systemd (socket activation)")
            self.activated = True
            self.sockets.append(sock)
        new = self._claim_runtime()
        return sock if sock is not None else new

    def _claim_runtime(self) -> socket.socket:
        """The runtime dir, its lock (with our pid) and, unless systemd passed one, the
        socket (returned: a listening socket at the path, ours or systemd's)."""
        runtime = self.layout.runtime
        ensure_private_dir(runtime)
        lock = self.layout.lock
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"{lock}: cannot open the lock file: {exc.strerror}") from None
        if not _flock(fd):
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another agentctx-sidecar (pid {other}) is running on {runtime}")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"{lock}: cannot write our pid: {exc.strerror}") from None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
        self._lock_fd = fd
        if self.activated and self.sockets:
            sock = self.sockets[0]
        else:
            sock = bind_socket(self.layout.socket)
            self.sockets.append(sock)
        self._inodes = {p: _inode(p) for p in (runtime, lock, self.layout.socket)}
        return sock

    def lost(self) -> list[Path]:
        """Which of the runtime dir, the lock and the socket are gone or replaced."""
        return [p for p, ino in self._inodes.items() if ino is None or _inode(p) != ino]

    def reclaim(self) -> socket.socket | None:
        """Put back the runtime dir, the lock and our socket; return a new listening
        socket to serve on too (None when only the lock had to be replaced)."""
        before = len(self.sockets)
        if self.activated and self.layout.socket in self.lost():
            self.activated = False  # systemd's path is gone: bind our own beside it
        self._claim_runtime()
        return self.sockets[-1] if len(self.sockets) > before else None

    def release(self) -> None:
        ours = not self.activated and self._inodes.get(self.layout.socket)
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        if ours and _inode(self.layout.socket) == ours:
            with contextlib.suppress(OSError):
                os.unlink(self.layout.socket)
        for fd in (self._lock_fd, self._state_fd):
            if fd >= 0:
                os.close(fd)  # releases the flock
        self._lock_fd = self._state_fd = -1

    def __enter__(self) -> socket.socket:
        try:
            return self.acquire()
        except BaseException:
            self.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self.release()
