"""`agentctx hooks install|uninstall|status`: real files in a private HOME, the real
command, a real sidecar for the dry runs. (That the agents then act on what it
writes is tests/test_agents_e2e.py.)"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from support import REPO, DaemonProcess

from agentctx.cli.codex_trust import MARK

Factory = Callable[..., DaemonProcess]
AGENTCTX = Path(sys.executable).parent / "agentctx"  # the console script pip installed
CLI_TIMEOUT = 60.0
USER_HOOK = {"hooks": [{"type": "command", "command": "/usr/local/bin/my-own-hook"}]}


@pytest.fixture
def home(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment with a private HOME and no agent-dir overrides."""
    (tmp_path / "home").mkdir()
    (tmp_path / "project").mkdir()
    for var in ("CODEX_HOME", "CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME"):
        env.pop(var, None)
    return {**env, "HOME": str(tmp_path / "home")}


def hooks(
    env: dict[str, str], *args: str, exe: Path = AGENTCTX
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), "hooks", *args],
        env=env,
        cwd=Path(env["HOME"]).parent / "project",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def seed(path: Path, doc: dict[str, object]) -> dict[str, object]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=4))
    return doc


def commands(path: Path) -> dict[str, list[str]]:
    """Event -> every handler command in a settings file."""
    doc = json.loads(path.read_text())
    return {
        event: [h["command"] for g in groups for h in g["hooks"]]
        for event, groups in doc.get("hooks", {}).items()
        if isinstance(groups, list)
    }


def test_install_merges_and_uninstall_restores(home: dict[str, str]) -> None:
    settings = Path(home["HOME"]) / ".claude" / "settings.json"
    before = seed(settings, {"model": "opus", "hooks": {"UserPromptSubmit": [USER_HOOK]}})
    original = settings.read_bytes()

    out = ok(hooks(home, "install", "claude"))
    ours = f"{shlex.quote(str(AGENTCTX))} context --hook claude"
    assert ours in out and str(settings) in out
    assert commands(settings) == {"UserPromptSubmit": ["/usr/local/bin/my-own-hook", ours]}
    assert json.loads(settings.read_text())["model"] == "opus"
    backup = settings.with_name("settings.json.agentctx-backup")
    assert backup.read_bytes() == original

    installed = settings.read_bytes()
    mtime = settings.stat().st_mtime_ns
    assert "nothing changed" in ok(hooks(home, "install", "claude"))  # idempotent
    assert settings.read_bytes() == installed and settings.stat().st_mtime_ns == mtime

    ok(hooks(home, "uninstall", "claude"))
    assert json.loads(settings.read_text()) == before
    assert "nothing changed" in ok(hooks(home, "uninstall", "claude"))


def test_flags_and_moves_replace_the_entry_instead_of_adding_one(home: dict[str, str]) -> None:
    """A reinstall with --changes-only, from another path, or over the hand-written hook
    the README used to show: still one entry of ours per event."""
    settings = Path(home["HOME"]) / ".claude" / "settings.json"
    old = {"type": "command", "command": "agentctx context --hook claude --changes-only"}
    moved = {"type": "command", "command": "'/old venv/bin/agentctx' context --hook claude"}
    seed(settings, {"hooks": {"UserPromptSubmit": [{"hooks": [old]}, {"hooks": [moved]}]}})
    ok(hooks(home, "install", "claude", "--changes-only"))
    ours = f"{shlex.quote(str(AGENTCTX))} context --hook claude --changes-only"
    assert commands(settings) == {"UserPromptSubmit": [ours], "SessionStart": [ours]}
    ok(hooks(home, "install", "claude"))  # every turn: no SessionStart hook, it would repeat
    assert commands(settings) == {"UserPromptSubmit": [ours.removesuffix(" --changes-only")]}


def test_gemini_gets_before_agent_only(home: dict[str, str]) -> None:
    """A SessionStart hook of ours (hand-written) is taken out: Gemini CLI drops the
    previous turn on resume when SessionStart adds context. Keys it does not know as
    events (hooks.enabled of older versions) are left alone."""
    settings = Path(home["HOME"]) / ".gemini" / "settings.json"
    start = {"hooks": [{"type": "command", "command": "agentctx context --hook gemini"}]}
    seed(settings, {"hooks": {"enabled": True, "SessionStart": [start, USER_HOOK]}})
    ok(hooks(home, "install", "gemini"))
    doc = json.loads(settings.read_text())
    assert doc["hooks"]["enabled"] is True
    assert doc["hooks"]["SessionStart"] == [USER_HOOK]
    (handler,) = doc["hooks"]["BeforeAgent"][0]["hooks"]
    assert handler["timeout"] == 10_000  # Gemini CLI counts milliseconds


def test_codex_trust_is_recorded_and_taken_back(home: dict[str, str]) -> None:
    codex = Path(home["HOME"]) / ".codex"
    seed(codex / "hooks.json", {"hooks": {"UserPromptSubmit": [USER_HOOK]}})
    config = codex / "config.toml"
    config.write_text('model = "o4"\n\n[hooks.state."elsewhere:stop:0:0"]\ntrusted_hash = "x"\n')
    original = config.read_bytes()

    ok(hooks(home, "install", "codex", "--changes-only"))
    state = tomllib.loads(config.read_text())["hooks"]["state"]
    hooks_file = codex / "hooks.json"
    # keyed by position: our UserPromptSubmit group comes after the user's
    assert set(state) == {
        "elsewhere:stop:0:0",
        f"{hooks_file}:session_start:0:0",
        f"{hooks_file}:user_prompt_submit:1:0",
    }
    assert config.read_text().count(MARK) == 2
    assert all(
        v["trusted_hash"].startswith("sha256:")
        for v in state.values()
        if v != state["elsewhere:stop:0:0"]
    )
    text = config.read_bytes()
    ok(hooks(home, "install", "codex", "--changes-only"))
    assert config.read_bytes() == text  # idempotent
    assert "✓ trusted" in hooks(home, "status", "codex").stdout

    ok(hooks(home, "uninstall", "codex"))
    assert config.read_bytes() == original  # exactly our lines went


def test_codex_stale_trust_for_our_position_is_replaced(home: dict[str, str]) -> None:
    """Trust the Codex prompt wrote for an older command at our position."""
    codex = Path(home["HOME"]) / ".codex"
    key = f"{codex / 'hooks.json'}:user_prompt_submit:0:0"
    config = codex / "config.toml"
    codex.mkdir()
    config.write_text(f'[hooks.state."{key}"]\ntrusted_hash = "sha256:old"\nenabled = true\n')
    ok(hooks(home, "install", "codex"))
    state = tomllib.loads(config.read_text())["hooks"]["state"]
    assert state[key]["trusted_hash"] != "sha256:old"


def test_no_trust_leaves_codex_config_alone(home: dict[str, str]) -> None:
    (Path(home["HOME"]) / ".codex").mkdir()
    out = ok(hooks(home, "install", "codex", "--no-trust"))
    assert "accept its hooks prompt" in out
    assert not (Path(home["HOME"]) / ".codex" / "config.toml").exists()
    status = hooks(home, "status", "codex")
    assert status.returncode == 1 and "not trusted" in status.stdout


@pytest.mark.parametrize(
    ("agent", "path", "content", "says"),
    [
        ("claude", ".claude/settings.json", "{ // a comment\n}", "not plain JSON"),
        ("gemini", ".gemini/settings.json", "[1]", "not a JSON object"),
        ("claude", ".claude/settings.json", '{"hooks": []}', '"hooks" is a list'),
        ("codex", ".codex/hooks.json", '{"hooks": {"UserPromptSubmit": 1}}', "not a list"),
        ("codex", ".codex/config.toml", "model = ", "not valid TOML"),
        ("codex", ".codex/config.toml", "[hooks]\nstate = { a = 1 }\n", "invalid TOML"),
        (
            "claude",
            ".claude/settings.json",
            '{"hooks": {"UserPromptSubmit": [5]}}',
            "hooks.UserPromptSubmit[0] is a number, not an object",
        ),
        (
            "claude",
            ".claude/settings.json",
            '{"hooks": {"UserPromptSubmit": [{"hooks": "x"}]}}',
            "hooks.UserPromptSubmit[0].hooks is a string, not a list",
        ),
        ("claude", ".claude/settings.json", '{"a": NaN}', "NaN is not JSON"),
    ],
    ids=[
        "comments",
        "not-object",
        "hooks-list",
        "event-not-list",
        "bad-toml",
        "inline-state",
        "group-not-object",
        "handlers-not-list",
        "nan",
    ],
)
def test_a_malformed_file_stops_install_and_nothing_is_written(
    home: dict[str, str], agent: str, path: str, content: str, says: str
) -> None:
    bad = Path(home["HOME"]) / path
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    before = {p: p.read_bytes() for p in bad.parent.iterdir()}
    line = one_line_error(hooks(home, "install", agent), 1)
    assert str(bad) in line and says in line and "nothing changed" in line
    assert {p: p.read_bytes() for p in bad.parent.iterdir()} == before  # no backup either


def test_a_read_only_settings_file_is_left_alone(home: dict[str, str]) -> None:
    settings = Path(home["HOME"]) / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"model": "x"}\n')
    settings.chmod(0o444)
    line = one_line_error(hooks(home, "install", "claude"), 1)
    assert "read-only (mode 0444)" in line and "nothing changed" in line
    assert settings.read_text() == '{"model": "x"}\n'
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


def test_targets(home: dict[str, str]) -> None:
    """No agent named: install into the agents that are there, show all."""
    none = one_line_error(hooks(home, "install"), 1)
    assert "no agent found" in none and ".claude" in none
    (Path(home["HOME"]) / ".gemini").mkdir()
    out = ok(hooks(home, "install"))
    assert out.startswith("gemini: installed") and "claude" not in out
    shown = hooks(home, "status").stdout
    assert "claude: not installed" in shown and "codex: not installed" in shown
    assert "gemini: installed" in shown
    assert "drop --project" in one_line_error(hooks(home, "install", "codex", "--project"), 2)
    assert "drop --project" in one_line_error(hooks(home, "install", "openclaw", "--project"), 2)


def test_project_scope(home: dict[str, str]) -> None:
    project = Path(home["HOME"]).parent / "project"
    ok(hooks(home, "install", "claude", "--project"))
    assert commands(project / ".claude" / "settings.json")
    assert not (Path(home["HOME"]) / ".claude").exists()
    both = ok(hooks(home, "install", "claude"))  # the agent would run both: say so
    assert "warning: also installed in" in both and "uninstall claude --project" in both
    shown = hooks(home, "status", "--project").stdout  # (exit 1: no sidecar for the dry run)
    assert f"claude: installed in {project / '.claude' / 'settings.json'}" in shown


def test_status_dry_runs_the_installed_command(home: dict[str, str], make_daemon: Factory) -> None:
    (Path(home["HOME"]) / ".claude").mkdir()
    ok(hooks(home, "install", "claude"))
    down = hooks(home, "status", "claude")
    assert down.returncode == 1 and "no sidecar answering" in down.stdout
    make_daemon()
    up = ok(hooks(home, "status", "claude"))
    assert up.count("dry run: ok") == 1
    ok(hooks(home, "install", "claude", "--changes-only"))
    assert ok(hooks(home, "status", "claude")).count("dry run: ok") == 2  # + SessionStart
    settings = Path(home["HOME"]) / ".claude" / "settings.json"
    doc = json.loads(settings.read_text())
    settings.write_text(json.dumps({**doc, "disableAllHooks": True}))
    off = hooks(home, "status", "claude")
    assert off.returncode == 1 and "disableAllHooks" in off.stdout


def test_a_path_with_spaces_and_a_dotfiles_symlink(
    home: dict[str, str], make_daemon: Factory, tmp_path: Path
) -> None:
    """The command is quoted for `sh -c`; a symlinked settings file is written through."""
    make_daemon()
    spaced = tmp_path / "my tools" / "agentctx"
    spaced.parent.mkdir()
    shutil.copy2(AGENTCTX, spaced)  # a console script: its shebang is this venv's python
    dotfiles = tmp_path / "dotfiles" / "claude-settings.json"
    seed(dotfiles, {"theme": "dark"})
    link = Path(home["HOME"]) / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)

    ok(hooks(home, "install", "claude", exe=spaced))
    assert link.is_symlink()
    assert commands(dotfiles)["UserPromptSubmit"] == [f"'{spaced}' context --hook claude"]
    assert ok(hooks(home, "status", "claude")).count("dry run: ok") == 1


def test_python_m_agentctx_writes_the_console_script(home: dict[str, str]) -> None:
    (Path(home["HOME"]) / ".codex").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "agentctx", "hooks", "install", "codex"],
        env=home,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    ok(result)
    (command,) = commands(Path(home["HOME"]) / ".codex" / "hooks.json")["UserPromptSubmit"]
    assert shlex.split(command)[0] == str(AGENTCTX)
    assert os.access(shlex.split(command)[0], os.X_OK)
