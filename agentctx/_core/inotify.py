"""inotify on one directory, as a file descriptor to wait on: no thread, no polling.

Both followers of the snapshot file (`subscribe()` on an event loop, `follow()` in a
blocking thread) wait on this descriptor next to their others (a socket, a wake-up
pipe), so a change is seen at once and closing never waits for a watcher thread.
The *directory* is watched, never the file: an atomic rename replaces the file's
inode, and a watch on the file itself dies with the first one. A write shows as
IN_MOVED_TO (rename into place, as the daemon writes) or IN_CLOSE_WRITE (a file
written in place, as a person might): either is a whole file, so no debounce.

The directory itself may go away or be replaced (a runtime dir removed at logout):
the watch then reports itself gone, and the caller arms a new one on the path.

Linux only, through ctypes (libc's three inotify calls); `available()` is False
elsewhere and callers fall back to polling the file's (inode, mtime).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Final

from agentctx._core.errors import StoreError

__all__ = ["DirWatch", "available"]

IN_CLOSE_WRITE: Final = 0x00000008
IN_MOVED_TO: Final = 0x00000080
IN_DELETE_SELF: Final = 0x00000400
IN_MOVE_SELF: Final = 0x00000800
IN_Q_OVERFLOW: Final = 0x00004000
IN_IGNORED: Final = 0x00008000
IN_ONLYDIR: Final = 0x01000000
_WATCH_MASK: Final = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
_GONE: Final = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
_READ_SIZE: Final = 1 << 14

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _init1 = _libc.inotify_init1
    _add_watch = _libc.inotify_add_watch
    _add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    _rm_watch = _libc.inotify_rm_watch
    _AVAILABLE = True
except (OSError, AttributeError):  # not Linux (or no libc symbols): poll instead
    _AVAILABLE = False


def available() -> bool:
    return _AVAILABLE


class DirWatch:
    """Changes to files in one directory. `fileno()` turns readable when there are
    some; `changed()` drains them. Not thread-safe: one owner."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if not _AVAILABLE:
            raise StoreError("inotify is not available on this system")
        self.directory = os.fsencode(directory)
        fd = _init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise StoreError(f"inotify: {os.strerror(err)}")
        self._fd: int = fd
        self._inode: int | None = None  # the watched directory's inode, None: unarmed
        self._wd = -1

    def fileno(self) -> int:
        return self._fd

    @property
    def armed(self) -> bool:
        return self._inode is not None

    def arm(self) -> bool:
        """Watch the directory now at the path; False when there is none (yet). Once
        this returns True, every later write in it is reported."""
        try:
            inode = os.stat(self.directory).st_ino
        except OSError:
            self._inode = None
            return False
        self._disarm()
        wd = _add_watch(self._fd, self.directory, _WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise StoreError(f"inotify on {os.fsdecode(self.directory)}: {os.strerror(err)}")
        self._inode, self._wd = inode, wd
        return True

    def _disarm(self) -> None:
        if self._wd >= 0:
            _rm_watch(self._fd, self._wd)  # EINVAL if the kernel dropped it already: fine
        self._inode, self._wd = None, -1

    def verify(self) -> bool:
        """Disarm if the path no longer names the watched directory (a cheap stat, for
        a periodic check: a directory renamed over ours is not always reported);
        whether it is still armed."""
        try:
            same = os.stat(self.directory).st_ino == self._inode
        except OSError:
            same = False
        if not same:
            self._disarm()
        return same

    def changed(self) -> set[str] | None:
        """The names written since the last call (empty if none). None when the
        caller should re-read whatever it follows: events were lost (a queue
        overflow), or the watch is gone (the directory was removed or moved; `armed`
        is then False: arm again)."""
        names: set[str] = set()
        lost = False
        while True:
            try:
                buf = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, size = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size : pos + _EVENT.size + size].rstrip(b"\0")
                pos += _EVENT.size + size
                if mask & IN_Q_OVERFLOW:
                    lost = True
                elif wd != self._wd:  # from a watch replaced since
                    continue
                elif mask & _GONE:
                    self._disarm()
                    lost = True
                elif name:
                    names.add(os.fsdecode(name))
        return None if lost else names

    def close(self) -> None:
        self._inode, self._wd = None, -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
