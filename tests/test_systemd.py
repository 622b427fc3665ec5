"""The units under a real `systemd --user` manager that each test starts for itself.

The manager gets a private world (HOME and XDG_RUNTIME_DIR in a temp dir), so no
unit or socket outlives the test. /run/systemd/system (which makes tools believe
systemd booted the machine) is created only for the test's duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import REPO, RawClient

SYSTEMD = Path("/usr/lib/systemd/systemd")
MARKER = Path("/run/systemd/system")
UNIT = "agentctx-sidecar.service"
SOCKET_UNIT = "agentctx-sidecar.socket"


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class UserManager:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.runtime = root / "run"
        self.home.mkdir()
        self.runtime.mkdir(mode=0o700)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "LANG": "C.UTF-8",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.runtime / "agentctx" / "sidecar.sock"

    @property
    def snapshot(self) -> Path:
        return self.runtime / "agentctx" / "drives-state.json"

    def start(self) -> None:
        log = open(self.root / "manager.log", "wb")  # noqa: SIM115 - lives as long as the manager
        self.proc = subprocess.Popen(
            [str(SYSTEMD), "--user"], env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        wait_for(
            lambda: (
                self.systemctl("is-system-running", check=False).stdout.strip()
                in ("running", "degraded")
            ),
            20,
            "the user manager",
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.systemctl("stop", UNIT, SOCKET_UNIT, check=False)
        pid = self.proc.pid
        assert pid > 1  # never signal init or our own process group
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["systemctl", "--user", *args], env=self.env, text=True, capture_output=True, timeout=60
        )
        if check:
            assert result.returncode == 0, (args, result.stderr)
        return result

    def show(self, prop: str, unit: str = UNIT) -> str:
        return self.systemctl("show", "-p", prop, "--value", unit).stdout.strip()

    def main_pid(self) -> int:
        return int(self.show("MainPID") or 0)

    def sidecar(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sidecar", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=120,
            cwd=self.root,
        )

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.sidecar("install", *args)
        assert result.returncode == 0, result.stderr
        return result

    def wait_active(self, timeout: float = 20) -> int:
        wait_for(
            lambda: self.show("ActiveState") == "active" and self.main_pid() > 1,
            timeout,
            "the service to be active",
        )
        return self.main_pid()

    def drop_in(self, text: str) -> None:
        d = self.home / ".config" / "systemd" / "user" / f"{UNIT}.d"
        d.mkdir(parents=True, exist_ok=True)
        (d / "test.conf").write_text(text)
        self.systemctl("daemon-reload")

    def client(self, subscribe: bool = True) -> RawClient:
        c = RawClient(self.socket, timeout=15)
        c.hello(subscribe=subscribe)
        return c


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[UserManager]:
    if not SYSTEMD.exists() or shutil.which("systemctl") is None:
        pytest.skip("systemd is not installed on this machine")
    if not MARKER.exists() and os.geteuid() != 0:
        pytest.skip("needs root to create /run/systemd/system for a user manager")
    created = not MARKER.exists()
    if created:
        MARKER.mkdir(parents=True)
    # a short root: Unix socket paths are limited to 108 bytes
    root = Path(tempfile.mkdtemp(prefix="acx-", dir="/tmp"))
    mgr = UserManager(root)
    for key in (
        "AGENTCTX_RUNTIME_DIR",
        "AGENTCTX_STATE_DIR",
        "AGENTCTX_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", mgr.env["HOME"])
    monkeypatch.setenv("XDG_RUNTIME_DIR", mgr.env["XDG_RUNTIME_DIR"])
    try:
        mgr.start()
        yield mgr
    finally:
        mgr.stop()
        if created:
            MARKER.rmdir()
        shutil.rmtree(root, ignore_errors=True)


def test_install_active_with_status_then_uninstall(manager: UserManager) -> None:
    out = manager.install("--now").stdout
    assert "wrote" in out and "enabled" in out and "started" in out
    manager.wait_active()
    status = wait_for(
        lambda: "drives" in manager.show("StatusText") and manager.show("StatusText"),
        10,
        "a STATUS= text",
    )
    assert "seq" in str(status)
    unit = (manager.home / ".config/systemd/user" / UNIT).read_text()
    assert f"ExecStart={sys.executable} -m sidecar run" in unit
    with manager.client() as c:
        assert c.recv()["type"] == "state"
    again = manager.install("--now").stdout  # idempotent
    assert "unchanged" in again
    doctor = subprocess.run(
        [sys.executable, "-m", "agentctx", "doctor"],
        env=manager.env,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    assert f"✓ systemd: {UNIT} active" in doctor.stdout
    removed = manager.sidecar("uninstall")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert manager.show("ActiveState") in ("inactive", "failed")
    assert not (manager.home / ".config/systemd/user" / UNIT).exists()
    assert "nothing was installed" in manager.sidecar("uninstall").stdout


def test_units_verify(manager: UserManager) -> None:
    manager.install()
    units = manager.home / ".config/systemd/user"
    result = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(units / UNIT), str(units / SOCKET_UNIT)],
        env=manager.env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_kill9_restarts_and_clients_reconnect(manager: UserManager) -> None:
    import agentctx

    manager.install("--now")
    pid = manager.wait_active()
    with agentctx.Live() as live:
        first = wait_for(lambda: live.state, 15, "a first state")
        assert live.mode == "live"
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        new_pid = wait_for(lambda: (p := manager.main_pid()) not in (0, pid) and p, 10, "a restart")
        restart_s = time.monotonic() - t0
        later = wait_for(
            lambda: (
                (s := live.state) is not None
                and s.boot_id != first.boot_id
                and s.source == "socket"
                and s
            ),
            15,
            "the client back on the socket",
        )
        assert later.seq > first.seq  # seq continues across the restart
    assert new_pid != pid and restart_s < 5
    assert int(manager.show("NRestarts")) >= 1


def test_watchdog_restarts_a_hung_daemon(manager: UserManager) -> None:
    manager.drop_in("[Service]\nWatchdogSec=2\n")
    manager.install("--now")
    pid = manager.wait_active()
    time.sleep(3)  # longer than WatchdogSec: the pings keep it alive
    assert manager.main_pid() == pid
    os.kill(pid, signal.SIGSTOP)  # the loop hangs: no more pings
    try:
        new_pid = wait_for(
            lambda: (p := manager.main_pid()) not in (0, pid) and p, 20, "the watchdog restart"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert new_pid != pid
    with manager.client(subscribe=False) as c:
        assert c.request({"type": "ping"})["type"] == "pong"


def test_stop_keeps_a_valid_snapshot(manager: UserManager) -> None:
    manager.install("--now")
    manager.wait_active()
    with manager.client(subscribe=False) as c:
        seq = c.request({"type": "get"})["seq"]
    manager.systemctl("stop", UNIT)
    assert manager.show("ActiveState") == "inactive"
    data = json.loads(manager.snapshot.read_bytes())  # RuntimeDirectoryPreserve=yes
    assert data["seq"] >= seq and set(data["drives"]) >= {"CARE", "REST"}


def test_first_connect_starts_the_service(manager: UserManager) -> None:
    manager.install()  # written and enabled, nothing started
    manager.systemctl("start", SOCKET_UNIT)
    assert manager.show("ActiveState") == "inactive"
    with RawClient(manager.socket, timeout=20) as c:
        welcome = c.hello()
        assert welcome["type"] == "welcome"
        assert c.recv(timeout=10)["type"] == "state"
    assert manager.show("ActiveState") == "active"


def test_reload_applies_changed_config(manager: UserManager) -> None:
    manager.install("--now")
    pid = manager.wait_active()
    config = manager.home / ".config" / "agentctx" / "drives.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[drives.FOCUS]\nthreshold = 5\nrate_per_hour = 1.0\n")
    with manager.client() as c:
        manager.systemctl("reload", UNIT)
        state, _ = c.recv_until(
            lambda m: m["type"] == "state" and "FOCUS" in m["drives"], timeout=15
        )
    assert set(state["drives"]) == {"FOCUS"}
    assert manager.main_pid() == pid  # reloaded in place, not restarted
    assert manager.show("ActiveState") == "active"


def test_install_refuses_without_a_user_manager(tmp_path: Path) -> None:
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed on this machine")
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(run)}
    for command in ("install", "uninstall"):
        result = subprocess.run(
            [sys.executable, "-m", "sidecar", command],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no systemd user manager" in lines[0], result.stderr
    # a bad config file is what it says first: fixing the manager would not help
    bad = tmp_path / "bad.toml"
    bad.write_text("[drives.A]\nthreshold = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "install", "--config", str(bad)],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2 and "drives.A.threshold" in result.stderr, result.stderr
    assert not (tmp_path / ".config" / "systemd").exists()


def test_named_agents_run_as_instances_of_the_template(manager: UserManager) -> None:
    """`install --agent NAME`: the template units, instance NAME, files in agentctx/NAME/;
    a second name works from the template alone; `status --all` lists both."""
    out = manager.install("--agent", "ada", "--now").stdout
    assert "agentctx-sidecar@ada" in out
    units = manager.home / ".config/systemd/user"
    verify = subprocess.run(
        ["systemd-analyze", "--user", "verify", "agentctx-sidecar@ada.service"],
        env=manager.env,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=units,
    )
    assert verify.returncode == 0, verify.stderr
    wait_for(
        lambda: manager.show("ActiveState", "agentctx-sidecar@ada.service") == "active",
        20,
        "instance ada",
    )
    manager.systemctl("start", "agentctx-sidecar@bea.socket")  # no install: the template
    with RawClient(manager.runtime / "agentctx" / "bea" / "sidecar.sock", timeout=20) as c:
        c.hello()
        assert c.recv(timeout=15)["type"] == "state"
    listed = subprocess.run(
        [sys.executable, "-m", "agentctx", "status", "--all", "--json"],
        env=manager.env,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    agents = {r["agent"]: r["source"] for r in json.loads(listed.stdout)}
    assert agents == {"ada": "socket", "bea": "socket"}
    manager.systemctl("stop", "agentctx-sidecar@bea.service", "agentctx-sidecar@bea.socket")
    removed = manager.sidecar("uninstall", "--agent", "ada")
    assert removed.returncode == 0, removed.stderr
    assert not (units / "agentctx-sidecar@.service").exists()


def test_a_follower_runs_as_a_unit(manager: UserManager, tmp_path: Path) -> None:
    """`install --follow URL --agent NAME` under the unit's hardening (TCP allowed by
    its drop-in): it serves the home's state, from a sidecar on "another host"."""
    pytest.importorskip("nats", reason="nats-py is not installed")
    from nats_support import NatsServer, nats_binary
    from support import DaemonProcess

    server = NatsServer(nats_binary(), tmp_path, "n1").start()
    other = tmp_path / "other"
    for d in ("run", "state"):
        (other / d).mkdir(parents=True, mode=0o700)
    env = {
        **os.environ,
        "AGENTCTX_RUNTIME_DIR": str(other / "run"),
        "AGENTCTX_STATE_DIR": str(other / "state"),
    }
    home = DaemonProcess(env, None, tmp_path / "home.log", agent="ada")
    try:
        home.start(extra_args=["--agent", "ada", "--nats", server.url])
        manager.install("--agent", "ada", "--follow", server.url, "--now")
        drop_in = manager.home / ".config/systemd/user/agentctx-sidecar@ada.service.d/install.conf"
        assert f"follow {server.url}" in drop_in.read_text()
        sock = manager.runtime / "agentctx" / "ada" / "sidecar.sock"
        with RawClient(sock, timeout=20) as c:
            c.hello()
            state = c.recv(timeout=15)
        assert state["type"] == "state" and state["origin"] and not state.get("stale")
        assert manager.show("ActiveState", "agentctx-sidecar@ada.service") == "active"
    finally:
        home.stop()
        server.kill()
