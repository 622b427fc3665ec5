"""Who owns the files: never two daemons on one state dir, and a runtime dir removed
under a running daemon (logind at logout, tmpfiles) is put back, losing nothing."""

from __future__ import annotations

import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from conftest import BUCKET
from support import DaemonProcess

import agentctx
from agentctx._core.protocol import Bump
from agentctx._core.spool import spool_request

Factory = Callable[..., DaemonProcess]


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answers(d: DaemonProcess) -> bool:
    try:
        with d.client(subscribe=False) as c:
            return c.request({"type": "ping"})["type"] == "pong"
    except (OSError, EOFError, TimeoutError):
        return False


def test_runtime_dir_removed_is_put_back_and_a_second_daemon_refused(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    a = make_daemon({"B": BUCKET}, tick_interval=0.1)
    with a.client(subscribe=False) as c:
        ack = c.request({"type": "bump", "request_id": uuid.uuid4().hex, "drive": "B", "amount": 3})
        assert ack["type"] == "ack"
        seq_before = c.request({"type": "get"})["seq"]
    shutil.rmtree(dirs["runtime"])  # what logind does at logout
    # a second daemon on the same dirs now finds no socket and no lock: the state dir
    # lock still says no
    b = make_daemon({"B": BUCKET}, start=False)
    b.start(wait=False)
    assert b.proc is not None and b.proc.wait(15) == 1
    assert "another agentctx-sidecar is using the state dir" in b.log_text()
    # the first one puts its dir, lock and socket back, and the snapshot
    wait_for(lambda: answers(a))
    wait_for(lambda: a.snapshot.exists())
    assert stat.S_IMODE(os.stat(dirs["runtime"]).st_mode) == 0o700
    assert a.proc is not None and a.proc.poll() is None
    state = agentctx.read()
    assert state.source == "socket" and state.seq > seq_before  # seq never went back
    assert state.drives["B"]["pressure"] == 3.0  # the acked bump survived
    assert int((dirs["runtime"] / "sidecar.lock").read_text()) == a.pid
    assert "vanished under the running daemon" in a.log_text()


def test_client_made_dirs_are_private(env: dict[str, str], dirs: dict[str, Path]) -> None:
    """A request spooled while no daemon ever ran creates the state dir 0700, so the
    daemon that starts later accepts it."""
    shutil.rmtree(dirs["state"])
    deep = dirs["root"] / "fresh" / "state"
    os.environ["AGENTCTX_STATE_DIR"] = str(deep)
    spool_request(Bump(id=1, request_id="x", drive="B", amount=1.0))
    for path in (deep.parent, deep, deep / "spool"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path


def test_spool_dir_recreated_under_the_daemon_is_still_watched(
    make_daemon: Factory, dirs: dict[str, Path]
) -> None:
    make_daemon({"B": BUCKET}, tick_interval=3600)
    spool = dirs["state"] / "spool"
    wait_for(spool.exists)
    shutil.rmtree(spool)
    time.sleep(1.5)  # the watcher notices and watches the new one
    spool_request(Bump(id=1, request_id="after", drive="B", amount=4.0))
    wait_for(lambda: agentctx.read().drives["B"]["pressure"] == 4.0, timeout=10)
