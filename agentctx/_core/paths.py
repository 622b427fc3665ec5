"""Where every agentctx file lives.

The daemon and every client compute paths with these functions, from the same
environment, so they always agree. systemd's `$STATE_DIRECTORY` is deliberately
ignored: before systemd 254 a user unit's `StateDirectory=` maps to ~/.config,
which would split the spool between two places (docs/design.md, "Files").

Named agents: several agents on one machine each get their own sidecar, whose
files live in a `NAME/` subdirectory of the runtime and state dirs. The name comes
from the caller (`agent=`), else from `$AGENTCTX_AGENT` (what `--agent` sets); no
name means the unnamed agent and the plain dirs, exactly as before names existed.

Plain `str` paths and `os.path` only: this module is on the hook's start-up path,
where importing pathlib alone costs a few milliseconds. Callers that want Path
objects wrap the result.
"""

from __future__ import annotations

import os

from agentctx._core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = [
    "ACTIONS_NAME",
    "AGENT_ENV",
    "AGENT_MAX",
    "APP",
    "CONFIG_NAME",
    "DURABLE_NAME",
    "LOCK_NAME",
    "SNAPSHOT_NAME",
    "SOCKET_NAME",
    "SPOOL_NAME",
    "agent_name",
    "check_agent",
    "config_home",
    "config_path",
    "runtime_base",
    "runtime_dir",
    "snapshot_path",
    "socket_path",
    "spool_dir",
    "start_hint",
    "state_base",
    "state_dir",
    "take_agent_flag",
    "unit_dir",
    "unit_name",
]

APP = "agentctx"
SOCKET_NAME = "sidecar.sock"
SNAPSHOT_NAME = "drives-state.json"
CONFIG_NAME = "drives.toml"
LOCK_NAME = "sidecar.lock"
DURABLE_NAME = "state.json"
SPOOL_NAME = "spool"
ACTIONS_NAME = "actions"
AGENT_ENV = "AGENTCTX_AGENT"
AGENT_MAX = 64
# An agent name is a directory name, a NATS subject token, part of a JetStream stream
# name and a KV key: these characters are safe in all four.
_AGENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Names the unnamed agent's own dirs already use (or that stand for it on NATS).
_RESERVED = frozenset({SPOOL_NAME, ACTIONS_NAME, "cursors", "default"})


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def check_agent(name: str) -> str:
    """*name* if it is a valid agent name, else UsageError saying what is allowed."""
    if not 0 < len(name) <= AGENT_MAX or not _AGENT_CHARS.issuperset(name):
        raise UsageError(
            f"agent name {name!r}: use 1 to {AGENT_MAX} of A-Z a-z 0-9 _ - "
            "(it names a directory and a NATS subject)"
        )
    if name in _RESERVED:
        raise UsageError(f"agent name {name!r} is reserved; choose another")
    return name


def agent_name(agent: str | None = None) -> str | None:
    """The agent meant: *agent* if given ("" for the unnamed one), else `$AGENTCTX_AGENT`;
    None for the unnamed agent. UsageError for an invalid name."""
    name = _env(AGENT_ENV) if agent is None else agent
    return check_agent(name) if name else None


def start_hint(agent: str | None = None) -> str:
    """How a user starts the agent's sidecar by hand (for "start it: ..." hints)."""
    name = agent_name(agent)
    return f"agentctx-sidecar --agent {name} run" if name else "agentctx-sidecar run"


def unit_name(agent: str | None = None) -> str:
    """The agent's systemd service: an instance of the template for a named agent."""
    name = agent_name(agent)
    return f"agentctx-sidecar@{name}.service" if name else "agentctx-sidecar.service"


def take_agent_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """`--agent NAME` (or `--agent=NAME`) taken out of a command line wherever it is,
    before or after the subcommand (the last one wins): it decides every path, so a
    command reads it before anything else, the hook's fast path included. The rest
    of the command line is returned as it was; None when there was no such flag."""
    agent, rest, args = None, [], list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            rest += [arg, *args]
            break
        if arg == "--agent" and args:
            agent = args.pop(0)
        elif arg.startswith("--agent="):
            agent = arg.partition("=")[2]
        else:
            rest.append(arg)
    return agent, rest


def _for_agent(base: str, agent: str | None) -> str:
    name = agent_name(agent)
    return os.path.join(base, name) if name else base


def runtime_base() -> str:
    """`$AGENTCTX_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/agentctx`, else `/tmp/agentctx-UID`:
    the unnamed agent's runtime dir, holding each named agent's in `NAME/`."""
    explicit = _env("AGENTCTX_RUNTIME_DIR")
    if explicit:
        return explicit
    xdg = _env("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, APP)
    return os.path.join("/tmp", f"{APP}-{os.getuid()}")


def runtime_dir(agent: str | None = None) -> str:
    """The runtime dir (socket, snapshot, lock) of *agent* (see `agent_name`)."""
    return _for_agent(runtime_base(), agent)


def state_base() -> str:
    """`$AGENTCTX_STATE_DIR`, else `$XDG_STATE_HOME/agentctx` (default ~/.local/state)."""
    explicit = _env("AGENTCTX_STATE_DIR")
    if explicit:
        return explicit
    base = _env("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, APP)


def state_dir(agent: str | None = None) -> str:
    """The state dir (durable state, spool, history) of *agent* (see `agent_name`)."""
    return _for_agent(state_base(), agent)


def config_home() -> str:
    """`$XDG_CONFIG_HOME`, default ~/.config."""
    return _env("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def config_path(agent: str | None = None) -> str:
    """`$AGENTCTX_CONFIG`, else the agent's own `$XDG_CONFIG_HOME/agentctx/NAME/drives.toml`
    if it exists, else `$XDG_CONFIG_HOME/agentctx/drives.toml` (default ~/.config): named
    agents share that one unless they have their own."""
    explicit = _env("AGENTCTX_CONFIG")
    if explicit:
        return explicit
    shared = os.path.join(config_home(), APP, CONFIG_NAME)
    name = agent_name(agent)
    if name:
        own = os.path.join(config_home(), APP, name, CONFIG_NAME)
        if os.path.exists(own):
            return own
    return shared


def unit_dir() -> str:
    """Where systemd looks for a user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    return os.path.join(config_home(), "systemd", "user")


def socket_path(agent: str | None = None) -> str:
    return os.path.join(runtime_dir(agent), SOCKET_NAME)


def snapshot_path(agent: str | None = None) -> str:
    return os.path.join(runtime_dir(agent), SNAPSHOT_NAME)


def spool_dir(agent: str | None = None) -> str:
    return os.path.join(state_dir(agent), SPOOL_NAME)
