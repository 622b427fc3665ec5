"""agentctx._core.inotify: a directory watch as a descriptor (the followers' fallback)."""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from agentctx._core import inotify

pytestmark = pytest.mark.skipif(not inotify.available(), reason="no inotify here")


def readable(watch: inotify.DirWatch, timeout: float = 2.0) -> bool:
    return bool(select.select([watch.fileno()], [], [], timeout)[0])


def test_renames_and_writes_are_reported_by_name(tmp_path: Path) -> None:
    watch = inotify.DirWatch(tmp_path)
    try:
        assert watch.arm() and watch.armed
        assert not readable(watch, 0.05)
        (tmp_path / "x.tmp").write_text("1")
        os.replace(tmp_path / "x.tmp", tmp_path / "x")  # as the daemon writes
        assert readable(watch)
        assert watch.changed() == {"x.tmp", "x"}
        (tmp_path / "y").write_text("2")  # written in place, closed
        assert readable(watch)
        assert watch.changed() == {"y"}
        assert watch.changed() == set()  # drained
    finally:
        watch.close()


def test_a_missing_or_removed_directory_is_said_and_can_be_watched_again(
    tmp_path: Path,
) -> None:
    d = tmp_path / "run"
    watch = inotify.DirWatch(d)
    try:
        assert not watch.arm()  # not there yet
        d.mkdir()
        assert watch.arm()
        d.rmdir()
        assert readable(watch)
        assert watch.changed() is None and not watch.armed  # gone: re-read, re-arm
        d.mkdir()
        assert watch.arm()
        (d / "z").write_text("3")
        assert readable(watch)
        assert watch.changed() == {"z"}
    finally:
        watch.close()


def test_a_directory_replaced_behind_the_watch_is_noticed(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    watch = inotify.DirWatch(d)
    try:
        assert watch.arm() and watch.verify()
        os.rename(d, tmp_path / "old")  # moved away: the watch would follow it, not the path
        d.mkdir()
        assert not watch.verify() and not watch.armed  # the periodic check says so
        assert watch.changed() == set()  # the old watch's events are dropped
        assert watch.arm() and watch.verify()
        (tmp_path / "old" / "stale").write_text("0")  # the old directory: not reported
        (d / "fresh").write_text("1")
        assert readable(watch)
        assert watch.changed() == {"fresh"}
    finally:
        watch.close()
