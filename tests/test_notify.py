"""sd_notify and socket activation, against datagram/stream sockets of our own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sidecar.notify import Notifier, activated_socket


def receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    return sock


def test_notify_to_a_path(tmp_path: Path) -> None:
    rx = receiver(tmp_path / "notify")
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert n.enabled
    n.ready("4 drives")
    msg = rx.recv(4096).decode().splitlines()
    assert msg[0] == "READY=1" and "STATUS=4 drives" in msg
    assert f"MAINPID={os.getpid()}" in msg
    for call, expected in (
        (n.watchdog, "WATCHDOG=1"),
        (n.stopping, "STOPPING=1"),
        (n.reloading, "RELOADING=1"),
    ):
        call()
        assert rx.recv(4096).decode().splitlines()[0] == expected
    n.status("busy")
    assert rx.recv(4096) == b"STATUS=busy"


def test_notify_to_an_abstract_address() -> None:
    name = f"agentctx-test-{os.getpid()}"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(b"\0" + name.encode())
    rx.settimeout(2)
    Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
    assert rx.recv(100) == b"WATCHDOG=1"


def test_no_manager_is_a_no_op(tmp_path: Path) -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")  # nothing to send to, nothing raised
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    gone.ready("x")  # a send that fails is logged, not raised


def test_watchdog_interval_is_half_and_only_for_us() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    ours = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(ours).watchdog_interval == 2.0
    other = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
    assert Notifier(other).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval is None


def test_not_activated_without_matching_pid() -> None:
    assert activated_socket({}) is None
    assert activated_socket({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) is None


def test_activated_socket_in_a_child(tmp_path: Path) -> None:
    """Pass a listening socket as fd 3 the way systemd does, and accept on it."""
    path = tmp_path / "act.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    child = textwrap.dedent("""
        import os, sys
        os.dup2(int(os.environ["SRC_FD"]), 3)  # where systemd puts the first socket
        os.environ["LISTEN_PID"] = str(os.getpid())
        from sidecar.notify import activated_socket
        sock = activated_socket()
        assert "LISTEN_FDS" not in os.environ
        sock.setblocking(True)
        conn, _ = sock.accept()
        conn.sendall(b"hi from fd 3")
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        pass_fds=(listener.fileno(),),
        env={**os.environ, "LISTEN_FDS": "1", "SRC_FD": str(listener.fileno())},
    )
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(10)
        client.connect(str(path))
        assert client.recv(100) == b"hi from fd 3"
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_activated_fd_must_be_a_unix_stream_socket(tmp_path: Path) -> None:
    child = textwrap.dedent("""
        import os
        os.dup2(int(os.environ["SRC_FD"]), 3)
        os.environ["LISTEN_PID"] = str(os.getpid())
        from sidecar.notify import activated_socket
        try:
            activated_socket()
        except OSError as exc:
            print("refused:", exc)
    """)
    f = open(tmp_path / "plain", "w")  # noqa: SIM115
    out = subprocess.run(
        [sys.executable, "-c", child],
        pass_fds=(f.fileno(),),
        env={**os.environ, "LISTEN_FDS": "1", "SRC_FD": str(f.fileno())},
        capture_output=True,
        text=True,
        timeout=30,
    )
    f.close()
    assert "refused: LISTEN_FDS: fd 3 is not a socket" in out.stdout


@pytest.mark.parametrize("name", ["agentctx-sidecar.service", "agentctx-sidecar.socket"])
def test_repo_units_are_the_packaged_ones(name: str) -> None:
    repo = Path(__file__).resolve().parent.parent
    assert (repo / "systemd" / name).read_text() == (repo / "sidecar" / "units" / name).read_text()
