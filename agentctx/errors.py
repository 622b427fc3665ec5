"""The one small exception tree of agentctx and the sidecar.

Foreign exceptions (OSError, msgspec, anyio) are translated into these at the
boundary where they happen, so callers only ever catch ours.
"""

from __future__ import annotations

__all__ = [
    "AgentctxError",
    "ConfigError",
    "DaemonUnavailable",
    "FrameTooLarge",
    "ProtocolError",
    "RequestFailed",
    "StoreError",
]


class AgentctxError(Exception):
    """Base of every error agentctx raises on purpose."""


class ConfigError(AgentctxError):
    """A config file is missing, unreadable or invalid. The message is one line."""


class ProtocolError(AgentctxError):
    """A peer broke wire protocol v1 (bad frame, bad JSON, unexpected message)."""


class FrameTooLarge(ProtocolError):
    """A length header announced more than the allowed frame size."""


class DaemonUnavailable(AgentctxError):
    """The sidecar could not be reached (absent, refused, or silent past a timeout)."""


class RequestFailed(AgentctxError):
    """The sidecar answered a request with an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StoreError(AgentctxError):
    """A state, snapshot or spool file could not be written or read back."""
