"""Where every agentctx file lives.

The daemon and every client compute paths with these functions, from the same
environment, so they always agree. systemd's `$STATE_DIRECTORY` is deliberately
ignored: before systemd 254 a user unit's `StateDirectory=` maps to ~/.config,
which would split the spool between two places (docs/design.md, "Files").

Plain `str` paths and `os.path` only: this module is on the hook's start-up path,
where importing pathlib alone costs a few milliseconds. Callers that want Path
objects wrap the result.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = [
    "ACTIONS_NAME",
    "APP",
    "DURABLE_NAME",
    "LOCK_NAME",
    "SNAPSHOT_NAME",
    "SOCKET_NAME",
    "SPOOL_NAME",
    "config_home",
    "config_path",
    "runtime_dir",
    "snapshot_path",
    "socket_path",
    "spool_dir",
    "state_dir",
    "unit_dir",
]

APP = "agentctx"
SOCKET_NAME = "sidecar.sock"
SNAPSHOT_NAME = "drives-state.json"
LOCK_NAME = "sidecar.lock"
DURABLE_NAME = "state.json"
SPOOL_NAME = "spool"
ACTIONS_NAME = "actions"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def runtime_dir() -> str:
    """`$AGENTCTX_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/agentctx`, else `/tmp/agentctx-UID`."""
    explicit = _env("AGENTCTX_RUNTIME_DIR")
    if explicit:
        return explicit
    xdg = _env("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, APP)
    return os.path.join("/tmp", f"{APP}-{os.getuid()}")


def state_dir() -> str:
    """`$AGENTCTX_STATE_DIR`, else `$XDG_STATE_HOME/agentctx` (default ~/.local/state)."""
    explicit = _env("AGENTCTX_STATE_DIR")
    if explicit:
        return explicit
    base = _env("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, APP)


def config_home() -> str:
    """`$XDG_CONFIG_HOME`, default ~/.config."""
    return _env("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def config_path() -> str:
    """`$AGENTCTX_CONFIG`, else `$XDG_CONFIG_HOME/agentctx/drives.toml` (default ~/.config)."""
    return _env("AGENTCTX_CONFIG") or os.path.join(config_home(), APP, "drives.toml")


def unit_dir() -> str:
    """Where systemd looks for a user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    return os.path.join(config_home(), "systemd", "user")


def socket_path() -> str:
    return os.path.join(runtime_dir(), SOCKET_NAME)


def snapshot_path() -> str:
    return os.path.join(runtime_dir(), SNAPSHOT_NAME)


def spool_dir() -> str:
    return os.path.join(state_dir(), SPOOL_NAME)
