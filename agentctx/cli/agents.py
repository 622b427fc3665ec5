"""What `agentctx hooks` knows about each agent CLI: where its hook settings live,
which events carry the drive block, what the hook's stdin looks like, and what the
user still has to do before the agent runs a new hook.

All three agents read the same settings shape (`{"hooks": {EVENT: [{"hooks":
[{"type": "command", "command": ...}]}]}}`, agentctx.cli.settings), so an agent is
one `Agent` entry in AGENTS plus its events in hookmode.AGENT_EVENTS; an `openclaw`
target is added the same way. Paths, events, stdin fields and trust rules are the
ones measured against the pinned CLI versions in tests/agent_clis.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agentctx.cli.hookmode import AGENT_EVENTS

__all__ = ["AGENTS", "Agent", "sample_stdin"]

HOOK_TIMEOUT_S: Final = 10  # the hook answers in well under a second; this only caps a hang
DRY_RUN_SESSION: Final = "agentctx-hooks-status"


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def _claude_dir() -> Path:
    # Claude Code moves settings.json (and .claude.json) to $CLAUDE_CONFIG_DIR when set
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or _home() / ".claude")


def _codex_dir() -> Path:
    return Path(os.environ.get("CODEX_HOME") or _home() / ".codex")


def _gemini_dir() -> Path:
    # Gemini CLI takes its home, and so ~/.gemini, from $GEMINI_CLI_HOME when set
    return Path(os.environ.get("GEMINI_CLI_HOME") or _home()) / ".gemini"


@dataclass(frozen=True)
class Agent:
    """One agent CLI that `agentctx hooks` can install into."""

    name: str  # the CLI argument and the `context --hook` value
    label: str
    config_dir: Callable[[], Path]  # its user-level directory; "installed here?" = it exists
    settings_name: str  # the hooks file inside config_dir
    project_dir: str | None  # e.g. ".claude" under the working directory; None: no such scope
    timeout: int  # handler timeout, in the agent's own unit
    next_step: str  # what the user still has to do after install, printed by it
    records_trust: bool = False  # install writes the agent's trust entries (Codex)
    stdin_extra: dict[str, str] = field(default_factory=dict)  # its own hook stdin fields

    def events(self, changes_only: bool) -> tuple[str, ...]:
        """The events install registers. Every turn: the per-turn event alone (a
        SessionStart hook would only repeat the block its first prompt brings anyway).
        Changes only: SessionStart too, the one call that puts the block back into a
        context that starts without it (startup, /clear, compaction) while the per-turn
        hook keeps quiet."""
        accepted = AGENT_EVENTS[self.name]
        return accepted if changes_only else accepted[-1:]

    @property
    def turn_event(self) -> str:
        return AGENT_EVENTS[self.name][-1]

    def settings_path(self, project: bool) -> Path:
        if project:
            assert self.project_dir is not None
            return Path.cwd() / self.project_dir / self.settings_name
        return self.config_dir() / self.settings_name

    def handler(self, command: str) -> dict[str, Any]:
        """The hook entry written for *command*: only keys every version accepts."""
        return {"type": "command", "command": command, "timeout": self.timeout}

    def warnings(self, settings: dict[str, Any], command: str) -> list[str]:
        """Settings that keep the agent from running any hook, ours included."""
        said = []
        if self.name == "claude" and settings.get("disableAllHooks") is True:
            said.append('"disableAllHooks": true in this file: Claude Code runs no hook')
        if self.name == "gemini":
            cfg = settings.get("hooksConfig")
            if isinstance(cfg, dict) and cfg.get("enabled") is False:
                said.append('"hooksConfig.enabled": false in this file: Gemini CLI runs no hook')
            if isinstance(cfg, dict) and command in (cfg.get("disabled") or []):
                said.append("this hook is listed in hooksConfig.disabled: Gemini CLI skips it")
        return said


AGENTS: Final[dict[str, Agent]] = {
    a.name: a
    for a in (
        Agent(
            name="claude",
            label="Claude Code",
            config_dir=_claude_dir,
            settings_name="settings.json",
            project_dir=".claude",
            timeout=HOOK_TIMEOUT_S,
            next_step="nothing: new and resumed Claude Code sessions get the drive block",
            stdin_extra={"permission_mode": "default"},
        ),
        Agent(
            name="codex",
            label="Codex",
            config_dir=_codex_dir,
            settings_name="hooks.json",
            project_dir=None,
            timeout=HOOK_TIMEOUT_S,
            # printed only when trust was not recorded (--no-trust): Codex skips
            # untrusted hooks without a word
            next_step="Codex runs a new hook only once you trust it: start `codex` and "
            "accept its hooks prompt (or re-run this install without --no-trust)",
            records_trust=True,
            stdin_extra={"model": "gpt-5", "permission_mode": "default"},
        ),
        Agent(
            name="gemini",
            label="Gemini CLI",
            config_dir=_gemini_dir,
            settings_name="settings.json",
            project_dir=".gemini",
            timeout=HOOK_TIMEOUT_S * 1000,  # Gemini CLI counts hook timeouts in ms
            next_step="Gemini CLI runs hooks only in folders you trust: accept its "
            "trust prompt in each project folder (scripts: GEMINI_CLI_TRUST_WORKSPACE=true)",
            stdin_extra={"timestamp": "2026-01-01T00:00:00.000Z"},
        ),
    )
}


def sample_stdin(agent: Agent, event: str) -> dict[str, Any]:
    """What *agent* writes to a hook's stdin for *event*, as recorded from the real CLI
    (only the fields that matter; the hook ignores the others)."""
    data: dict[str, Any] = {
        "session_id": DRY_RUN_SESSION,
        "transcript_path": "",
        "cwd": os.getcwd(),
        "hook_event_name": event,
        **agent.stdin_extra,
    }
    if event == "SessionStart":
        data["source"] = "startup"
    else:
        data["prompt"] = "agentctx hooks status: dry run"
    return data
