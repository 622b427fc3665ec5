"""`agentctx`: look at, follow and act on the drive state from a shell or a hook.

Exit codes (also in --help):
  0  success (for satisfy/bump/reset: acknowledged, or queued in the spool)
  1  an error: the request was refused (unknown drive, bad value), bad hook input,
     an unreadable snapshot; `doctor` found a problem
  2  bad command line
  3  no drive state at all: no sidecar answering and no snapshot file

The hook path (`context`) imports only the stdlib modules it needs: every
agent turn starts a fresh process, so start-up time is the hook's latency.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys

from agentctx.errors import AgentctxError, DaemonUnavailable, RequestFailed, StoreError

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, NoReturn

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_STATE: Final = 3
HOOK_STDIN_WAIT: Final = 0.5  # a hook must never hang on a stdin nobody closes
HOOK_STDIN_MAX: Final = 1 << 20

EPILOG = """\
exit codes: 0 ok (satisfy/bump/reset: acked or queued), 1 error (refused request,
bad hook input, unreadable snapshot, doctor found a problem), 2 bad command line,
3 no drive state at all (no sidecar and no snapshot).
"""


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _die(code: int, message: str) -> NoReturn:
    raise _Fail(code, message)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentctx",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Live drive state for AI agent sessions (client of agentctx-sidecar).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("status", help="the drives now, as a table (or JSON)")
    s.add_argument("--json", action="store_true", help="JSON with source and age")
    s.add_argument("--timeout", type=float, default=0.5, help="socket wait, seconds")

    sub.add_parser("watch", help="a live view that updates in place (lines when piped)")

    c = sub.add_parser("context", help="the drive block for an agent's context (hooks)")
    c.add_argument(
        "--hook",
        choices=["claude", "plain"],
        default="plain",
        help="claude: Claude Code hook JSON from the hook's stdin; plain: markdown",
    )
    c.add_argument(
        "--changes-only",
        action="store_true",
        help="print nothing unless a band moved or a drive was satisfied, "
        "bumped or reset since this session's last injection",
    )
    c.add_argument("--max-chars", type=int, default=2000, metavar="N")
    c.add_argument(
        "--session",
        metavar="ID",
        help="session id for --changes-only (claude mode reads it from stdin)",
    )
    c.add_argument("--timeout", type=float, default=0.1, help="socket wait, seconds")

    sa = sub.add_parser("satisfy", help="satisfy a drive (cut its pressure)")
    sa.add_argument("drive")
    g = sa.add_mutually_exclusive_group()
    g.add_argument("--depth", choices=["shallow", "moderate", "deep", "full"])
    g.add_argument("--amount", type=float)
    sa.add_argument("--reason")

    b = sub.add_parser("bump", help="add pressure to a drive")
    b.add_argument("drive")
    b.add_argument("--amount", type=float, required=True)
    b.add_argument("--reason")

    r = sub.add_parser("reset", help="set a drive's pressure (or every drive's) to zero")
    r.add_argument("drive", nargs="?")
    r.add_argument("--reason")

    sub.add_parser("doctor", help="check the setup and say what to fix")
    return p


def _read(timeout: float) -> Any:
    from agentctx.oneshot import read

    try:
        return read(timeout, client="agentctx-cli")
    except DaemonUnavailable as exc:
        _die(EXIT_NO_STATE, f"{exc} (start it: agentctx-sidecar run)")
    except StoreError as exc:
        _die(EXIT_ERROR, str(exc))


def cmd_status(args: argparse.Namespace) -> int:
    from agentctx.render import plain, to_json

    state = _read(args.timeout)
    print(to_json(state) if args.json else plain(state))
    return EXIT_OK


def _hook_input() -> dict[str, Any]:
    if sys.stdin is None or sys.stdin.isatty():
        return {}
    ready, _, _ = select.select([sys.stdin], [], [], HOOK_STDIN_WAIT)
    if not ready:
        return {}
    raw = sys.stdin.buffer.read(HOOK_STDIN_MAX)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        _die(EXIT_ERROR, f"hook stdin is not JSON ({exc})")
    if not isinstance(data, dict):
        _die(EXIT_ERROR, "hook stdin is not a JSON object")
    return data


def cmd_context(args: argparse.Namespace) -> int:
    from agentctx.render import markdown

    hook: dict[str, Any] = _hook_input() if args.hook == "claude" else {}
    session = args.session or hook.get("session_id")
    if session is not None and not isinstance(session, str):
        _die(EXIT_ERROR, "hook stdin: session_id must be a string")
    event = hook.get("hook_event_name", "UserPromptSubmit")
    if not isinstance(event, str):
        _die(EXIT_ERROR, "hook stdin: hook_event_name must be a string")
    state = _read(args.timeout)
    if args.changes_only and session:
        from agentctx.cursor import changed_since, load_cursor, save_cursor

        if not changed_since(state, load_cursor(session)):
            return EXIT_OK
        text = markdown(state, args.max_chars)
        _emit(args.hook, event, text)
        try:
            save_cursor(session, state)
        except (OSError, StoreError) as exc:  # worst case: the next turn injects again
            print(f"agentctx: could not save the session cursor: {exc}", file=sys.stderr)
        return EXIT_OK
    _emit(args.hook, event, markdown(state, args.max_chars))
    return EXIT_OK


def _emit(mode: str, event: str, text: str) -> None:
    if mode == "claude":
        out = {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(text)


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
    from agentctx.watchview import watch

    return watch()


def cmd_doctor(args: argparse.Namespace) -> int:
    from agentctx.doctor import doctor

    return doctor()


COMMANDS = {
    "status": cmd_status,
    "context": cmd_context,
    "satisfy": cmd_satisfy,
    "bump": cmd_bump,
    "reset": cmd_reset,
    "watch": cmd_watch,
    "doctor": cmd_doctor,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except _Fail as exc:
        print(f"agentctx: {exc}", file=sys.stderr)
        return exc.code
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
