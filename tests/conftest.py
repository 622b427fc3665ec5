from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest
from support import DaemonProcess, write_config

from agentctx._core.config import parse_config
from agentctx._core.layout import Layout
from sidecar.daemon import Daemon

# A drive that grows 1.0 per second, so wall-clock growth is visible in a test.
FAST = {"threshold": 100.0, "rate_per_hour": 3600.0, "description": "fast"}
# Activity-driven drives with room to spare: only requests move them.
BUCKET = {"threshold": 1e9, "activity_driven": True, "description": "counter"}


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """A private 0700 runtime dir and a state dir, as the daemon expects them."""
    runtime = tmp_path / "run"
    state = tmp_path / "state"
    runtime.mkdir(mode=0o700)
    state.mkdir(mode=0o700)
    return {"runtime": runtime, "state": state, "root": tmp_path}


@pytest.fixture
def env(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing daemon and clients at the temp dirs (also set in-process)."""
    values = {
        "AGENTCTX_RUNTIME_DIR": str(dirs["runtime"]),
        "AGENTCTX_STATE_DIR": str(dirs["state"]),
        "XDG_CONFIG_HOME": str(dirs["root"] / "config"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AGENTCTX_CONFIG", raising=False)
    return dict(os.environ)


@pytest.fixture
def make_daemon(
    env: dict[str, str], dirs: dict[str, Path]
) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: make_daemon(drives=..., **sidecar) -> a started DaemonProcess."""
    started: list[DaemonProcess] = []

    def factory(
        drives: dict[str, dict[str, object]] | None = None, start: bool = True, **sidecar: object
    ) -> DaemonProcess:
        config = None
        if drives is not None:
            config = write_config(dirs["root"] / "drives.toml", drives, **sidecar)
        d = DaemonProcess(env, config, dirs["root"] / "daemon.log")
        started.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def inproc_config() -> str:
    """Override in a test module to change the in-process daemon's config."""
    return "[sidecar]\ntick_interval = 3600\n[drives.A]\nthreshold = 1e9\nactivity_driven = true\n"


@pytest.fixture
async def inproc(
    dirs: dict[str, Path], env: dict[str, str], inproc_config: str
) -> AsyncIterator[Daemon]:
    """A real Daemon serving on its socket inside the test's event loop."""
    cfg = parse_config(inproc_config.encode(), "inproc.toml")
    daemon = Daemon(cfg, Layout(dirs["runtime"], dirs["state"]))
    with daemon.claimed() as sock:
        daemon.open()
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.serve, sock)
            yield daemon
            tg.cancel_scope.cancel()
        daemon.close()
