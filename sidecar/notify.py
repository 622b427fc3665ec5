"""systemd integration: sd_notify and socket activation, both no-ops outside systemd.

sd_notify is one datagram to `$NOTIFY_SOCKET` (a path, or an abstract address
spelled with a leading "@"). The daemon sends READY=1 once its socket listens and
the first snapshot is written, STATUS= lines, WATCHDOG=1 from the tick loop (so a
hung loop stops pinging and gets restarted), RELOADING=1 around SIGHUP and
STOPPING=1. A failed send is logged once and otherwise ignored: the daemon works
the same without a manager.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import MutableMapping
from typing import Final

__all__ = ["LISTEN_FDS_START", "Notifier", "activated_socket"]

log = logging.getLogger(__name__)

LISTEN_FDS_START: Final = 3  # SD_LISTEN_FDS_START


class Notifier:
    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        self._warned = False
        target = env.get("NOTIFY_SOCKET", "")
        if target.startswith("@"):
            self._address = b"\0" + target[1:].encode()  # abstract namespace
        elif target.startswith("/"):
            self._address = target
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        # Only the process systemd meant (not a child that inherited the variables).
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = (
            int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and ours else None
        )

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                self._warned = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", "STATUS=reloading config")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")


def activated_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """The listening Unix socket systemd passed us (LISTEN_FDS/LISTEN_PID), else None.

    The variables are removed so no child inherits them; the socket is never
    unlinked or rebound by us (systemd owns it)."""
    env = os.environ if environ is None else environ
    pid, fds = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    if pid != str(os.getpid()) or not fds.isdigit() or int(fds) < 1:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    fd = LISTEN_FDS_START
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        raise OSError(f"LISTEN_FDS: fd {fd} is not a socket")
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise OSError(f"LISTEN_FDS: fd {fd} is not a Unix stream socket")
    os.set_inheritable(fd, False)
    sock.setblocking(False)
    return sock
