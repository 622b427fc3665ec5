"""Test helpers: a raw-bytes client, a subprocess daemon, config writing."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from agentctx._core.framing import FrameDecoder, encode_frame

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0
LINE_TIMEOUT = 30.0  # a line from a CLI process we started (its start on a loaded machine)

# an emergence drives.json as emergence writes it: extra keys, "thresholds" overrides
EMERGENCE_DRIVES = {
    "_comment": "exported from emergence",
    "version": "1.0",
    "drives": {
        "CARE": {
            "name": "CARE",
            "threshold": 25.0,
            "rate_per_hour": 2.0,
            "description": "Connection",
            "prompt": "Check in.",
            "category": "core",
            "created_by": "system",
            "created_at": "2026-02-09T18:39:19+00:00",
            "discovered_during": None,
            "activity_driven": False,
        },
        "REST": {
            "threshold": 30,
            "rate_per_hour": 0,
            "activity_driven": True,
            "thresholds": {"elevated": 0.6},
        },
        "WANDER": {
            "threshold": 20,
            "rate_per_hour": 1.0,
            "gated_until": "first_light",
            "min_interval_seconds": 43200,
            "aspects": ["a", "b"],
        },
    },
}


def frame(obj: dict[str, Any]) -> bytes:
    return encode_frame(json.dumps(obj).encode())


class RawClient:
    """A plain blocking socket speaking frames of dicts; nothing from the client library."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder()
        self.pending: list[dict[str, Any]] = []
        self._next_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(frame(obj))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame; raises TimeoutError, or EOFError when the daemon closed."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no frame") from None
            if not data:
                raise EOFError("connection closed")
            self.pending.extend(json.loads(p) for p in self.decoder.feed(data))
        return self.pending.pop(0)

    def recv_until(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read until a frame matches; return it and everything read before it."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if match(msg):
                return msg, seen
            seen.append(msg)

    def hello(self, subscribe: bool = True, name: str = "test") -> dict[str, Any]:
        """Say hello; return the welcome (and, when subscribed, leave the state queued)."""
        self.send({"type": "hello", "proto": 1, "client": name, "subscribe": subscribe})
        welcome = self.recv()
        assert welcome["type"] == "welcome", welcome
        return welcome

    def request(self, obj: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send a request with a fresh id; return the ack/error/pong/state answering it.

        Other frames received meanwhile (pushed states, events) stay queued."""
        rid = self.next_id()
        self.send({**obj, "id": rid})
        reply, seen = self.recv_until(
            lambda m: m.get("id") == rid and m["type"] in ("ack", "error", "pong", "state"),
            timeout,
        )
        self.pending[:0] = seen  # frames pushed meanwhile stay readable, in order
        return reply

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True once the daemon has closed this connection (frames before it are dropped)."""
        try:
            while True:
                self.recv(timeout)
        except EOFError:
            return True
        except (TimeoutError, ConnectionResetError):
            return False


def write_config(path: Path, drives: dict[str, dict[str, Any]], **sidecar: Any) -> Path:
    lines = []
    if sidecar:
        lines.append("[sidecar]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in sidecar.items()]
    for name, spec in drives.items():
        lines.append(f"[drives.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in spec.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class DaemonProcess:
    """`python -m sidecar run` as a real subprocess, with its own runtime/state dirs."""

    def __init__(
        self, env: dict[str, str], config: Path | None, log: Path, agent: str | None = None
    ) -> None:
        self.env = env
        self.config = config
        self.log = log
        # the agent whose dirs it uses: given on its command line, else the env's
        self.agent = agent or env.get("AGENTCTX_AGENT")
        # Another machine's name: the daemon runs in a UTS namespace of its own under it
        # (unshare(1), as root; see uts_namespaces_why_not)
        self.hostname: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def runtime(self) -> Path:
        base = Path(self.env["AGENTCTX_RUNTIME_DIR"])
        return base / self.agent if self.agent else base

    @property
    def state_dir(self) -> Path:
        base = Path(self.env["AGENTCTX_STATE_DIR"])
        return base / self.agent if self.agent else base

    @property
    def socket(self) -> Path:
        return self.runtime / "sidecar.sock"

    @property
    def snapshot(self) -> Path:
        return self.runtime / "drives-state.json"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(
        self, wait: bool = True, extra_args: list[str] | None = None, command: str = "run"
    ) -> DaemonProcess:
        """`run` (or *command*, e.g. `follow URL`) with *extra_args*."""
        args = [sys.executable, "-m", "sidecar", *command.split(), "--log-level", "debug"]
        if self.config is not None and command == "run":
            args += ["--config", str(self.config)]
        args += extra_args or []
        if self.hostname is not None:  # unshare and the exec: the daemon keeps this pid
            args = ["unshare", "--uts", sys.executable, "-c", _AS_HOST, self.hostname, *args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=REPO)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with RawClient(self.socket, timeout=1.0) as c:
                    c.hello(subscribe=False)
                    return
            except (OSError, EOFError, TimeoutError, AssertionError):
                time.sleep(0.02)
        raise RuntimeError(f"daemon not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def client(self, subscribe: bool = True) -> RawClient:
        c = RawClient(self.socket)
        c.hello(subscribe=subscribe)
        return c

    def read_snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.snapshot.read_bytes())
        return data


class AsyncRawClient:
    """The raw-bytes client for in-process tests (runs on the test's event loop)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.pending: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, path: Path, hello: bool = True, subscribe: bool = True) -> Any:
        import anyio

        c = cls(await anyio.connect_unix(str(path)))
        if hello:
            await c.send({"type": "hello", "proto": 1, "client": "async", "subscribe": subscribe})
            welcome = await c.recv()
            assert welcome["type"] == "welcome"
        return c

    async def send(self, obj: dict[str, Any]) -> None:
        await self.stream.send(frame(obj))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        import anyio

        with anyio.fail_after(within):
            while not self.pending:
                data = await self.stream.receive(65536)
                self.pending.extend(json.loads(p) for p in self.decoder.feed(data))
        return self.pending.pop(0)

    async def recv_until(
        self, match: Callable[[dict[str, Any]], bool], within: float = 5.0
    ) -> dict[str, Any]:
        import anyio

        with anyio.fail_after(within):
            while True:
                msg = await self.recv(within)
                if match(msg):
                    return msg

    async def aclose(self) -> None:
        await self.stream.aclose()


# Run as `python -c _AS_HOST NAME PROGRAM ARGS...` inside `unshare --uts`: take the
# hostname NAME in that namespace, then become PROGRAM.
_AS_HOST = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"
)


def uts_namespaces_why_not() -> str | None:
    """Why a daemon cannot run under another hostname here (None: it can)."""
    if os.geteuid() != 0:
        return "a hostname of its own needs a UTS namespace: run as root"
    if shutil.which("unshare") is None:
        return "unshare(1) (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--uts", sys.executable, "-c", _AS_HOST, "agentctx-probe", "/bin/uname", "-n"],
        capture_output=True,
        text=True,
    )
    if probe.stdout.strip() != "agentctx-probe":
        return f"unshare --uts does not work here: {probe.stderr.strip()[:200]}"
    return None


@contextmanager
def tmpfs(path: Path, size: str = "256k") -> Iterator[Path]:
    """A small tmpfs mounted on *path* (0700), for a real ENOSPC. Needs root."""
    if os.geteuid() != 0:
        import pytest

        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """*path* made read-only in place (a read-only bind mount over itself): every new
    open for writing fails with EROFS until the block ends. Needs root."""
    if os.geteuid() != 0:
        import pytest

        pytest.skip("a read-only bind mount needs root")
    subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of *directory* to the last byte; return the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    try:  # the last partial block
        while os.write(fd, b"\0"):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def run_module(
    module: str,
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` (agentctx or sidecar) as a user runs it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Lines:
    """A running process's output, line by line as it flushes them (read in a thread):
    a test waits for a line with a deadline instead of sleeping and hoping the process
    got that far."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def until(self, marker: str, timeout: float = LINE_TIMEOUT) -> list[str]:
        """The lines up to and including the first one with *marker*; AssertionError
        (with what came) when none comes within *timeout*."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while not got or marker not in got[-1]:
            try:
                got.append(self._lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no line with {marker!r} in {timeout} s: {got}") from None
        return got


# `python -m MODULE` with Ctrl-C as a terminal leaves it: a test suite started in the
# background (`.ci/run &`) hands its children SIGINT *ignored*, and Python then keeps
# ignoring it, as it should; a test that sends SIGINT means the key.
_RUN_INTERRUPTIBLE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
)


def start_module(module: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -m MODULE ARGS` left running (a `watch`, a `log --follow`), output piped;
    SIGINT stops it as Ctrl-C would."""
    return subprocess.Popen(
        [sys.executable, "-c", _RUN_INTERRUPTIBLE, module, *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
