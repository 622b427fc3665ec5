"""The proof, with the real agents: after `agentctx hooks install`, Claude Code,
Codex and Gemini CLI send the live drive block to their model.

Each test runs a real sidecar, the stub model (tests/stub_model.py, which records
every request) and the real agent CLI, pinned and installed from npm into a cache
outside the repository (tests/agent_clis.py), with a private HOME. Hooks go in
only through the real `agentctx hooks install`, by the installed console script,
and the agents run without the virtualenv on their PATH: the hook command's
absolute path is what makes it work. Codex runs without
--dangerously-bypass-hook-trust: the trust `hooks install` records is what lets
its hooks run. The tests are skipped only when npm cannot reach its registry.
Wall time: about 36 s for the seven tests on 2 cores once the CLIs are cached (a
first install adds about 11 s with a warm npm cache; the CLIs take 888 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_clis import AGENTS, Agent, Codex, install
from stub_model import StubModel
from support import DaemonProcess

from agentctx.cli.hookmode import AGENT_EVENTS

AGENTCTX = Path(sys.executable).parent / "agentctx"  # the console script pip installed
CLI_TIMEOUT = 60.0
FIRST = "turn one"
DRIVES = {
    # activity-driven: pressure moves only when a test moves it, so the block is exact
    "CARE": {"threshold": 20, "activity_driven": True, "description": "the human"},
    "REST": {"threshold": 30, "activity_driven": True, "description": "recovery"},
}


@pytest.fixture(scope="session")
def agent_clis() -> None:
    reason = install()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    agent_clis: None,
    make_daemon: Callable[..., DaemonProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> Iterator[tuple[Agent, StubModel]]:
    """A sidecar, the stub model and one agent (the test's parameter) in a fresh home."""
    assert AGENTCTX.is_file(), f"{AGENTCTX} missing: install the package (pip install .)"
    # One tick an hour: the block ("satisfied 0.0s ago" counts to the last tick) changes
    # only when a test changes the state, and "satisfied" does not expire mid-test.
    make_daemon(DRIVES, satisfied_hold_s=3600, tick_interval=3600)
    # a short root: Claude Code binds Unix sockets under TMPDIR (108-byte path limit)
    with (
        tempfile.TemporaryDirectory(prefix="agentctx-e2e-") as root,
        StubModel(tmp_path / "requests.jsonl") as stub,
    ):
        yield AGENTS[request.param](Path(root), stub.url, env), stub


def agentctx(agent: Agent, *args: str, stdin: str | None = None) -> str:
    """Run the installed `agentctx` as the user would, in the agent's environment."""
    result = subprocess.run(
        [str(AGENTCTX), *args],
        env=agent.env,
        cwd=agent.project,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert result.returncode == 0, f"agentctx {' '.join(args)}: {result.stderr}"
    return result.stdout


def drive_line(agent: Agent, drive: str = "CARE") -> str:
    """The line the hook renders for *drive* right now, for this agent."""
    event = AGENT_EVENTS[agent.name][-1]
    out = agentctx(
        agent, "context", "--hook", agent.name, stdin=json.dumps({"hook_event_name": event})
    )
    block = json.loads(out)["hookSpecificOutput"]["additionalContext"]
    (line,) = [ln for ln in block.splitlines() if drive in ln]
    return line


def turn(agent: Agent, stub: StubModel, prompt: str) -> list[str]:
    """Run one turn; the lines of the hook contexts its model request carries."""
    before = len(stub.requests())
    agent.turn(prompt)
    sent = [r for r in stub.requests()[before:] if agent.request_path in r["path"]]
    assert sent, f"{agent.name} sent no model request for {prompt!r}"
    body = sent[-1]["body"]
    if prompt != FIRST:
        # the resumed session still has its first turn: the drive block cost no history
        assert FIRST in json.dumps(body), f"{agent.name} lost the first turn on resume"
    return [line for block in agent.blocks(body) for line in block.splitlines()]


AGENT_NAMES = list(AGENTS)


@pytest.mark.parametrize("rig", AGENT_NAMES, ids=AGENT_NAMES, indirect=True)
def test_live_drives_reach_the_model(rig: tuple[Agent, StubModel]) -> None:
    agent, stub = rig
    agent.preseed()
    seeded = json.loads(agent.settings.read_bytes())
    config = agent.config.read_bytes() if isinstance(agent, Codex) else None
    agentctx(agent, "bump", "CARE", "--amount", "13.7")

    assert str(agent.settings) in agentctx(agent, "hooks", "install", agent.name)
    assert "dry run: ok" in agentctx(agent, "hooks", "status", agent.name)
    first = drive_line(agent)
    assert "13.7/20" in first
    assert first in turn(agent, stub, FIRST)

    agentctx(agent, "satisfy", "CARE", "--amount", "5")  # another process, mid-session
    second = drive_line(agent)
    assert "8.7/20" in second
    lines = turn(agent, stub, "turn two")
    assert second in lines and first not in lines

    agentctx(agent, "hooks", "uninstall", agent.name)
    assert json.loads(agent.settings.read_bytes()) == seeded  # their keys and hook intact
    if isinstance(agent, Codex):
        assert agent.config.read_bytes() == config  # the trust entries gone, nothing else
    assert not any("CARE" in line for line in turn(agent, stub, "turn three"))


@pytest.mark.parametrize("rig", AGENT_NAMES, ids=AGENT_NAMES, indirect=True)
def test_changes_only_adds_the_block_only_after_a_change(rig: tuple[Agent, StubModel]) -> None:
    agent, stub = rig
    agent.preseed()
    agentctx(agent, "bump", "CARE", "--amount", "13.7")
    agentctx(agent, "hooks", "install", agent.name, "--changes-only")

    assert drive_line(agent) in turn(agent, stub, FIRST)  # a new session: the block
    assert not any("CARE" in line for line in turn(agent, stub, "turn two"))  # nothing new

    agentctx(agent, "satisfy", "CARE", "--amount", "5")
    changed = drive_line(agent)
    assert "8.7/20" in changed
    assert changed in turn(agent, stub, "turn three")


@pytest.mark.parametrize("rig", ["codex"], ids=["codex"], indirect=True)
def test_codex_runs_only_the_hooks_it_trusts(rig: tuple[Agent, StubModel]) -> None:
    """Without the trust entries `hooks install` records, Codex skips the hooks without
    a word: the other Codex tests pass because of those entries."""
    agent, stub = rig
    agent.preseed()
    agentctx(agent, "bump", "CARE", "--amount", "13.7")
    agentctx(agent, "hooks", "install", agent.name, "--no-trust")
    assert not any("CARE" in line for line in turn(agent, stub, FIRST))
    agentctx(agent, "hooks", "install", agent.name)
    assert drive_line(agent) in turn(agent, stub, "turn two")
