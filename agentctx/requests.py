"""`satisfy()`, `bump()`, `reset()`: acknowledged by the daemon, or spooled.

A request goes over the socket and waits for its ack (the daemon acks only once
the change is on disk). When the daemon is down, silent, or could not save, the
request is written durably to the spool instead and the call says "queued": the
daemon applies it exactly once when it is back, at the instant it was made. The
request_id makes that safe even when the ack was merely lost: a request applied
and then spooled again is recognised and not applied twice.
"""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Final, Literal

from agentctx._core import paths
from agentctx._core.errors import (
    E_BAD_REQUEST,
    E_NOT_DURABLE,
    E_UNAVAILABLE,
    DaemonUnavailable,
    ProtocolError,
    RequestFailed,
    StoreError,
    UnknownDrive,
)
from agentctx._core.protocol import (
    DEPTHS,
    Bump,
    Depth,
    Request,
    Reset,
    Satisfy,
    decode_client,
    drive_key,
    encode,
    encode_message,
)
from agentctx._core.spool import spool_request
from agentctx.blocking import BlockingConnection
from agentctx.oneshot import read_snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agentctx._core.paths import StrPath

__all__ = ["ACK_TIMEOUT", "Receipt", "bump", "reset", "satisfy", "submit"]

ACK_TIMEOUT: Final = 2.0  # connect + durable save + ack; past this the request is spooled
_ID: Final = 1


class Receipt:
    """What happened to a request: "acked" (with the seq that reflects it) or
    "queued" (durably spooled; the daemon applies it when it is back). `why` says
    why it was queued, in the sidecar's words when it answered (a follower cut off
    from its home, a disk that failed)."""

    __slots__ = ("path", "request_id", "seq", "status", "why")

    def __init__(
        self,
        status: Literal["acked", "queued"],
        request_id: str,
        seq: int | None = None,
        path: Path | None = None,
        why: str = "",
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.seq = seq
        self.path = path
        self.why = why

    def __repr__(self) -> str:
        where = f"seq={self.seq}" if self.status == "acked" else f"spool={self.path}"
        return f"Receipt({self.status}, {where}, request_id={self.request_id!r})"


def _new_id() -> str:
    return str(uuid.uuid4())


def satisfy(
    drive: str,
    depth: Depth | None = None,
    amount: float | None = None,
    reason: str | None = None,
    *,
    request_id: str | None = None,
    timeout: float = ACK_TIMEOUT,
    agent: str | None = None,
) -> Receipt:
    """Cut *drive*'s pressure by a depth (shallow/moderate/deep/full) or an amount."""
    if depth is not None and depth not in DEPTHS:
        raise RequestFailed(
            E_BAD_REQUEST, f"unknown depth {depth!r} (expected {', '.join(DEPTHS)})"
        )
    if depth is not None and amount is not None:
        raise RequestFailed(E_BAD_REQUEST, "give a depth or an amount, not both")
    req = Satisfy(
        id=_ID,
        request_id=request_id or _new_id(),
        drive=drive,
        depth=depth,
        amount=amount,
        reason=reason,
    )
    return submit(req, timeout=timeout, agent=agent)


def bump(
    drive: str,
    amount: float,
    reason: str | None = None,
    *,
    request_id: str | None = None,
    timeout: float = ACK_TIMEOUT,
    agent: str | None = None,
) -> Receipt:
    """Add *amount* of pressure to *drive* (how activity-driven drives grow)."""
    req = Bump(
        id=_ID, request_id=request_id or _new_id(), drive=drive, amount=amount, reason=reason
    )
    return submit(req, timeout=timeout, agent=agent)


def reset(
    drive: str | None = None,
    reason: str | None = None,
    *,
    request_id: str | None = None,
    timeout: float = ACK_TIMEOUT,
    agent: str | None = None,
) -> Receipt:
    """Set *drive*'s pressure (or every drive's, with None) to zero."""
    req = Reset(id=_ID, request_id=request_id or _new_id(), drive=drive, reason=reason)
    return submit(req, timeout=timeout, agent=agent)


def _validate(req: Request) -> None:
    """The same schema check the daemon does, before anything leaves this process."""
    for field, value in (("drive", req.drive), ("reason", getattr(req, "reason", None))):
        if value is not None and not isinstance(value, str):  # bytes would go as base64
            raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    amount = getattr(req, "amount", None)
    try:
        finite = isinstance(amount, int | float) and math.isfinite(amount)
    except OverflowError:  # an int beyond any float
        finite = False
    if amount is not None and not finite:
        raise RequestFailed(E_BAD_REQUEST, f"amount must be a finite number, got {amount!r:.40}")
    decode_client(encode(req))  # RequestFailed(bad_request, ...) saying what is wrong


def _check_drive_offline(req: Request, agent: str | None) -> None:
    """With the daemon down, catch an unknown drive now rather than at drain time."""
    if req.drive is None:
        return
    try:
        known = read_snapshot(agent=agent).drives
    except (DaemonUnavailable, StoreError):
        return  # nothing to check against: the daemon will judge
    if drive_key(req.drive) not in known:
        raise UnknownDrive(req.drive, known)


def submit(
    req: Request,
    *,
    timeout: float = ACK_TIMEOUT,
    socket_path: StrPath | None = None,
    spool_dir: Path | None = None,
    agent: str | None = None,
) -> Receipt:
    """Send *req* to *agent*'s sidecar (default: `$AGENTCTX_AGENT`, else the unnamed
    one); on an ack return "acked", when the daemon is unreachable spool it.
    RequestFailed for a request the daemon refuses (unknown drive, bad values)."""
    if not 0 < timeout < math.inf:  # NaN fails this too
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    _validate(req)
    made_at = time.time()
    deadline = time.monotonic() + timeout
    path = socket_path or paths.socket_path(agent)
    spool_dir = spool_dir or Path(paths.spool_dir(agent))
    try:
        with BlockingConnection.open(path, deadline, "agentctx", extra=encode_message(req)) as conn:
            msg = conn.answer(req.id)
    except (DaemonUnavailable, ProtocolError):
        _check_drive_offline(req, agent)
        spooled = spool_request(req, made_at, spool_dir)
        return Receipt("queued", req.request_id, path=spooled, why="the sidecar is unavailable")
    if msg.get("type") == "ack":
        return Receipt("acked", req.request_id, seq=int(msg["seq"]))
    code, message = str(msg.get("code", "error")), str(msg.get("message", ""))
    if code in (E_NOT_DURABLE, E_UNAVAILABLE):  # not confirmed: the spool makes it durable
        spooled = spool_request(req, made_at, spool_dir)
        return Receipt("queued", req.request_id, path=spooled, why=message or code)
    raise RequestFailed(code, message)
