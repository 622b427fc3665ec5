"""The proof, with the real OpenClaw: after `agentctx hooks install openclaw`, its
agent turns carry the live drive block to the model.

Each test runs a real sidecar, the stub model (tests/stub_model.py, which records
every request), and the real openclaw CLI (pinned, installed from npm into a cache
outside the repository: tests/openclaw_rig.py) in a private home whose config a
user already wrote. The plugin goes in only through the installed `agentctx hooks
install openclaw`. The block must be what `agentctx context` prints for the same
state; only its age figure ("0.4s old") depends on the instant of reading, which
the golden files (tests/test_openclaw_render.py) pin down instead.

Skipped only when npm cannot reach its registry. Wall time on 2 cores shared with
other jobs, once Node 24 and openclaw are cached: 130 to 150 s for the two tests
(two `agent --local` turns of 12 to 22 s, a gateway start of ~15 s, nine
`openclaw` calls of ~5 s under `agentctx hooks`; the gateway's HTTP turns take
under a second). A cold cache adds about 45 s of npm installs.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openclaw_rig import AGENTCTX, OpenClaw, agentctx, block_of, install
from stub_model import StubModel
from support import DaemonProcess

from agentctx.render import markdown
from agentctx.state import DriveState

DRIVES = {
    # activity-driven: pressure moves only when a test moves it, so the block is exact
    "CARE": {"threshold": 20, "activity_driven": True, "description": "the human"},
    "REST": {"threshold": 30, "activity_driven": True, "description": "recovery"},
}
# one tick an hour: a state changes only when a test changes it
SIDECAR = {"tick_interval": 3600, "satisfied_hold_s": 3600}
AGE = re.compile(r"(live from the socket|from the snapshot file), \d+(\.\d)?(s|min|h) old")


@pytest.fixture(scope="module")
def openclaw_cli() -> None:
    reason = install()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def rig(
    openclaw_cli: None,
    make_daemon: Callable[..., DaemonProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> Iterator[tuple[OpenClaw, StubModel, DaemonProcess]]:
    """A sidecar, the stub model and OpenClaw in a fresh home with the user's config."""
    assert AGENTCTX.is_file(), f"{AGENTCTX} missing: install the package (pip install .)"
    daemon = make_daemon(DRIVES, **SIDECAR)
    with (
        tempfile.TemporaryDirectory(prefix="agentctx-oc-") as root,
        StubModel(tmp_path / "requests.jsonl") as stub,
    ):
        yield OpenClaw(Path(root), stub.openai_url, env), stub, daemon


def expected_block(daemon: DaemonProcess, source: str) -> str:
    """What `agentctx context` prints for the sidecar's state now (the snapshot holds
    exactly the state it publishes), the age figure left open."""
    return markdown(DriveState(daemon.read_snapshot(), source))


def same_block(sent: str | None, expected: str) -> bool:
    if sent is None:
        return False
    (age,) = AGE.findall(sent) or [None]
    assert age is not None, f"no age in the block's freshness line:\n{sent}"
    return AGE.sub("AGE", sent) == AGE.sub("AGE", expected)


def turn(claw: OpenClaw, stub: StubModel, prompt: str, run: Callable[[str], Any]) -> str | None:
    """Run one turn; the block in front of its prompt in the one model request it made."""
    before = len(stub.requests())
    run(prompt)
    sent = stub.chats(before)
    assert len(sent) == 1, f"{len(sent)} model requests for {prompt!r}"
    return block_of(sent[0], prompt)


def test_local_turns_read_the_sidecar_and_uninstall_leaves_the_rest(
    rig: tuple[OpenClaw, StubModel, DaemonProcess],
) -> None:
    """`openclaw agent --local` (no plugin service runs): the hook reads the state itself."""
    claw, stub, daemon = rig
    seeded = claw.seed()
    agentctx(claw, "bump", "CARE", "--amount", "13.7")

    said = agentctx(claw, "hooks", "install", "openclaw")
    assert "linked from" in said and "restart a running gateway" in said, said

    # (a) the block with the current pressure, exactly where OpenClaw puts prependContext
    sent = turn(claw, stub, "turn one", claw.local_turn)
    assert same_block(sent, expected_block(daemon, "socket")), sent
    assert sent is not None and "🟢 CARE: 13.7/20 (68%, available) — the human" in sent

    said = agentctx(claw, "hooks", "uninstall", "openclaw")
    assert "removed the plugin's link and install record and its settings" in said, said
    said = agentctx(claw, "hooks", "status", "openclaw", code=1)
    assert said.startswith("openclaw: not installed"), said
    # (d) a change a plugin would show, but none is installed any more
    agentctx(claw, "bump", "REST", "--amount", "25")
    assert turn(claw, stub, "turn two", claw.local_turn) is None
    after = claw.config()
    assert "agentctx" not in json.dumps(after["plugins"]), after["plugins"]
    for key, value in seeded.items():
        if key == "plugins":  # OpenClaw keeps an emptied "entries" where ours was
            assert after[key] == {**value, "entries": {}}, after[key]
        else:
            assert after[key] == value, key


def test_gateway_service_pushes_live_changes(
    rig: tuple[OpenClaw, StubModel, DaemonProcess], tmp_path: Path
) -> None:
    """Under `openclaw gateway run` the plugin's service holds a live subscription, and
    it is what answers: with the sidecar's paths gone from the gateway's view, a
    satisfy still reaches the next turn."""
    claw, stub, daemon = rig
    claw.seed()
    # the gateway finds the sidecar through a link the test can take away later
    view = tmp_path / "gateway-view"
    view.symlink_to(daemon.runtime, target_is_directory=True)
    claw.env["AGENTCTX_RUNTIME_DIR"] = str(view)
    agentctx(claw, "bump", "CARE", "--amount", "13.7")
    agentctx(claw, "hooks", "install", "openclaw", "--changes-only")
    said = agentctx(claw, "hooks", "status", "openclaw")
    assert "✗" not in said and "dry run: ok" in said and "(live, seq" in said, said

    with claw.gateway() as gateway:
        gateway.wait_for(f"agentctx: live: {view}/sidecar.sock")
        # (a) through the gateway: the first turn of the session gets the block
        first = turn(claw, stub, "turn one", gateway.turn)
        assert same_block(first, expected_block(daemon, "socket")), first
        # (c) unchanged: no block
        assert turn(claw, stub, "turn two", gateway.turn) is None

        # (e) nothing left at the paths the plugin would read by itself...
        view.unlink()
        view.mkdir()
        # (b) ...yet a satisfy from another process reaches the next turn, live
        sidecar_env = {**claw.env, "AGENTCTX_RUNTIME_DIR": str(daemon.runtime)}
        agentctx(claw, "satisfy", "CARE", "--depth", "moderate", env=sidecar_env)
        sent = turn(claw, stub, "turn three", gateway.turn)
        assert same_block(sent, expected_block(daemon, "socket")), sent
        assert sent != first and "✓ satisfied" in sent, sent
