"""A hypothesis state machine: the real hub, engine and files against a simple model.

Rules tick, let time pass, satisfy, bump, reset, crash (the hub and its writer tasks
vanish without a final save, as under kill -9), restart (restore from the files) and
read. Every acknowledged request must survive every crash, exactly once, and the
pressures must match the model's plain arithmetic; seq never goes back.
"""

from __future__ import annotations

import tempfile
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentctx._core.config import parse_config
from agentctx._core.layout import Layout
from agentctx._core.protocol import DEPTHS, Bump, Reset, Satisfy
from sidecar.hub import Hub
from sidecar.restore import restore

T0 = 1_800_000_000.0
RATE = 3.6  # per hour, for TIME
CAP = 15.0  # threshold 10 x max_pressure_ratio 1.5
CONFIG = parse_config(
    b"[drives.TIME]\nthreshold = 10\nrate_per_hour = 3.6\n"
    b"[drives.WORK]\nthreshold = 10\nactivity_driven = true\n",
    "model.toml",
)
drives = st.sampled_from(["TIME", "WORK"])
running = precondition(lambda self: self.hub is not None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class HubModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="acx-model-")
        root = Path(self.tmp.name)
        (root / "run").mkdir(mode=0o700)
        (root / "state").mkdir(mode=0o700)
        self.paths = Layout(root / "run", root / "state")
        self.clock = Clock()
        self.portal_cm = start_blocking_portal()
        self.portal: BlockingPortal = self.portal_cm.__enter__()
        self.hub: Hub | None = None
        self.writers: Future[Any] | None = None
        self.model = {"TIME": 0.0, "WORK": 0.0}
        self.model_time = T0
        self.max_seq = 0
        self.start()

    # --- the system -------------------------------------------------------------

    def start(self) -> None:
        restored = restore(CONFIG, self.paths, self.clock.now)
        self.hub = Hub(
            restored.engine,
            boot_id=uuid.uuid4().hex,
            seq=restored.seq,
            durable_path=self.paths.durable,
            snapshot_path=self.paths.snapshot,
            requests=restored.requests,
            clock=self.clock,
        )
        self.writers = self.portal.start_task_soon(self.hub.run)
        self.portal.call(self.hub.save)
        self.portal.call(self.hub.tick)

    def apply(self, req: Bump | Satisfy | Reset) -> int:
        assert self.hub is not None
        seq: int = self.portal.call(self.hub.apply, req)
        assert seq > self.max_seq
        self.max_seq = seq
        return seq

    # --- the model ----------------------------------------------------------------

    def grow_model(self) -> None:
        hours = (self.clock.now - self.model_time) / 3600
        self.model["TIME"] = min(self.model["TIME"] + RATE * hours, CAP)
        self.model_time = self.clock.now

    # --- rules ----------------------------------------------------------------------

    @rule(seconds=st.floats(0.0, 7200.0))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @running
    @rule()
    def tick(self) -> None:
        assert self.hub is not None
        self.portal.call(self.hub.tick)

    @running
    @rule(drive=drives, depth=st.sampled_from(sorted(DEPTHS)))
    def satisfy(self, drive: str, depth: str) -> None:
        self.apply(Satisfy(id=1, request_id=uuid.uuid4().hex, drive=drive, depth=depth))  # type: ignore[arg-type]
        self.grow_model()
        self.model[drive] = max(0.0, self.model[drive] * (1 - DEPTHS[depth]))

    @running
    @rule(drive=drives, amount=st.floats(0.0, 20.0))
    def bump(self, drive: str, amount: float) -> None:
        self.apply(Bump(id=1, request_id=uuid.uuid4().hex, drive=drive, amount=amount))
        self.grow_model()
        p = self.model[drive]
        self.model[drive] = max(p, min(p + amount, CAP))

    @running
    @rule(drive=st.one_of(st.none(), drives))
    def reset(self, drive: str | None) -> None:
        self.apply(Reset(id=1, request_id=uuid.uuid4().hex, drive=drive))
        self.grow_model()
        for name in [drive] if drive else list(self.model):
            self.model[name] = 0.0

    @running
    @rule()
    def retry_last_request(self) -> None:
        """A client that lost its ack sends the same request again: not applied twice."""
        assert self.hub is not None
        if not self.hub.requests:
            return
        request_id, seq = next(reversed(self.hub.requests.items()))
        again: int = self.portal.call(
            self.hub.apply, Bump(id=2, request_id=request_id, drive="WORK", amount=5.0)
        )
        assert again == seq

    @running
    @rule()
    def crash(self) -> None:
        assert self.writers is not None
        self.writers.cancel()  # writer tasks gone, nothing more saved, no close()
        self.hub = None

    @precondition(lambda self: self.hub is None)
    @rule()
    def restart(self) -> None:
        self.start()

    @running
    @invariant()
    def state_matches_model(self) -> None:
        assert self.hub is not None
        self.portal.call(self.hub.tick)  # bring it to the clock's now
        self.grow_model()
        state = self.hub.state()
        for name, expected in self.model.items():
            assert state.drives[name].pressure == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert state.seq >= self.max_seq
        self.max_seq = state.seq

    def teardown(self) -> None:
        if self.writers is not None:
            self.writers.cancel()
        self.portal_cm.__exit__(None, None, None)
        self.tmp.cleanup()


HubModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_hub_against_model = HubModel.TestCase
