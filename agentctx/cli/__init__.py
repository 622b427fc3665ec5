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
    UsageError,
)
from agentctx.cli.hookmode import (
    fast_context,
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
DEFAULT_READ_TIMEOUT: Final = 0.5  # socket wait of status and after a request


def _parser() -> argparse.ArgumentParser:
    from agentctx.cli.parser import build  # only here: the hook's usual path never needs it

    return build()


def _read(timeout: float) -> Any:
    from agentctx.oneshot import read

    return read(timeout, client="agentctx-cli")


def cmd_status(args: argparse.Namespace) -> int:
    from agentctx.render import plain, to_json

    if args.all:
        from agentctx.cli.status_all import status_all

        return status_all(args.timeout, args.json)
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


def _report(receipt: Any, what: str, drive: str | None = None, bumped: float | None = None) -> int:
    """Say what happened to a request, and where the drive stands now when acked."""
    if receipt.status != "acked":
        print(
            f"{what}: {receipt.why or 'the sidecar is unavailable'}; queued in {receipt.path} "
            "(applied once it can be, exactly once)"
        )
        return EXIT_OK
    now = ""
    if drive is not None:
        try:
            d = _read(DEFAULT_READ_TIMEOUT).drives.get(drive)
        except AgentctxError:
            d = None
        if d is not None:
            pressure, threshold = float(d["pressure"]), float(d["threshold"])
            now = f"; now {pressure:.1f}/{threshold:g} ({d['band']})"
            cap = float(d.get("max_pressure") or 0)
            if bumped is not None and cap and pressure >= cap:
                now += f", capped at its maximum {cap:g}"
    print(f"{what}: acked (seq {receipt.seq}){now}")
    return EXIT_OK


def cmd_satisfy(args: argparse.Namespace) -> int:
    from agentctx._core.protocol import drive_key
    from agentctx.requests import satisfy

    receipt = satisfy(args.drive, depth=args.depth, amount=args.amount, reason=args.reason)
    how = args.depth or (f"by {args.amount:g}" if args.amount is not None else "moderate")
    drive = drive_key(args.drive)
    return _report(receipt, f"satisfied {drive} ({how})", drive)


def cmd_bump(args: argparse.Namespace) -> int:
    from agentctx._core.protocol import drive_key
    from agentctx.requests import bump

    receipt = bump(args.drive, args.amount, reason=args.reason)
    drive = drive_key(args.drive)
    return _report(receipt, f"bumped {drive} by {args.amount:g}", drive, args.amount)


def cmd_reset(args: argparse.Namespace) -> int:
    from agentctx._core.protocol import drive_key
    from agentctx.requests import reset

    receipt = reset(args.drive, reason=args.reason)
    drive = drive_key(args.drive) if args.drive else None
    return _report(receipt, f"reset {drive or 'every drive'}", drive)


def cmd_watch(args: argparse.Namespace) -> int:
    from agentctx.cli.watch import watch

    return watch()


def cmd_log(args: argparse.Namespace) -> int:
    from agentctx.cli.log import log

    return log(args.drive, args.since, args.limit, args.json, args.follow)


def cmd_doctor(args: argparse.Namespace) -> int:
    from agentctx.cli.doctor import doctor

    return doctor()


def cmd_web(args: argparse.Namespace) -> int:
    from agentctx.cli.web import web

    return web(args)


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
    "log": cmd_log,
    "hooks": cmd_hooks,
    "web": cmd_web,
}


def _select_agent(agent: str | None) -> None:
    """`--agent NAME` is `AGENTCTX_AGENT=NAME` for this process: every path of every
    command (and of whatever it starts) then names that agent's files."""
    if agent is not None:
        from agentctx._core import paths

        os.environ[paths.AGENT_ENV] = paths.check_agent(agent) if agent else ""


def main(argv: list[str] | None = None) -> int:
    from agentctx._core.paths import take_agent_flag

    agent, argv = take_agent_flag(sys.argv[1:] if argv is None else argv)
    if hook_agent(argv) is not None:

        def answer() -> int:
            _select_agent(agent)
            return cmd_context(fast_context(argv) or parse_quietly(_parser, argv))

        return run_hook(answer)
    args = fast_context(argv) or _parser().parse_args(argv)
    try:
        _select_agent(agent)
        return COMMANDS[args.command](args)
    except DaemonUnavailable as exc:
        from agentctx._core.paths import start_hint

        print(f"agentctx: {exc} (start it: {start_hint()})", file=sys.stderr)
        return EXIT_NO_STATE
    except UsageError as exc:
        print(f"agentctx: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
