"""One sidecar's files, as Paths: the runtime dir and the state dir, and what is in them.

The daemon holds one `Layout` for its life; clients that need more than the socket
and snapshot (the doctor, the spool, the history) build the same one from the same
environment (`Layout.resolve()`), so both sides always name the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentctx._core import paths

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    runtime: Path
    state: Path

    @classmethod
    def resolve(
        cls, runtime: Path | None = None, state: Path | None = None, agent: str | None = None
    ) -> Layout:
        """*agent*'s dirs (see agentctx._core.paths.agent_name): in the explicit base dirs
        where given, else in the environment's."""
        name = paths.agent_name(agent)
        run = runtime or Path(paths.runtime_base())
        keep = state or Path(paths.state_base())
        if name:
            run, keep = run / name, keep / name
        return cls(run, keep)

    @property
    def socket(self) -> Path:
        return self.runtime / paths.SOCKET_NAME

    @property
    def snapshot(self) -> Path:
        return self.runtime / paths.SNAPSHOT_NAME

    @property
    def lock(self) -> Path:
        return self.runtime / paths.LOCK_NAME

    @property
    def durable(self) -> Path:
        return self.state / paths.DURABLE_NAME

    @property
    def spool(self) -> Path:
        return self.state / paths.SPOOL_NAME

    @property
    def actions(self) -> Path:
        """Running actions' markers and output (see sidecar.actions)."""
        return self.state / paths.ACTIONS_NAME
