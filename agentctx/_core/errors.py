"""The one exception tree of agentctx and its sidecar.

    AgentctxError
    ├── UsageError           a command line that cannot be acted on
    ├── ConfigError          a config file is missing, unreadable or invalid
    ├── StoreError           a state, snapshot or spool file cannot be written or read
    ├── UnsafePath           a directory or file we would use is not private to us
    ├── AlreadyRunning       another sidecar owns these directories
    ├── NoUserManager        no systemd user manager to install into
    ├── AgentCliFailed       an agent's own CLI (openclaw) failed a step we asked of it
    ├── DaemonUnavailable    no sidecar answering (absent, refused, silent)
    ├── ProtocolError        a peer broke wire protocol v1
    │   └── FrameTooLarge    ... with a length header above the limit
    ├── RequestFailed        a request refused with a wire error code
    │   └── UnknownDrive     ... because it names a drive the config lacks
    └── ServeError           `agentctx web` cannot serve (address, extra missing)

Foreign exceptions (OSError, msgspec, anyio) are translated into these at the
boundary where they happen, so callers only ever catch ours. Every message is
one line, fit to print as it is.

Stdlib only, no typing at run time: this module is on the hook's start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final

__all__ = [
    "E_BAD_FRAME",
    "E_BAD_REQUEST",
    "E_EXPECTED_HELLO",
    "E_FRAME_TOO_LARGE",
    "E_HELLO_TIMEOUT",
    "E_INTERNAL",
    "E_NOT_DURABLE",
    "E_SLOW_CONSUMER",
    "E_TOO_MANY_CLIENTS",
    "E_UNAVAILABLE",
    "E_UNKNOWN_DRIVE",
    "E_UNKNOWN_TYPE",
    "E_UNSUPPORTED_PROTO",
    "AgentCliFailed",
    "AgentctxError",
    "AlreadyRunning",
    "ConfigError",
    "DaemonUnavailable",
    "FrameTooLarge",
    "NoUserManager",
    "ProtocolError",
    "RequestFailed",
    "ServeError",
    "StoreError",
    "UnknownDrive",
    "UnsafePath",
    "UsageError",
]

# Wire error codes: the `code` of an `error` frame and of RequestFailed. Clients
# branch on them, so they are part of protocol v1 (docs/protocol.md lists them).
E_BAD_FRAME: Final = "bad_frame"  # not JSON, not an object, no type; framing lost
E_FRAME_TOO_LARGE: Final = "frame_too_large"
E_UNKNOWN_TYPE: Final = "unknown_type"
E_BAD_REQUEST: Final = "bad_request"  # a known type with wrong fields or values
E_EXPECTED_HELLO: Final = "expected_hello"
E_HELLO_TIMEOUT: Final = "hello_timeout"
E_UNSUPPORTED_PROTO: Final = "unsupported_proto"
E_UNKNOWN_DRIVE: Final = "unknown_drive"
E_NOT_DURABLE: Final = "not_durable"  # applied but not saved: retry with the same request_id
# A follower could not get the request confirmed by the agent's home sidecar (cut off
# from NATS, or no answer in time): spool it or retry with the same request_id.
E_UNAVAILABLE: Final = "unavailable"
E_TOO_MANY_CLIENTS: Final = "too_many_clients"
E_SLOW_CONSUMER: Final = "slow_consumer"
E_INTERNAL: Final = "internal"


class AgentctxError(Exception):
    """Base of every error agentctx raises on purpose."""


class UsageError(AgentctxError):
    """A command line that cannot be acted on (a bad value argparse cannot check)."""


class ConfigError(AgentctxError):
    """A config file is missing, unreadable or invalid: `file: key: what was expected`."""


class StoreError(AgentctxError):
    """A state, snapshot, spool or history file could not be written or read back."""


class UnsafePath(AgentctxError):
    """A directory or file we would use is a symlink, someone else's, or not private."""


class AlreadyRunning(AgentctxError):
    """Another sidecar already owns this runtime or state directory."""


class NoUserManager(AgentctxError):
    """`systemctl --user` cannot reach a user manager (or systemctl is missing)."""


class AgentCliFailed(AgentctxError):
    """An agent's own CLI (e.g. `openclaw`) could not be run, failed a step of
    `agentctx hooks`, or answered something we cannot read: `command: what it said`."""


class DaemonUnavailable(AgentctxError):
    """The sidecar could not be reached: no socket, refused, or silent past a timeout."""


class ProtocolError(AgentctxError):
    """A peer broke wire protocol v1: a bad frame, bad JSON, an unexpected message."""


class FrameTooLarge(ProtocolError):
    """A length header announced more than the allowed frame size."""


class RequestFailed(AgentctxError):
    """A request refused with a wire error code: by the sidecar (an `error` frame), by
    the hub, or already by the schema check before it was sent.

    `code` is one of the protocol's E_* codes; `id` and `request_id` say which request
    it answers when that is known (they go back to the client in the `error` frame)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        id: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.id = id
        self.request_id = request_id


class ServeError(AgentctxError):
    """`agentctx web` cannot serve: a bad or refused listen address, a port in use, or
    the `web` extra (Starlette, uvicorn, prometheus-client) not installed."""


class UnknownDrive(RequestFailed):
    """A request named a drive the config does not have."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            E_UNKNOWN_DRIVE, f"unknown drive {name!r} (known: {', '.join(self.known)})"
        )
