"""`agentctx hooks install|uninstall|status openclaw`: the live drive block in every
OpenClaw agent turn, through the plugin this package ships in
agentctx/integrations/openclaw (plain JavaScript, no build step, no dependencies).

install links that directory into OpenClaw with OpenClaw's own command (which also
records the install) and lets the plugin's hook add context to prompts; without
`openclaw` on PATH it prints those two commands instead. uninstall removes exactly
what install added. status asks OpenClaw whether the plugin is linked from here,
loads, and registered its hook and service, then reads the drive state with the
plugin's own code (`node check.js`) the way a prompt does.

Each step is one `openclaw` call, about 5 s apiece: OpenClaw is a big program.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

from agentctx._core.errors import AgentCliFailed, AgentctxError

__all__ = [
    "NAME",
    "PLUGIN_ID",
    "install",
    "install_commands",
    "plugin_dir",
    "status",
    "uninstall",
    "uninstall_commands",
]

NAME: Final = "openclaw"  # the agent's name in `agentctx hooks`
PLUGIN_ID: Final = "agentctx"  # the manifest's id, and the key of its config entry
SERVICE_ID: Final = "agentctx-drives"
HOOK: Final = "before_prompt_build"
ENTRY: Final = f"plugins.entries.{PLUGIN_ID}"
ALLOW_HOOK: Final = f"{ENTRY}.hooks.allowConversationAccess"  # without it the hook is blocked
PLUGIN_FILES: Final = ("openclaw.plugin.json", "package.json", "index.js", "check.js", "wake.js")
CLI_TIMEOUT: Final = 120.0  # one call takes ~5 s; this only caps a hang
CHECK_TIMEOUT: Final = 30.0  # the dry run answers within the plugin's timeoutMs
# What OpenClaw 2026.9 says when there is nothing to remove.
NOTHING_TO_UNINSTALL: Final = ("not associated with a tracked package install", "not found")
NOTHING_TO_UNSET: Final = "Config path not found"
NOT_INSTALLED: Final = "Plugin not found"
RESTART: Final = (
    "OpenClaw saved it for the next Gateway start: restart a running gateway "
    "(`openclaw gateway restart`, or stop and start `openclaw gateway run`); "
    "`openclaw agent --local` turns see it at once"
)


def plugin_dir() -> Path:
    """The plugin's directory inside this installed agentctx package."""
    return Path(__file__).resolve().parents[1] / "integrations" / "openclaw"


def install_commands(directory: Path, changes_only: bool = False) -> list[list[str]]:
    mode = "changes" if changes_only else "always"
    return [
        ["openclaw", "plugins", "install", "--link", str(directory), "--force",
         "--accept-capabilities"],
        ["openclaw", "config", "set", ALLOW_HOOK, "true"],
        ["openclaw", "config", "set", f"{ENTRY}.config.mode", mode],
    ]  # fmt: skip


def uninstall_commands() -> list[list[str]]:
    # --keep-files: the linked directory is this package's, never OpenClaw's to delete
    return [
        ["openclaw", "plugins", "uninstall", PLUGIN_ID, "--force", "--keep-files"],
        ["openclaw", "config", "unset", ENTRY],
    ]


def _openclaw() -> str | None:
    return shutil.which("openclaw")


def _call(argv: list[str], *, ok_if: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run an `openclaw` command line. AgentCliFailed unless it succeeds or says one
    of *ok_if* (then its result is returned with its non-zero code)."""
    exe = _openclaw()
    if exe is None:
        raise AgentCliFailed("`openclaw` is no longer on PATH")
    try:
        result = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise AgentCliFailed(f"{shlex.join(argv)}: no answer within {CLI_TIMEOUT:g} s") from None
    except OSError as exc:
        raise AgentCliFailed(f"{shlex.join(argv)}: cannot run it: {exc.strerror}") from None
    said = _last_words(result)
    if result.returncode != 0 and not any(text in said for text in ok_if):
        raise AgentCliFailed(f"{shlex.join(argv)} exited {result.returncode}: {said}")
    return result


def _last_words(result: subprocess.CompletedProcess[str]) -> str:
    """What a command said, in one line: a JSON error's message, else the first and
    the last line it printed (OpenClaw's headline and its advice)."""
    for text in (result.stdout, result.stderr):
        try:
            message = json.loads(text)["error"]["message"]
            if isinstance(message, str):
                return " ".join(message.split())
        except (ValueError, KeyError, TypeError):
            pass
    lines = [" ".join(line.split()) for line in (result.stderr or result.stdout).splitlines()]
    lines = [line for line in lines if line] or ["(it printed nothing)"]
    return lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"


def _say_commands(what: str, commands: list[list[str]]) -> None:
    print(f"openclaw: `openclaw` is not on PATH; to {what} the agentctx plugin, run:")
    for argv in commands:
        print(f"  {shlex.join(argv)}")


def install(changes_only: bool = False) -> None:
    directory = plugin_dir()
    missing = [name for name in PLUGIN_FILES if not (directory / name).is_file()]
    if missing:
        raise AgentctxError(
            f"the plugin files are missing from {directory} ({', '.join(missing)}): "
            "reinstall agentctx"
        )
    commands = install_commands(directory, changes_only)
    if _openclaw() is None:
        _say_commands("install", commands)
        print(f"  then: {RESTART}")
        return
    for argv in commands:
        _call(argv)
    print(f"openclaw: plugin {PLUGIN_ID!r} linked from {directory}")
    print(f"  its {HOOK} hook may add context ({ALLOW_HOOK} = true)")
    if changes_only:
        print(
            "  the drive block goes in front of a turn's prompt only when a drive changed "
            "band or was satisfied, bumped or reset (OpenClaw keeps no earlier block)"
        )
    else:
        print("  the drive block goes in front of every turn's prompt")
    print(
        "  a fired trigger wakes the agent (under `openclaw gateway`) with the drive's prompt; "
        f"off: openclaw config set {ENTRY}.config.wake false"
    )
    print(f"  {RESTART}")
    print("  check it: agentctx hooks status openclaw")


def uninstall() -> None:
    commands = uninstall_commands()
    if _openclaw() is None:
        _say_commands("uninstall", commands)
        return
    unlinked = _call(commands[0], ok_if=NOTHING_TO_UNINSTALL).returncode == 0
    unset = _call(commands[1], ok_if=(NOTHING_TO_UNSET,)).returncode == 0
    if not (unlinked or unset):
        print("openclaw: not installed, nothing changed")
        return
    removed = ["the plugin's link and install record"] if unlinked else []
    removed += [f"its settings ({ENTRY})"] if unset else []
    print(f"openclaw: removed {' and '.join(removed)}")
    print(f"  {RESTART.replace('saved it', 'saved this')}")


def status(named: bool) -> int:
    """Print whether the plugin is installed and works; the number of problems found
    (not being installed is one only when *named*)."""
    if _openclaw() is None:
        print("openclaw: `openclaw` is not on PATH; cannot check")
        return int(named)
    found = _call(["openclaw", "plugins", "inspect", PLUGIN_ID, "--runtime", "--json"],
                  ok_if=(NOT_INSTALLED,))  # fmt: skip
    if found.returncode != 0:
        print("openclaw: not installed (install it: agentctx hooks install openclaw)")
        return int(named)
    report = _json(found.stdout, "openclaw plugins inspect")
    plugin = report.get("plugin") or {}
    linked = str(plugin.get("rootDir") or "?")
    print(f"openclaw: installed, linked from {linked}")
    checks = [
        (_same_dir(linked, plugin_dir()), f"this agentctx's plugin ({plugin_dir()})"),
        (plugin.get("enabled") is True and plugin.get("status") == "loaded",
         f"enabled and loaded (status: {plugin.get('status')})"),
        (any(h.get("name") == HOOK for h in report.get("typedHooks") or []),
         f"{HOOK} hook registered"),
        (SERVICE_ID in (report.get("services") or []),
         f"{SERVICE_ID} service registered (it runs in the gateway)"),
        ((report.get("policy") or {}).get("allowConversationAccess") is True,
         f"its hook may add context ({ALLOW_HOOK})"),
    ]  # fmt: skip
    checks.append(_dry_run(linked))
    for ok, what in checks:
        print(f"  {'✓' if ok else '✗'} {what}")
    return sum(not ok for ok, _ in checks)


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise AgentCliFailed(f"{what}: not the JSON it should print: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise AgentCliFailed(f"{what}: not a JSON object: {text[:80]!r}")
    return value


def _same_dir(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def _dry_run(directory: str) -> tuple[bool, str]:
    """Read the drive state and render the block with the plugin's own code, under
    the plugin's config, as a prompt without the live service does."""
    got = _call(["openclaw", "config", "get", f"{ENTRY}.config", "--json"],
                ok_if=("unset", "not found"))  # fmt: skip
    config = _json(got.stdout, f"openclaw config get {ENTRY}.config") if got.returncode == 0 else {}
    node = shutil.which("node")
    if node is None:
        return False, "dry run: `node` is not on PATH"
    try:
        result = subprocess.run(
            [node, str(Path(directory) / "check.js"), json.dumps(config)],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, f"dry run: no answer within {CHECK_TIMEOUT:g} s"
    except OSError as exc:
        return False, f"dry run: cannot run {node}: {exc.strerror}"
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        return False, f"dry run: check.js failed: {_last_words(result)}"
    if not isinstance(answer, dict):
        return False, f"dry run: check.js said {result.stdout[:80]!r}"
    if not answer.get("ok"):
        return False, f"dry run: {answer.get('why')}"
    where = "live" if answer.get("source") == "socket" else "from the snapshot file"
    return True, (
        f"dry run: ok, a drive block of {answer.get('chars')} characters "
        f"({where}, seq {answer.get('seq')})"
    )
