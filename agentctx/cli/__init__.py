"""`agentctx`: look at, follow and act on the drive state from a shell or a hook.

Exit codes (also in --help):
  0  success (for satisfy/bump/reset: acknowledged, or queued in the spool)
  1  an error: the request was refused (unknown drive, bad value), an unreadable
     snapshot or agent settings file; `doctor` or `hooks status` found a problem
  2  bad command line
  3  no drive state at all: no sidecar answering and no snapshot file

A hook (`context --hook claude|codex|gemini`) always exits 0: whatever fails, it
prints nothing on stdout and one line on stderr, because exit 2 blocks the user's
prompt in all three agents and stray stdout would be injected as context.

The hook path (`context`) imports only the stdlib modules it needs: every
agent turn starts a fresh process, so start-up time is the hook's latency.
"""

from __future__ import annotations

import os
import sys

from agentctx._core.errors import (
    AgentctxError,
    DaemonUnavailable,
    RequestFailed,
    StoreError,
)
from agentctx.cli.hookmode import (
    AGENT_EVENTS,
    hook_agent,
    hook_fields,
    hook_output,
    parse_quietly,
    read_hook_input,
    run_hook,
)

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Final

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_STATE: Final = 3

EPILOG = """\
exit codes: 0 ok (satisfy/bump/reset: acked or queued), 1 error (refused request,
unreadable snapshot, unreadable agent settings, doctor or hooks status found a
problem), 2 bad command line, 3 no drive state at all (no sidecar and no snapshot).
A hook (context --hook claude|codex|gemini) always exits 0; on failure it prints
nothing and one line on stderr.
"""


# The options of `context`, the per-turn hook. This one table builds the argparse
# subcommand (help, errors) and drives _fast_context(), which parses the usual
# hook command line without argparse: building the parser costs ~10 ms
# (argparse, gettext, locale, shutil) of a hook whose whole budget is ~35 ms.
CONTEXT_OPTIONS: Final[dict[str, dict[str, Any]]] = {
    "--hook": {
        "choices": ["plain", *AGENT_EVENTS],
        "default": "plain",
        "help": "plain: markdown; claude, codex, gemini: that agent's hook JSON, "
        "answering the hook's stdin (never fails the agent: exit 0, see below)",
    },
    "--changes-only": {
        "action": "store_true",
        "help": "print nothing unless a band moved or a drive was satisfied, "
        "bumped or reset since this session's last injection",
    },
    "--max-chars": {
        "type": int,
        "default": 2000,
        "metavar": "N",
        "help": "character budget of the block (default 2000)",
    },
    "--session": {
        "default": None,
        "metavar": "ID",
        "help": "session id for --changes-only (hook modes read it from stdin)",
    },
    "--timeout": {"type": float, "default": 0.1, "help": "socket wait, seconds (default 0.1)"},
}


def _fast_context(argv: list[str]) -> Any:
    """`context` arguments parsed by CONTEXT_OPTIONS alone, or None to let argparse
    handle anything unusual (help, typos, bad values: its messages are better)."""
    if not argv or argv[0] != "context":
        return None
    import types

    values = {k[2:].replace("-", "_"): o.get("default", False) for k, o in CONTEXT_OPTIONS.items()}
    rest = argv[1:]
    while rest:
        flag = rest.pop(0)
        if flag.startswith("--") and "=" in flag:  # --hook=codex
            flag, _, inline = flag.partition("=")
            rest.insert(0, inline)
        opt = CONTEXT_OPTIONS.get(flag)
        if opt is None:
            return None
        key = flag[2:].replace("-", "_")
        if opt.get("action") == "store_true":
            values[key] = True
            continue
        if not rest:
            return None
        try:
            value = opt.get("type", str)(rest.pop(0))
        except ValueError:
            return None
        if "choices" in opt and value not in opt["choices"]:
            return None
        values[key] = value
    return types.SimpleNamespace(command="context", **values)


def _parser() -> argparse.ArgumentParser:
    import argparse  # only here: the hook's usual path never builds a parser

    from agentctx._core.protocol import DEPTHS
    from agentctx._core.version import __version__

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
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, formatter_class=_Formatter)

    s = command("status", "the drives now, as a table (or JSON)")
    s.add_argument("--json", action="store_true", help="JSON with source and age")
    s.add_argument("--timeout", type=float, default=0.5, help="socket wait, seconds")

    command("watch", "a live view that updates in place (lines when piped)")

    c = command("context", "the drive block for an agent's context (hooks)")
    for flag, spec in CONTEXT_OPTIONS.items():
        c.add_argument(flag, **spec)

    sa = command("satisfy", "satisfy a drive (cut its pressure)")
    sa.add_argument("drive")
    g = sa.add_mutually_exclusive_group()
    g.add_argument("--depth", choices=list(DEPTHS))
    g.add_argument("--amount", type=float)
    sa.add_argument("--reason")

    b = command("bump", "add pressure to a drive")
    b.add_argument("drive")
    b.add_argument("--amount", type=float, required=True)
    b.add_argument("--reason")

    r = command("reset", "set a drive's pressure (or every drive's) to zero")
    r.add_argument("drive", nargs="?")
    r.add_argument("--reason")

    command("doctor", "check the setup and say what to fix")

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


def _read(timeout: float) -> Any:
    from agentctx.oneshot import read

    return read(timeout, client="agentctx-cli")


def cmd_status(args: argparse.Namespace) -> int:
    from agentctx.render import plain, to_json

    state = _read(args.timeout)
    print(to_json(state) if args.json else plain(state))
    return EXIT_OK


def cmd_context(args: argparse.Namespace) -> int:
    from agentctx.render import markdown

    agent = None if args.hook == "plain" else args.hook
    session, event, fresh = args.session, "", False
    if agent is not None:
        hook_session, event, fresh = hook_fields(agent, read_hook_input())
        session = session or hook_session
    state = _read(args.timeout)
    if session:
        from agentctx.cli.cursor import changed_since, load_cursor, save_cursor

        if args.changes_only and not fresh and not changed_since(state, load_cursor(session)):
            return EXIT_OK
    text = markdown(state, args.max_chars)
    out = text if agent is None else hook_output(agent, event, text)
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    if session:
        # Every injection moves the session's cursor, so a SessionStart injection is
        # not repeated by the first --changes-only prompt after it.
        try:
            save_cursor(session, state)
        except (OSError, StoreError) as exc:  # worst case: the next turn injects again
            print(f"agentctx: could not save the session cursor: {exc}", file=sys.stderr)
    return EXIT_OK


def _report(receipt: Any, what: str) -> int:
    if receipt.status == "acked":
        print(f"{what}: done (seq {receipt.seq})")
    else:
        print(
            f"{what}: sidecar unavailable; queued in {receipt.path} "
            "(applied once it is back, at the time it was made)"
        )
    return EXIT_OK


def cmd_satisfy(args: argparse.Namespace) -> int:
    from agentctx.requests import satisfy

    receipt = satisfy(args.drive, depth=args.depth, amount=args.amount, reason=args.reason)
    how = args.depth or (f"by {args.amount:g}" if args.amount is not None else "moderate")
    return _report(receipt, f"satisfied {args.drive.upper()} ({how})")


def cmd_bump(args: argparse.Namespace) -> int:
    from agentctx.requests import bump

    receipt = bump(args.drive, args.amount, reason=args.reason)
    return _report(receipt, f"bumped {args.drive.upper()} by {args.amount:g}")


def cmd_reset(args: argparse.Namespace) -> int:
    from agentctx.requests import reset

    receipt = reset(args.drive, reason=args.reason)
    return _report(receipt, f"reset {args.drive.upper() if args.drive else 'every drive'}")


def cmd_watch(args: argparse.Namespace) -> int:
    from agentctx.cli.watch import watch

    return watch()


def cmd_doctor(args: argparse.Namespace) -> int:
    from agentctx.cli.doctor import doctor

    return doctor()


def cmd_hooks(args: argparse.Namespace) -> int:
    from agentctx.cli.hooks import run

    return run(args)


COMMANDS = {
    "status": cmd_status,
    "context": cmd_context,
    "satisfy": cmd_satisfy,
    "bump": cmd_bump,
    "reset": cmd_reset,
    "watch": cmd_watch,
    "doctor": cmd_doctor,
    "hooks": cmd_hooks,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if hook_agent(argv) is not None:
        return run_hook(lambda: cmd_context(_fast_context(argv) or parse_quietly(_parser, argv)))
    args = _fast_context(argv) or _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DaemonUnavailable as exc:
        print(f"agentctx: {exc} (start it: agentctx-sidecar run)", file=sys.stderr)
        return EXIT_NO_STATE
    except RequestFailed as exc:
        print(f"agentctx: refused: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except AgentctxError as exc:
        print(f"agentctx: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `agentctx watch | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
