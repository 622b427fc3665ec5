"""The `agentctx` command line as an argparse parser.

Built only when a command is not the usual hook call (`agentctx context ...`, parsed
by hand in agentctx.cli.hookmode): building it costs ~10 ms (argparse, gettext,
locale), a third of a hook's budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from agentctx._core.protocol import DEPTHS
from agentctx._core.version import __version__
from agentctx.cli.hookmode import AGENT_EVENTS, CONTEXT_OPTIONS

__all__ = ["EPILOG", "build"]

EPILOG: Final = """\
exit codes: 0 ok (satisfy/bump/reset: acked or queued), 1 error (refused request,
unreadable snapshot, unreadable agent settings, doctor or hooks status found a
problem), 2 bad command line, 3 no drive state at all (no sidecar and no snapshot).
A hook (context --hook claude|codex|gemini) always exits 0; on failure it prints
nothing and one line on stderr.
"""


def non_negative_int(text: str) -> int:
    """A count that may be 0 (argparse names this type in its error message)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def build() -> argparse.ArgumentParser:
    """The whole command line, for anything but the usual hook call."""

    class _Formatter(argparse.RawDescriptionHelpFormatter):
        """argparse's formatter, sized without shutil (which argparse imports for every
        add_argument just to learn the terminal width: ~3 ms of every hook call)."""

        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            if width is None:
                try:
                    width = int(os.environ.get("COLUMNS", "")) - 2
                except ValueError:
                    try:
                        width = os.get_terminal_size(sys.stdout.fileno()).columns - 2
                    except (OSError, ValueError):
                        width = 78
            super().__init__(prog, indent_increment, max_help_position, width)

    p = argparse.ArgumentParser(
        prog="agentctx",
        epilog=EPILOG,
        formatter_class=_Formatter,
        description="Live drive state for AI agent sessions (client of agentctx-sidecar).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Read before parsing (agentctx._core.paths.take_agent_flag), before or after the
    # command; here for --help, and for an --agent with no name (an argparse error).
    p.add_argument(
        "--agent",
        metavar="NAME",
        help="the agent (its own sidecar and files), before or after the command; "
        "default $AGENTCTX_AGENT, else the unnamed one",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, formatter_class=_Formatter)

    s = command("status", "the drives now, as a table (or JSON)")
    s.add_argument("--json", action="store_true", help="JSON with source and age")
    s.add_argument("--all", action="store_true", help="every agent on this machine, one line each")
    s.add_argument(
        "--timeout", type=float, default=0.5, metavar="S", help="socket wait, seconds (0.5)"
    )

    command("watch", "a live view that updates in place (lines when piped)")

    c = command("context", "the drive block for an agent's context (hooks)")
    for flag, spec in CONTEXT_OPTIONS.items():
        c.add_argument(flag, **spec)

    reason = "why, for the history and the other sessions (e.g. 'checked in')"
    sa = command("satisfy", "satisfy a drive (cut its pressure)")
    sa.add_argument("drive", help="drive name, any case (e.g. CARE)")
    g = sa.add_mutually_exclusive_group()
    g.add_argument(
        "--depth",
        choices=list(DEPTHS),
        help="cut by 30/50/75/100 %% (default moderate)",
    )
    g.add_argument("--amount", type=float, metavar="X", help="cut by this much pressure")
    sa.add_argument("--reason", metavar="R", help=reason)

    b = command("bump", "add pressure to a drive (how activity-driven drives grow)")
    b.add_argument("drive", help="drive name, any case (e.g. REST)")
    b.add_argument(
        "--amount", type=float, required=True, metavar="X", help="pressure to add (capped)"
    )
    b.add_argument("--reason", metavar="R", help=reason)

    r = command("reset", "set a drive's pressure (or every drive's) to zero")
    r.add_argument("drive", nargs="?", help="drive name; omitted: every drive")
    r.add_argument("--reason", metavar="R", help=reason)

    lg = command("log", "the history of satisfactions, bumps, triggers, actions...")
    lg.add_argument("drive", nargs="?", help="only this drive")
    lg.add_argument("--since", metavar="WHEN", help="2h, 30m, 1d ago, or a local ISO time")
    lg.add_argument(
        "--limit",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="the newest N entries (20; 0 with --follow: only new ones)",
    )
    lg.add_argument("--json", action="store_true", help="one JSON object per line")
    lg.add_argument("--follow", "-f", action="store_true", help="then print new events live")

    command("doctor", "check the setup and say what to fix")

    from agentctx.cli import web  # stdlib only: the server loads when `web` runs

    web.add_arguments(command("web", web.HELP))

    # the hooks command's module loads only when it runs (subprocess, tomllib, ...)
    h = command(
        "hooks", "put live drives into Claude Code, Codex, Gemini CLI and OpenClaw sessions"
    )
    h.add_argument("action", choices=["install", "uninstall", "status"])
    h.add_argument(
        "agent",
        nargs="?",
        # OpenClaw takes a plugin, not a hook command (agentctx.cli.openclaw)
        choices=[*AGENT_EVENTS, "openclaw"],
        help="default: install into every agent whose settings directory exists; "
        "uninstall from and show all (OpenClaw only when named)",
    )
    h.add_argument(
        "--project",
        action="store_true",
        help="the project settings under the working directory (./.claude, ./.gemini) "
        "instead of your user settings",
    )
    h.add_argument(
        "--changes-only",
        action="store_true",
        help="install: the drive block when a session starts, then only after a drive "
        "changed band or was satisfied, bumped or reset (default: every turn)",
    )
    h.add_argument(
        "--no-trust",
        action="store_true",
        help="install codex: leave $CODEX_HOME/config.toml alone (Codex then skips the "
        "hooks until you accept its hooks prompt)",
    )
    return p
