"""`agentctx hooks install|uninstall|status [claude|codex|gemini|openclaw]`: live
drives in every Claude Code, Codex and Gemini CLI session, through each agent's own
hooks, and in every OpenClaw turn, through the agentctx plugin (agentctx.cli.openclaw).

install writes `ABSOLUTE/agentctx context --hook AGENT` into the agent's settings
for the events that carry context (agentctx.cli.agents), so the hook runs from any
directory without an activated virtualenv; it keeps every other key and hook, is
idempotent, and for Codex also records the trust Codex asks for. uninstall removes
exactly those entries. status says, per agent, where the hooks are and runs each
one as the agent would, with that agent's stdin, and checks the answer's shape.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Final

from agentctx._core import paths
from agentctx._core.errors import AgentctxError
from agentctx.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, openclaw, settings
from agentctx.cli import codex_trust as trust
from agentctx.cli.agents import AGENTS, Agent, sample_stdin

__all__ = ["agentctx_argv", "dry_run", "hook_command", "run"]

SHELL: Final = "/bin/sh"  # the agents run a hook's command line with `sh -c`
DRY_RUN_TIMEOUT: Final = 20.0  # generous: the hook itself answers in well under 1 s
SHEBANG_BYTES: Final = 512


def agentctx_argv() -> list[str]:
    """How to start this very agentctx from anywhere: the absolute path of its
    console script (a venv's, pipx's or `pip install --user`'s bin dir), else this
    interpreter with `-m agentctx` (a source checkout)."""
    scripts = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    candidates = [os.path.join(d, "agentctx") for d in scripts]
    candidates.append(os.path.join(os.path.dirname(sys.executable), "agentctx"))
    if sys.argv and os.path.basename(sys.argv[0]) == "agentctx":
        candidates.insert(0, sys.argv[0])  # the script we were started by, symlink and all
    for path in candidates:
        if _runs_this_python(path):
            return [os.path.abspath(path)]
    return [os.path.abspath(sys.executable), "-m", "agentctx"]


def _runs_this_python(script: str) -> bool:
    """Whether *script* is an executable console script of this interpreter's
    environment (not a leftover from another install that happens to be there)."""
    if not os.access(script, os.X_OK) or not os.path.isfile(script):
        return False
    try:
        with open(script, "rb") as f:
            head = f.read(SHEBANG_BYTES)
    except OSError:
        return False
    # pip writes `#!/venv/bin/python` (or an `exec` line for paths with spaces)
    return head.startswith(b"#!") and os.fsencode(os.path.dirname(sys.executable)) in head


def hook_command(agent: str, changes_only: bool) -> str:
    argv = [*agentctx_argv(), "context", "--hook", agent]
    if named := paths.agent_name():  # `agentctx --agent NAME hooks install`: that agent's
        argv += ["--agent", named]
    if changes_only:
        argv.append("--changes-only")
    return shlex.join(argv)  # quoted for `sh -c`: paths with spaces work


def run(args: argparse.Namespace) -> int:
    if args.agent == openclaw.NAME:
        return _run_openclaw(args)
    if args.project and args.agent is not None and AGENTS[args.agent].project_dir is None:
        print(f"agentctx: {AGENTS[args.agent].label} has no project settings; drop --project",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        agents = _targets(args)
    except AgentctxError as exc:
        print(f"agentctx: {exc}", file=sys.stderr)
        return EXIT_ERROR
    problems = 0
    for agent in agents:
        try:
            if args.action == "install":
                install(agent, args.project, args.changes_only, not args.no_trust)
            elif args.action == "uninstall":
                uninstall(agent, args.project)
            else:
                for path in _status_paths(agent, args.project):
                    problems += status(agent, path, named=args.agent is not None)
        except AgentctxError as exc:
            print(f"agentctx: {agent.name}: {exc}", file=sys.stderr)
            problems += 1
    return EXIT_ERROR if problems else EXIT_OK


def _run_openclaw(args: argparse.Namespace) -> int:
    """OpenClaw takes a plugin, not a hook command; --changes-only sets its mode
    "changes" (its default is every turn: OpenClaw keeps no block in the history)."""
    if args.project:
        print("agentctx: OpenClaw has no project settings; drop --project", file=sys.stderr)
        return EXIT_USAGE
    problems = 0
    try:
        if args.action == "install":
            openclaw.install(args.changes_only)
        elif args.action == "uninstall":
            openclaw.uninstall()
        else:
            problems = openclaw.status(named=True)
    except AgentctxError as exc:
        print(f"agentctx: {openclaw.NAME}: {exc}", file=sys.stderr)
        problems = 1
    return EXIT_ERROR if problems else EXIT_OK


def _targets(args: argparse.Namespace) -> list[Agent]:
    if args.agent is not None:
        return [AGENTS[args.agent]]
    agents = [a for a in AGENTS.values() if a.project_dir is not None or not args.project]
    if args.action != "install":
        return agents
    found = [a for a in agents if a.settings_path(args.project).parent.is_dir()]
    if not found:
        looked = ", ".join(str(a.settings_path(args.project).parent) for a in agents)
        raise AgentctxError(
            f"no agent found (none of {looked} exists); name one: agentctx hooks install "
            + "|".join(a.name for a in agents)
        )
    return found


def _status_paths(agent: Agent, project: bool) -> list[Path]:
    """The files status looks at: the scope asked for, and without --project the
    project's file too when the working directory has one."""
    if project:
        return [agent.settings_path(True).absolute()]
    paths = [agent.settings_path(False).absolute()]
    if agent.project_dir is not None:
        local = agent.settings_path(True).absolute()
        if local.exists() and local.resolve() != paths[0].resolve():
            paths.append(local)
    return paths


def install(agent: Agent, project: bool, changes_only: bool, record_trust: bool) -> None:
    path = agent.settings_path(project).absolute()
    doc, raw = settings.load(path)
    command = hook_command(agent.name, changes_only)
    events = agent.events(changes_only)
    wanted = {event: agent.handler(command) for event in events}
    changed, placed = settings.place(doc, agent.name, wanted, path)
    # Everything is checked before anything is written: a bad config.toml leaves
    # the settings file untouched too.
    trusting = agent.records_trust and record_trust
    config = agent.config_dir().absolute() / trust.CONFIG_NAME
    text = new = ""
    if trusting:
        text, _ = trust.read(config)
        entries = trust.entries(path, placed)
        new = trust.retrust(config, text, entries)
        trust.check(config, new, entries)
    if changed:
        backup = settings.save(path, doc, raw)
        print(f"{agent.name}: installed in {path}" + (f" (previous: {backup})" if backup else ""))
    else:
        print(f"{agent.name}: already installed in {path}, nothing changed")
    print(f"  {', '.join(events)} run: {command}")
    print(
        "  the drive block goes into "
        + (
            "the session's first turn, then only turns after a drive changed"
            if changes_only
            else "every turn"
        )
    )
    if new != text:
        settings.write_with_backup(config, new.encode(), text.encode() if text else None)
    for warning in agent.warnings(doc, command) + _also_installed(agent, project):
        print(f"  warning: {warning}")
    if trusting:
        print(f"  trusted in {config} (the entries Codex writes when you accept its prompt)")
        print(f"  next: nothing; check it: agentctx hooks status {agent.name}")
    else:
        print(f"  next: {agent.next_step}; check it: agentctx hooks status {agent.name}")


def _also_installed(agent: Agent, project: bool) -> list[str]:
    """Our hooks in the other scope too: the agent would run both and inject twice."""
    if agent.project_dir is None:
        return []
    here = agent.settings_path(project).absolute()
    other = agent.settings_path(not project).absolute()
    try:
        doc, _raw = settings.load(other)
    except AgentctxError:
        return []  # that file's problem is reported when someone installs there
    if other.resolve() == here.resolve() or not settings.find_ours(doc, agent.name):
        return []
    flag = "" if project else " --project"  # the flag that names the other file
    return [
        f"also installed in {other}: the agent would run both; to keep only this one: "
        f"agentctx hooks uninstall {agent.name}{flag}"
    ]


def uninstall(agent: Agent, project: bool) -> None:
    path = agent.settings_path(project).absolute()
    doc, raw = settings.load(path)
    removed = settings.remove(doc, agent.name)
    if agent.records_trust and not project:
        config = agent.config_dir().absolute() / trust.CONFIG_NAME
        text, _ = trust.read(config)
        new = trust.untrust(text)
        trust.check(config, new, [])
        if new != text:
            settings.write_with_backup(config, new.encode(), text.encode())
            print(f"{agent.name}: trust entries removed from {config}")
    if not removed:
        print(f"{agent.name}: not installed in {path}, nothing changed")
        return
    backup = settings.save(path, doc, raw)
    print(f"{agent.name}: removed {removed} hook(s) from {path} (previous: {backup})")


def status(agent: Agent, path: Path, named: bool) -> int:
    """Print whether *agent*'s hooks are in *path* and how their dry runs went; returns
    the number of problems found (not being installed is one only when *named*)."""
    doc, _raw = settings.load(path)
    placed = settings.find_ours(doc, agent.name)
    if not placed:
        print(f"{agent.name}: not installed ({path})")
        return int(named)
    problems = 0
    print(f"{agent.name}: installed in {path}")
    changes_only = any("--changes-only" in shlex.split(h["command"]) for *_, h in placed)
    missing = [e for e in agent.events(changes_only) if e not in {p[0] for p in placed}]
    if missing:
        print(f"  ✗ no hook for {', '.join(missing)}: run agentctx hooks install {agent.name}")
        problems += 1
    for event, _g, _h, handler in placed:
        ok, said = dry_run(agent, event, handler["command"])
        print(f"  {'✓' if ok else '✗'} {event}: {handler['command']}")
        print(f"      dry run: {said}")
        problems += not ok
        for warning in agent.warnings(doc, handler["command"]):
            print(f"  ✗ {warning}")
            problems += 1
    if agent.records_trust:
        config = agent.config_dir().absolute() / trust.CONFIG_NAME
        _text, config_doc = trust.read(config)
        untrusted = [e for e in trust.entries(path, placed) if not trust.is_trusted(config_doc, e)]
        if untrusted:
            print(f"  ✗ not trusted in {config}: {agent.next_step}")
            problems += 1
        else:
            print(f"  ✓ trusted in {config}")
    return problems


def dry_run(agent: Agent, event: str, command: str) -> tuple[bool, str]:
    """Run *command* as *agent* runs a hook for *event* and check its answer is what
    that agent accepts. (ok, what happened). A private state dir keeps the dry run's
    session cursor out of the real ones."""
    stdin = json.dumps(sample_stdin(agent, event)).encode()
    with tempfile.TemporaryDirectory(prefix="agentctx-dry-run-") as state:
        try:
            result = subprocess.run(
                [SHELL, "-c", command],
                input=stdin,
                capture_output=True,
                timeout=DRY_RUN_TIMEOUT,
                env={**os.environ, "AGENTCTX_STATE_DIR": state},
            )
        except subprocess.TimeoutExpired:
            return False, f"no answer within {DRY_RUN_TIMEOUT:g} s"
        except OSError as exc:
            return False, f"cannot run {SHELL}: {exc.strerror}"
    err = result.stderr.decode(errors="replace").strip().splitlines()
    why = f" ({err[-1]})" if err else ""
    if result.returncode != 0:
        return False, f"exit code {result.returncode}{why}"
    out = result.stdout.strip()
    if not out:
        return False, f"no drive block{why}"
    try:
        answer = json.loads(out)
        spec = answer["hookSpecificOutput"]
        context = spec["additionalContext"]
        shape_ok = (
            list(answer) == ["hookSpecificOutput"]
            and sorted(spec) == ["additionalContext", "hookEventName"]
            and spec["hookEventName"] == event
            and isinstance(context, str)
            and bool(context)
        )
    except (ValueError, KeyError, TypeError):
        shape_ok = False
    if not shape_ok:
        return False, f"not the hook JSON {agent.label} reads: {out[:80]!r}"
    return True, f"ok, a drive block of {len(context)} characters"
