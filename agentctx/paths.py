"""Where every agentctx file lives.

The daemon and every client compute paths with these functions, from the same
environment, so they always agree. systemd's `$STATE_DIRECTORY` is deliberately
ignored: before systemd 254 a user unit's `StateDirectory=` maps to ~/.config,
which would split the spool between two places (DESIGN.md, Files).

Stdlib only: this module is on the hook's fast path.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "APP",
    "config_path",
    "durable_path",
    "lock_path",
    "runtime_dir",
    "snapshot_path",
    "socket_path",
    "spool_dir",
    "state_dir",
]

APP = "agentctx"
SOCKET_NAME = "sidecar.sock"
SNAPSHOT_NAME = "drives-state.json"
LOCK_NAME = "sidecar.lock"
DURABLE_NAME = "state.json"
SPOOL_NAME = "spool"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def runtime_dir() -> Path:
    """`$AGENTCTX_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/agentctx`, else `/tmp/agentctx-UID`."""
    explicit = _env("AGENTCTX_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    xdg = _env("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / APP
    return Path("/tmp") / f"{APP}-{os.getuid()}"


def state_dir() -> Path:
    """`$AGENTCTX_STATE_DIR`, else `$XDG_STATE_HOME/agentctx` (default ~/.local/state)."""
    explicit = _env("AGENTCTX_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = _env("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / APP


def config_path() -> Path:
    """`$AGENTCTX_CONFIG`, else `$XDG_CONFIG_HOME/agentctx/drives.toml` (default ~/.config)."""
    explicit = _env("AGENTCTX_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = _env("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / APP / "drives.toml"


def socket_path(runtime: Path | None = None) -> Path:
    return (runtime or runtime_dir()) / SOCKET_NAME


def snapshot_path(runtime: Path | None = None) -> Path:
    return (runtime or runtime_dir()) / SNAPSHOT_NAME


def lock_path(runtime: Path | None = None) -> Path:
    return (runtime or runtime_dir()) / LOCK_NAME


def durable_path(state: Path | None = None) -> Path:
    return (state or state_dir()) / DURABLE_NAME


def spool_dir(state: Path | None = None) -> Path:
    return (state or state_dir()) / SPOOL_NAME
