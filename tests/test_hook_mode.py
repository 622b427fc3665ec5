"""`agentctx context --hook claude|codex|gemini`: the answer each agent reads, and a
hook that never breaks the agent: whatever goes wrong (no state, bad stdin, a bad
flag), exit 0 with nothing on stdout and one line on stderr, and always in time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUCKET
from support import REPO, DaemonProcess

from agentctx.cli.hookmode import AGENT_EVENTS, STDIN_MAX, STDIN_WAIT

Factory = Callable[..., DaemonProcess]
HOOK_TIMEOUT = 30.0  # a loaded CI machine; the hook itself answers in well under 1 s


def context(
    env: dict[str, str], *args: str, stdin: bytes | str = b""
) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "agentctx", "context", *args],
        env=env,
        cwd=REPO,
        input=data,
        capture_output=True,
        timeout=HOOK_TIMEOUT,
    )


def payload(event: str, session: str = "s1", **extra: object) -> str:
    return json.dumps({"session_id": session, "hook_event_name": event, **extra})


def answer(result: subprocess.CompletedProcess[bytes], event: str) -> str:
    """The context of a well-formed answer: exactly the keys all three agents accept."""
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out) == ["hookSpecificOutput"]
    spec = out["hookSpecificOutput"]
    assert sorted(spec) == ["additionalContext", "hookEventName"]
    assert spec["hookEventName"] == event
    assert result.stdout.isascii()  # \u escapes: no locale can garble it
    context: str = spec["additionalContext"]
    return context


def silent_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    """Exit 0, empty stdout, one stderr line (returned), no traceback."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, err
    assert result.stdout == b""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("agent", "event"), [(a, e) for a, events in AGENT_EVENTS.items() for e in events]
)
def test_each_agent_gets_its_answer(
    make_daemon: Factory, env: dict[str, str], agent: str, event: str
) -> None:
    make_daemon({"CARE": {**BUCKET, "description": "a <b>bold</b> claim"}})
    text = answer(context(env, "--hook", agent, stdin=payload(event)), event)
    assert "CARE" in text
    if agent == "gemini":  # it escapes < and > inside its own <hook_context> tag: send none
        assert "<" not in text and ">" not in text and "\u2039b\u203abold" in text
    else:
        assert "<b>bold</b>" in text


def test_gemini_session_start_gets_nothing(make_daemon: Factory, env: dict[str, str]) -> None:
    """Gemini CLI drops the previous turn on resume when SessionStart adds context."""
    make_daemon()
    line = silent_failure(context(env, "--hook", "gemini", stdin=payload("SessionStart")))
    assert "BeforeAgent" in line


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["--hook", "claude"], "not json", "not JSON"),
        (["--hook", "codex"], "[1, 2]", "not a JSON object"),
        (["--hook", "gemini"], '{"session_id": 5}', "session_id"),
        (["--hook", "claude"], '{"hook_event_name": ["x"]}', "list"),
        (["--hook", "claude"], payload("Stop"), "'Stop'"),
        (["--hook", "codex"], "[" * 100_000, "nested too deeply"),  # RecursionError
        (["--hook", "claude"], b'{"session_id": "\xff\xfe"}', "not JSON"),  # invalid UTF-8
        (["--hook", "cluade"], payload("UserPromptSubmit"), "invalid choice"),
        (["--hook", "claude", "--bogus"], payload("UserPromptSubmit"), "unrecognized"),
        (
            ["--hook", "codex", "--max-chars", "x"],
            payload("UserPromptSubmit"),
            "invalid positive_int value",
        ),
        (["--hook=gemini", "--help"], payload("BeforeAgent"), "--help"),
    ],
    ids=[
        "not-json",
        "not-object",
        "bad-session",
        "bad-event-type",
        "unknown-event",
        "deep-nesting",
        "invalid-utf8",
        "misspelt-agent",
        "unknown-flag",
        "bad-value",
        "help",
    ],
)
def test_every_failure_is_silent(
    make_daemon: Factory, env: dict[str, str], args: list[str], stdin: str | bytes, says: str
) -> None:
    make_daemon()
    assert says in silent_failure(context(env, *args, stdin=stdin))


def test_no_state_at_all_is_silent(env: dict[str, str]) -> None:
    line = silent_failure(context(env, "--hook", "codex", stdin=payload("SessionStart")))
    assert "no sidecar answering and no snapshot" in line
    plain = context(env)  # outside hook mode the documented exit codes apply
    assert plain.returncode == 3


def test_damaged_snapshot_is_silent(env: dict[str, str], dirs: dict[str, Path]) -> None:
    (dirs["runtime"] / "drives-state.json").write_text("garbage")
    silent_failure(context(env, "--hook", "claude", stdin=payload("UserPromptSubmit")))


def test_megabytes_of_stdin(make_daemon: Factory, env: dict[str, str]) -> None:
    """A prompt pasted into the hook's stdin: read in full below the limit (and the
    answer given), drained and refused above it, so the writer never blocks."""
    make_daemon()
    big = payload("UserPromptSubmit", prompt="x" * (STDIN_MAX // 2))
    answer(context(env, "--hook", "claude", stdin=big), "UserPromptSubmit")
    huge = payload("UserPromptSubmit", prompt="x" * (STDIN_MAX + 1))
    assert "larger than" in silent_failure(context(env, "--hook", "claude", stdin=huge))


def test_stdin_written_but_never_closed(make_daemon: Factory, env: dict[str, str]) -> None:
    """The hook answers from what it got once its stdin wait is over."""
    make_daemon()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctx", "context", "--hook", "gemini"],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(payload("BeforeAgent").encode())
        proc.stdin.flush()  # ...and never closed while the hook runs
        assert proc.wait(timeout=HOOK_TIMEOUT + STDIN_WAIT) == 0
        out = json.loads(proc.stdout.read())
    finally:
        proc.kill()
        proc.communicate()
    assert out["hookSpecificOutput"]["hookEventName"] == "BeforeAgent"


def test_odd_session_ids_still_get_a_cursor(make_daemon: Factory, env: dict[str, str]) -> None:
    make_daemon()
    for session in ("\ud800 lone surrogate", "../../etc/passwd", "x" * 10_000):
        first = context(
            env, "--hook", "codex", "--changes-only", stdin=payload("UserPromptSubmit", session)
        )
        answer(first, "UserPromptSubmit")
        again = context(
            env, "--hook", "codex", "--changes-only", stdin=payload("UserPromptSubmit", session)
        )
        assert again.returncode == 0 and again.stdout == b"", again.stderr


def test_changes_only_never_skips_a_fresh_context(
    make_daemon: Factory, env: dict[str, str]
) -> None:
    """SessionStart at startup, after /clear or a compaction starts a context with no
    drive block in it: --changes-only answers it anyway. A resume keeps its history,
    so there the cursor decides."""
    make_daemon({"B": BUCKET})
    turn = payload("UserPromptSubmit", "s")
    answer(context(env, "--hook", "claude", "--changes-only", stdin=turn), "UserPromptSubmit")
    for source in ("startup", "clear", "compact"):
        start = payload("SessionStart", "s", source=source)
        answer(context(env, "--hook", "claude", "--changes-only", stdin=start), "SessionStart")
    resume = payload("SessionStart", "s", source="resume")
    assert context(env, "--hook", "claude", "--changes-only", stdin=resume).stdout == b""
