"""Local security: private dirs, no symlink following, peer credentials both ways."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET
from support import DaemonProcess

import agentctx
from agentctx._core.errors import DaemonUnavailable, UnsafePath
from agentctx._core.files import ensure_private_dir
from agentctx.oneshot import read_socket
from sidecar.claim import bind_socket

Factory = Callable[..., DaemonProcess]
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")


def refused(d: DaemonProcess) -> str:
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 1
    return d.log_text()


def test_runtime_dir_must_be_0700(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    dirs["runtime"].chmod(0o750)
    assert "must be 0700" in refused(make_daemon({"B": BUCKET}, start=False))


def test_runtime_dir_must_not_be_a_symlink(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    real = dirs["root"] / "elsewhere"
    real.mkdir(mode=0o700)
    dirs["runtime"].rmdir()
    dirs["runtime"].symlink_to(real)
    assert "is a symlink" in refused(make_daemon({"B": BUCKET}, start=False))


@needs_root
def test_runtime_dir_must_be_ours(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    os.chown(dirs["runtime"], NOBODY, NOBODY)
    assert "owned by uid 65534" in refused(make_daemon({"B": BUCKET}, start=False))


def test_socket_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        sock = bind_socket(tmp_path / "s.sock")
        assert os.umask(0) == 0  # bind_socket restored our umask
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "s.sock").st_mode) == 0o600
    sock.close()


def test_not_a_socket_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "s.sock").write_text("precious")
    with pytest.raises(UnsafePath, match="not a socket"):
        bind_socket(tmp_path / "s.sock")
    assert (tmp_path / "s.sock").read_text() == "precious"


def test_private_dir_checks(tmp_path: Path) -> None:
    ensure_private_dir(tmp_path / "new")
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafePath, match="not a directory"):
        ensure_private_dir(tmp_path / "file", create=False)


def test_planted_symlinks_are_never_followed(make_daemon: Factory, dirs: dict[str, Path]) -> None:
    victim = dirs["root"] / "victim"
    victim.write_text("do not touch")
    d = make_daemon({"B": BUCKET}, start=False, tick_interval=0.1)
    (d.state_dir / "state.json").symlink_to(victim)
    d.snapshot.symlink_to(victim)
    spool = d.state_dir / "spool"
    spool.mkdir()
    (spool / "00000000000000000001-planted.json").symlink_to(victim)
    d.start()
    agentctx.bump("B", 1.0)
    time.sleep(0.3)
    assert victim.read_text() == "do not touch"
    assert not (d.state_dir / "state.json").is_symlink()
    assert not d.snapshot.is_symlink()
    assert "cannot open" in d.log_text()  # the planted durable link was refused, not read
    assert (spool / "rejected" / "00000000000000000001-planted.json").is_symlink()


def as_nobody(fn: Callable[[], str]) -> str:
    """Run *fn* in a forked child that has dropped to uid/gid 65534; return what it
    returned. (Forked, not exec'd: the interpreter may live where 65534 cannot read.)"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(w, fn().encode())
        except BaseException as exc:  # report anything, then leave without cleanup
            os.write(w, f"child failed: {exc!r}".encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@needs_root
def test_peer_of_another_uid_is_closed_before_a_byte(
    make_daemon: Factory, env: dict[str, str]
) -> None:
    # a runtime dir whose parents uid 65534 can traverse (pytest's tmp dirs are 0700)
    outer = Path(tempfile.mkdtemp(prefix="acx-sec-", dir="/tmp"))
    runtime = outer / "run"
    runtime.mkdir(mode=0o700)
    env["AGENTCTX_RUNTIME_DIR"] = str(runtime)
    d = make_daemon({"B": BUCKET}, tick_interval=0.05)

    def intruder() -> str:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(str(d.socket))
        body = json.dumps({"type": "hello", "proto": 1}).encode()
        with contextlib.suppress(OSError):
            s.sendall(struct.pack(">I", len(body)) + body)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(4096):
                data += chunk
        return f"received {len(data)} uid {os.getuid()}"

    # open the door on purpose: only SO_PEERCRED stands between uid 65534 and the daemon
    for p in (outer, runtime):
        p.chmod(0o711)
    d.socket.chmod(0o666)
    try:
        out = as_nobody(intruder)
    finally:
        runtime.chmod(0o700)
        d.socket.chmod(0o600)
    assert out == "received 0 uid 65534"
    assert "refused a connection from uid 65534" in d.log_text()
    with d.client(subscribe=False) as c:  # we still get in
        assert c.request({"type": "ping"})["type"] == "pong"
    d.stop()
    shutil.rmtree(outer, ignore_errors=True)


@needs_root
def test_client_refuses_a_server_of_another_uid() -> None:
    outer = Path(tempfile.mkdtemp(prefix="acx-sec-", dir="/tmp"))
    outer.chmod(0o777)
    path = outer / "evil.sock"
    ready_r, ready_w = os.pipe()

    def evil_server() -> str:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        os.chmod(path, 0o666)
        s.listen(4)
        os.write(ready_w, b"!")
        c, _ = s.accept()
        body = json.dumps({"type": "state", "id": 1, "seq": 99, "drives": {"EVIL": {}}})
        with contextlib.suppress(OSError):
            c.sendall(struct.pack(">I", len(body)) + body.encode())
        return "served"

    import threading

    result: list[BaseException] = []

    def client() -> None:
        os.read(ready_r, 1)
        try:
            read_socket(2.0, socket_path=path)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=client)
    t.start()
    assert as_nobody(evil_server) == "served"
    t.join(10)
    shutil.rmtree(outer, ignore_errors=True)
    assert len(result) == 1 and isinstance(result[0], DaemonUnavailable)
    assert "not trusted" in str(result[0])


def test_socket_file_of_a_dead_daemon_is_not_trusted_blindly(tmp_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()  # a stale socket file: connect is refused
    with pytest.raises(DaemonUnavailable):
        read_socket(0.2, socket_path=tmp_path / "dead.sock")
