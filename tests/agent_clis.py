"""The real agent CLIs for the end-to-end tests: pinned npm packages installed once
into a cache outside the repository, and one turn of each, run against the stub model.

Every agent runs with a private HOME (and TMPDIR, CODEX_HOME) under the test's
temp dir, the env and settings that keep it offline and non-interactive, and stdin
on /dev/null (Codex and Gemini CLI would add piped stdin to the prompt). Where
each agent puts a hook's context in its model request was measured on these exact
versions; `Agent.blocks()` reads it from there and nowhere else.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, ClassVar, Final

CACHE: Final = Path(
    os.environ.get("AGENTCTX_TEST_CACHE") or Path.home() / ".cache" / "agentctx-tests"
)
PREFIX: Final = CACHE / "npm"
BIN: Final = PREFIX / "node_modules" / ".bin"
PACKAGES: Final = {
    "@anthropic-ai/claude-code": "2.1.332",  # a native binary; its npm engines>=22 is moot
    "@openai/codex": "0.169.0",
    "@google/gemini-cli": "0.61.0",
}
BINARIES: Final = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex",
                   "gemini": "@google/gemini-cli"}  # fmt: skip
NPM_TIMEOUT: Final = 900.0
PING_TIMEOUT: Final = 60.0
VERSION_TIMEOUT: Final = 60.0
TURN_TIMEOUT: Final = 120.0


def _installed_version(package: str) -> str | None:
    try:
        return str(
            json.loads((PREFIX / "node_modules" / package / "package.json").read_text())["version"]
        )
    except (OSError, ValueError, KeyError):
        return None


def _run(argv: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _registry_unreachable(npm: str) -> str | None:
    """Why npm cannot reach its registry, or None when it can."""
    try:  # no retries: a refused or unresolvable registry answers at once
        ping = _run([npm, "ping", "--fetch-retries=0"], PING_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"no answer in {PING_TIMEOUT:g} s"
    if ping.returncode != 0:
        errors = [ln for ln in ping.stderr.splitlines() if "FetchError" in ln or " code " in ln]
        return (errors or ["npm ping failed"])[-1].removeprefix("npm error ")
    return None


def install() -> str | None:
    """Install the pinned CLIs if they are not there yet. Returns a reason to skip when
    npm cannot reach its registry (and only then); raises RuntimeError on any other failure."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: the agent CLI tests need Node >= 20 with npm")
    PREFIX.mkdir(parents=True, exist_ok=True)
    with (CACHE / "npm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs must not npm install at once
        missing = [f"{p}@{v}" for p, v in PACKAGES.items() if _installed_version(p) != v]
        if missing:
            offline = _registry_unreachable(npm)
            if offline is not None:
                return f"npm cannot reach its registry ({offline}): agent CLI tests skipped"
            result = _run([npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund",
                           "--loglevel=error", *missing], NPM_TIMEOUT)  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"npm install {' '.join(missing)} failed:\n{result.stderr}")
        home = PREFIX / "version-check-home"
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
               "GEMINI_CLI_NO_RELAUNCH": "true"}  # fmt: skip
        home.mkdir(exist_ok=True)
        claude = _run([str(BIN / "claude"), "--version"], VERSION_TIMEOUT, env=env)
        if claude.returncode != 0:
            # claude-code's postinstall links its native binary; npm may not have run it
            package = PREFIX / "node_modules" / BINARIES["claude"]
            _run(["node", "install.cjs"], NPM_TIMEOUT, cwd=package, check=True)
        for name, package in BINARIES.items():
            out = _run([str(BIN / name), "--version"], VERSION_TIMEOUT, env=env)
            if PACKAGES[package] not in out.stdout:
                raise RuntimeError(f"{name} --version: {out.stdout.strip()} {out.stderr.strip()}")
    return None


def _texts(content: Any) -> list[str]:
    """The text of a message's content: a string, or a list of {text} parts."""
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content or [] if isinstance(p, dict) and "text" in p]


class Agent:
    """One agent CLI in a private home, talking to the stub at *url*."""

    name: ClassVar[str]
    request_path: ClassVar[str]  # the URL path part of a turn's main model request

    def __init__(self, root: Path, url: str, agentctx_env: dict[str, str]) -> None:
        self.home = root / "home"
        self.project = root / "project"
        self.tmp = root / "tmp"
        for d in (self.home, self.project, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.session: str | None = None
        self.env = {
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",  # no venv: the hook path is absolute
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),  # Claude Code keeps sockets and locks under TMPDIR
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            **{k: v for k, v in agentctx_env.items() if k.startswith("AGENTCTX_")},
            **self.agent_env(),
        }

    def agent_env(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def settings(self) -> Path:
        """The file `agentctx hooks install` writes into."""
        raise NotImplementedError

    def preseed(self) -> None:
        """What a user already has: the agent's own setup plus a hook of their own."""
        raise NotImplementedError

    def argv(self, prompt: str) -> list[str]:
        raise NotImplementedError

    def blocks(self, body: dict[str, Any]) -> list[str]:
        """The hook contexts this turn's request carries, from where this agent puts them."""
        raise NotImplementedError

    def turn(self, prompt: str) -> subprocess.CompletedProcess[str]:
        """One non-interactive turn, resuming the session after the first one."""
        result = _run(self.argv(prompt), TURN_TIMEOUT, cwd=self.project, env=self.env,
                      stdin=subprocess.DEVNULL)  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"{self.name} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        self.remember_session(result.stdout)
        return result

    def remember_session(self, stdout: str) -> None:
        pass

    def user_hook(self) -> dict[str, Any]:
        return {"hooks": [{"type": "command", "command": "true"}]}


class Claude(Agent):
    name = "claude"
    request_path = "/v1/messages"

    def agent_env(self) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-stub",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no telemetry, update checks
            "DISABLE_AUTOUPDATER": "1",
        }

    @property
    def settings(self) -> Path:
        return self.home / ".claude" / "settings.json"

    def preseed(self) -> None:
        self.settings.parent.mkdir()
        seeded = {
            "cleanupPeriodDays": 30,
            "permissions": {"allow": ["Bash(ls:*)"]},
            "hooks": {"UserPromptSubmit": [self.user_hook()], "Stop": [self.user_hook()]},
        }
        self.settings.write_text(json.dumps(seeded, indent=4))

    def argv(self, prompt: str) -> list[str]:
        resume = ["--resume", self.session] if self.session else []
        return [str(BIN / "claude"), "-p", prompt, "--output-format", "json", *resume]

    def remember_session(self, stdout: str) -> None:
        self.session = json.loads(stdout)["session_id"]

    def blocks(self, body: dict[str, Any]) -> list[str]:
        # Claude Code sends hook context as a role "system" message after the turn's
        # user message, each prefixed "<Event> hook additional context: ".
        messages = body["messages"]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        return [
            t
            for m in messages[last_user + 1 :]
            if m["role"] == "system"
            for t in _texts(m["content"])
        ]


class Codex(Agent):
    name = "codex"
    request_path = "/v1/responses"

    # CODEX_HOME through a symlink, as a dotfiles setup has it: Codex keys its hook
    # trust by the canonical path, so this is the case that proves the trust entries

    def agent_env(self) -> dict[str, str]:
        return {"CODEX_HOME": str(self.home / "codex-link"), "STUB_API_KEY": "sk-stub"}

    @property
    def settings(self) -> Path:
        return self.home / "codex-link" / "hooks.json"

    @property
    def config(self) -> Path:
        return self.home / "codex-link" / "config.toml"

    def preseed(self) -> None:
        (self.home / ".codex").mkdir()
        (self.home / "codex-link").symlink_to(self.home / ".codex")
        self.config.write_text(
            'model = "stub-model"\nmodel_provider = "stub"\n'
            "check_for_update_on_startup = false\n\n"
            "[analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n"
            f'[model_providers.stub]\nname = "stub"\nbase_url = "{self.url}/v1"\n'
            'wire_api = "responses"\nenv_key = "STUB_API_KEY"\n'
        )
        seeded = {"hooks": {"UserPromptSubmit": [self.user_hook()]}}
        self.settings.write_text(json.dumps(seeded, indent=2))

    def argv(self, prompt: str) -> list[str]:
        # No --dangerously-bypass-hook-trust: the trust `hooks install` records must do.
        resume = ["resume", self.session] if self.session else []
        return [str(BIN / "codex"), "exec", "--skip-git-repo-check", "--json", *resume, prompt]

    def remember_session(self, stdout: str) -> None:
        for line in stdout.splitlines():
            event = json.loads(line)
            if event.get("type") == "thread.started":
                self.session = event["thread_id"]

    def blocks(self, body: dict[str, Any]) -> list[str]:
        # Codex sends each hook context as its own role "developer" message, the text
        # exactly the additionalContext; this turn's items follow the last assistant one.
        items = [i for i in body["input"] if i.get("type") == "message"]
        answers = [n for n, i in enumerate(items) if i["role"] == "assistant"]
        turn = items[answers[-1] + 1 :] if answers else items
        return [t for i in turn if i["role"] == "developer" for t in _texts(i["content"])]


class Gemini(Agent):
    name = "gemini"
    request_path = ":streamGenerateContent"
    model: ClassVar[str] = "gemini-2.5-flash"  # named, so no model-router side call
    wrapper: ClassVar[tuple[str, str]] = ("<hook_context>", "</hook_context>")

    def agent_env(self) -> dict[str, str]:
        return {
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GEMINI_API_KEY": "stub-key",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",  # headless: trust the project folder
            "GEMINI_CLI_NO_RELAUNCH": "true",  # no child node process: ~1.5 s a turn
        }

    @property
    def settings(self) -> Path:
        return self.home / ".gemini" / "settings.json"

    def preseed(self) -> None:
        self.settings.parent.mkdir()
        seeded = {
            # without it Gemini CLI picks the "gateway" auth for a custom base URL and quits
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "hooks": {"BeforeAgent": [self.user_hook()], "AfterAgent": [self.user_hook()]},
        }
        self.settings.write_text(json.dumps(seeded, indent=2))

    def argv(self, prompt: str) -> list[str]:
        if self.session is None:
            self.session = str(uuid.uuid4())
            which = ["--session-id", self.session]
        else:
            which = ["--resume", self.session]
        return [str(BIN / "gemini"), "-m", self.model, "-o", "json", *which, "-p", prompt]

    def blocks(self, body: dict[str, Any]) -> list[str]:
        # Gemini CLI adds BeforeAgent context as one more part of the turn's user
        # content, wrapped in <hook_context> (and with < > escaped inside).
        head, tail = self.wrapper
        parts = _texts(body["contents"][-1]["parts"])
        return [p[len(head) : -len(tail)] for p in parts if p.startswith(head) and p.endswith(tail)]


AGENTS: Final[dict[str, type[Agent]]] = {a.name: a for a in (Claude, Codex, Gemini)}
