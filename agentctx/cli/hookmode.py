"""The hook mode of `agentctx context`: what Claude Code, Codex and Gemini CLI hand a
hook on stdin, and the one JSON answer all three accept.

Every agent turn starts a fresh process that runs through this module, so it
imports only the stdlib modules it needs (tests/test_architecture.py keeps typing,
pathlib and argparse out). What each agent does with a hook's output was measured
against the real CLIs (tests/test_agents_e2e.py proves it on every CI run):

- all three read `{"hookSpecificOutput": {"hookEventName": E, "additionalContext": T}}`;
  Codex validates it with additionalProperties:false and drops the context when
  there is one key more, so nothing else is ever printed;
- an exit code of 2 blocks the user's prompt in all three, and Claude Code and
  Codex inject any plain text printed on stdout: a hook that fails therefore prints
  nothing and exits 0 (run_hook() makes sure of that);
- Gemini CLI escapes `<` and `>` (to `&lt;` `&gt;`) inside its own `<hook_context>`
  wrapper, so the block sent to Gemini carries no angle brackets at all.
"""

from __future__ import annotations

import os
import select
import sys
import time

from agentctx._core import fastjson, paths
from agentctx._core.errors import AgentctxError, DaemonUnavailable, ProtocolError

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any, Final

__all__ = [
    "AGENT_EVENTS",
    "CONTEXT_OPTIONS",
    "STDIN_MAX",
    "STDIN_WAIT",
    "fast_context",
    "hook_agent",
    "hook_fields",
    "hook_output",
    "parse_hook_input",
    "parse_quietly",
    "positive_int",
    "read_hook_input",
    "run_hook",
]

# The events each agent takes context from, its per-turn event last; `agentctx hooks
# install` registers these (agentctx.cli.agents). A new agent (OpenClaw) is one more entry.
AGENT_EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "claude": ("SessionStart", "UserPromptSubmit"),
    "codex": ("SessionStart", "UserPromptSubmit"),
    # No SessionStart for Gemini CLI: it prepends SessionStart context to the prompt
    # text, and `--resume` drops every stored user message starting with its
    # <hook_context> wrapper, so the whole previous user turn would vanish from the
    # resumed session. BeforeAgent context is a part of its own and survives.
    "gemini": ("BeforeAgent",),
}
STDIN_WAIT: Final = 0.5  # whole stdin read, EOF or not: a hook never hangs on its writer
STDIN_MAX: Final = 8 << 20  # a prompt pasted into the hook's stdin can be megabytes
READ_CHUNK: Final = 1 << 16
SHORT_REPR: Final = 40
# single angle quotation marks: the text reads the same, and Gemini has nothing to escape
_NO_TAGS: Final = str.maketrans({"<": "\u2039", ">": "\u203a"})


def run_hook(answer: Callable[[], int]) -> int:
    """Run *answer* (the `context` command) for an agent: exit 0 whatever happens. On
    failure stdout stays empty (the answer is written last, in one piece) and stderr
    gets one line, which the agents show in their logs."""
    try:
        return answer()
    except DaemonUnavailable as exc:
        why = f"{exc} (start it: {paths.start_hint()})"
    except AgentctxError as exc:
        why = str(exc)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the agent stopped reading: nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug of ours must not break the agent either
        why = f"internal error: {type(exc).__name__}: {exc}"
    print(f"agentctx: {' '.join(why.split())}; no drive context this time", file=sys.stderr)
    return 0


def parse_quietly(
    parser: Callable[[], argparse.ArgumentParser], argv: list[str]
) -> argparse.Namespace:
    """argparse for a hook command line the fast path did not take, with its usage
    text and exit 2 (which would block the prompt) turned into one error."""
    import io

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        return parser().parse_args(argv)
    except SystemExit:
        said = sys.stderr.getvalue().strip().splitlines() or ["--help is not a hook"]
        raise AgentctxError(f"bad hook command line: {said[-1]}") from None
    finally:
        sys.stdout, sys.stderr = saved


def hook_agent(argv: list[str]) -> str | None:
    """The agent a `context --hook AGENT ...` command line runs for, else None.

    Any `--hook` value but `plain` counts, a misspelt one too: that command line
    was written into an agent's settings, so it must fail the way a hook may."""
    if not argv or argv[0] != "context":
        return None
    for i, arg in enumerate(argv):
        if arg == "--hook" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--hook="):
            value = arg.partition("=")[2]
        else:
            continue
        return None if value == "plain" else value
    return None


def read_hook_input(wait: float = STDIN_WAIT, limit: int = STDIN_MAX) -> dict[str, Any]:
    """The hook's stdin as a JSON object ({} for none). ProtocolError when it is not one."""
    stream = sys.stdin
    if stream is None:
        return {}
    try:
        fd = stream.fileno()
        if os.isatty(fd):
            return {}  # run by hand
    except (OSError, ValueError):
        return {}
    return parse_hook_input(_read_until_eof(fd, time.monotonic() + wait, limit))


def _read_until_eof(fd: int, deadline: float, limit: int) -> bytes:
    """Everything written to *fd* until EOF or *deadline*, whichever comes first: a
    writer that never closes the pipe gets what it wrote so far. Bytes past *limit*
    are read and dropped, so the writer neither blocks on a full pipe nor dies of
    SIGPIPE, and the input is then refused as a whole."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, READ_CHUNK)
        except OSError as exc:
            raise ProtocolError(f"hook stdin unreadable: {exc.strerror}") from None
        if not chunk:
            break
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise ProtocolError(f"hook stdin larger than {limit} bytes")
    return b"".join(chunks)


def parse_hook_input(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = fastjson.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError (invalid UTF-8) is a ValueError too
        raise ProtocolError(f"hook stdin is not JSON ({exc})") from None
    except RecursionError:  # `[[[[...` nested deeper than the C parser recurses
        raise ProtocolError("hook stdin is not JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ProtocolError("hook stdin is not a JSON object")
    return data


def hook_fields(agent: str, hook: dict[str, Any]) -> tuple[str | None, str, bool]:
    """(session id, event, fresh) from the hook's stdin. *fresh* says the event starts a
    context that holds no drive block yet (SessionStart at startup, after /clear or a
    compaction, as opposed to a resume), so `--changes-only` must not skip it."""
    events = AGENT_EVENTS.get(agent)
    if events is None:
        known = ", ".join(AGENT_EVENTS)
        raise ProtocolError(f"unknown hook agent {_short(agent)} (known: {known})")
    session = hook.get("session_id")
    if session is not None and not isinstance(session, str):
        raise ProtocolError("hook stdin: session_id must be a string")
    event = hook.get("hook_event_name", events[-1])
    if not isinstance(event, str) or event not in events:
        raise ProtocolError(
            f"hook stdin: {agent} takes no drive context from a {_short(event)} hook "
            f"(agentctx answers {', '.join(events)})"
        )
    fresh = event == "SessionStart" and hook.get("source") != "resume"
    return session or None, event, fresh


def hook_output(agent: str, event: str, text: str) -> str:
    """The one line an agent reads back. ASCII JSON (`\\u` escapes), so no locale or
    stdout encoding can break it."""
    if agent == "gemini":
        text = text.translate(_NO_TAGS)
    return fastjson.dumps(
        {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}
    )


def _short(value: object) -> str:
    """A value from untrusted input, fit for a one-line message (never a huge repr)."""
    if isinstance(value, str):
        return repr(value[:SHORT_REPR] + ("…" if len(value) > SHORT_REPR else ""))
    return type(value).__name__


# The options of `context`, the per-turn hook. This one table builds the argparse
# subcommand (help, errors) and drives _fast_context(), which parses the usual
# hook command line without argparse: building the parser costs ~10 ms
# (argparse, gettext, locale, shutil) of a hook whose whole budget is ~35 ms.
def positive_int(text: str) -> int:
    """A count of at least 1 (argparse names this type in its error message)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


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
        "type": positive_int,
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


def fast_context(argv: list[str]) -> Any:
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
