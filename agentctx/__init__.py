"""agentctx: live drive state for AI agent sessions.

    import agentctx
    state = agentctx.read()                  # one-shot, fast: socket, else snapshot file
    agentctx.satisfy("CARE", depth="deep")   # acked by the sidecar, or spooled if it is down
    async with agentctx.subscribe() as updates: ...   # live (asyncio or trio)
    with agentctx.follow() as updates: ...             # live, a blocking iterator
    with agentctx.Live() as live: ...                  # live, in a thread, for sync code

Each takes `agent="NAME"` for a named agent's sidecar (default: `$AGENTCTX_AGENT`,
else the unnamed one; see agentctx._core.paths).

Names are imported lazily: `import agentctx` costs almost nothing, and
`agentctx.read()` never loads msgspec, anyio or watchfiles (hook start-up time).
"""

from __future__ import annotations

# typing is not imported at run time: this module is on the hook's start-up path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "__version__": "agentctx._core.version",
    "read": "agentctx.oneshot",
    "read_snapshot": "agentctx.oneshot",
    "DriveState": "agentctx.state",
    "DriveEvent": "agentctx.state",
    "Transition": "agentctx.state",
    "satisfy": "agentctx.requests",
    "bump": "agentctx.requests",
    "reset": "agentctx.requests",
    "Receipt": "agentctx.requests",
    "subscribe": "agentctx.subscription",
    "Subscription": "agentctx.subscription",
    "follow": "agentctx.follower",
    "Follower": "agentctx.follower",
    "Live": "agentctx.live",
    "markdown": "agentctx.render",
    "AgentctxError": "agentctx._core.errors",
    "DaemonUnavailable": "agentctx._core.errors",
    "RequestFailed": "agentctx._core.errors",
    "StoreError": "agentctx._core.errors",
    "ProtocolError": "agentctx._core.errors",
    "ConfigError": "agentctx._core.errors",
    "UnknownDrive": "agentctx._core.errors",
}

__all__ = [
    "AgentctxError",
    "ConfigError",
    "DaemonUnavailable",
    "DriveEvent",
    "DriveState",
    "Follower",
    "Live",
    "ProtocolError",
    "Receipt",
    "RequestFailed",
    "StoreError",
    "Subscription",
    "Transition",
    "UnknownDrive",
    "__version__",
    "bump",
    "follow",
    "markdown",
    "read",
    "read_snapshot",
    "reset",
    "satisfy",
    "subscribe",
]

if TYPE_CHECKING:
    from agentctx._core.errors import (
        AgentctxError,
        ConfigError,
        DaemonUnavailable,
        ProtocolError,
        RequestFailed,
        StoreError,
        UnknownDrive,
    )
    from agentctx._core.version import __version__
    from agentctx.follower import Follower, follow
    from agentctx.live import Live
    from agentctx.oneshot import read, read_snapshot
    from agentctx.render import markdown
    from agentctx.requests import Receipt, bump, reset, satisfy
    from agentctx.state import DriveEvent, DriveState, Transition
    from agentctx.subscription import Subscription, subscribe


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentctx' has no attribute {name!r}")
    # __import__ rather than importlib: importing importlib costs the hook ~1 ms
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value
    return value
