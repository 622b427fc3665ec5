"""Wire protocol v1: every message as a tagged msgspec Struct.

This module is the one definition of the schema. The daemon and the clients
both import it; the live snapshot file is simply an encoded `State`, so the
file, the socket and emergence's `drives-state.json` readers all see the same
shape. Unknown fields are ignored on decode (forward compatibility); floats
coming in are bounded, which also rejects NaN and infinity (msgspec would
encode NaN as null on the way out).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from agentctx._core.errors import (
    E_BAD_FRAME,
    E_BAD_REQUEST,
    E_UNKNOWN_TYPE,
    ProtocolError,
    RequestFailed,
)
from agentctx._core.framing import frame_header

__all__ = [
    "CLIENT_TYPES",
    "DEPTHS",
    "PROTO_VERSION",
    "SNAPSHOT_VERSION",
    "Ack",
    "Bump",
    "ClientMessage",
    "DriveView",
    "Error",
    "Event",
    "Get",
    "Hello",
    "Ping",
    "Pong",
    "Request",
    "Reset",
    "Satisfy",
    "ServerMessage",
    "Spooled",
    "State",
    "Welcome",
    "decode_client",
    "decode_spooled",
    "drive_key",
    "encode",
    "encode_message",
    "explain",
    "state_from_dict",
]

PROTO_VERSION: Final = 1
SNAPSHOT_VERSION: Final = "1.0"  # emergence's drives-state.json version we extend

MAX_AMOUNT: Final = 1e12
MAX_TEXT: Final = 4096
MAX_ID: Final = 2**63 - 1

Depth = Literal["shallow", "moderate", "deep", "full"]
DEPTHS: Final[dict[str, float]] = {"shallow": 0.30, "moderate": 0.50, "deep": 0.75, "full": 1.0}

Band = Literal["latent", "available", "elevated", "triggered", "crisis", "emergency"]
Status = Literal["building", "satisfied", "triggered"]
EventKind = Literal[
    "band_changed",
    "satisfied",
    "bumped",
    "reset",
    "triggered",  # a fired trigger: the ratio rose to 1, outside cooldown and quiet hours
    "action_started",  # the drive's on_trigger command started...
    "action_finished",  # ...and ended (exit_code; None: not known)
]

CorrelationId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
DriveName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]


def drive_key(name: str) -> str:
    """A drive name as the config spells it: drive names match case-insensitively, over
    ASCII only (Unicode upper-casing turns U+017F long s into "S", U+0131 into "I")."""
    return name.upper() if name.isascii() else name


class Message(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every frame: the tag goes in `"type"`."""


# --- client -> sidecar ---------------------------------------------------------------


class Hello(Message, tag="hello"):
    proto: int
    client: Text = ""
    subscribe: bool = True


class Get(Message, tag="get"):
    id: CorrelationId


class Satisfy(Message, tag="satisfy"):
    id: CorrelationId
    request_id: RequestId
    drive: DriveName
    depth: Depth | None = None
    amount: Amount | None = None
    reason: Text | None = None


class Bump(Message, tag="bump"):
    id: CorrelationId
    request_id: RequestId
    drive: DriveName
    amount: Amount
    reason: Text | None = None


class Reset(Message, tag="reset"):
    id: CorrelationId
    request_id: RequestId
    drive: DriveName | None = None
    reason: Text | None = None


class Ping(Message, tag="ping"):
    id: CorrelationId


ClientMessage = Hello | Get | Satisfy | Bump | Reset | Ping
Request = Satisfy | Bump | Reset


class Spooled(msgspec.Struct, kw_only=True):
    """A request a client could not deliver, as written to the spool directory."""

    made_at: Annotated[float, msgspec.Meta(ge=0.0, le=1e11)]
    request: Request


# --- sidecar -> client ---------------------------------------------------------------


class DriveView(msgspec.Struct, kw_only=True):
    """One drive as published. The first five fields are emergence's own."""

    pressure: float
    threshold: float
    status: Status
    description: str
    last_triggered: str | None
    ratio: float
    band: Band
    rate_per_hour: float
    max_pressure: float
    activity_driven: bool
    last_satisfied: str | None
    last_event: str | None = None  # the last satisfy/bump/reset (any of them)
    prompt: str = ""
    last_fired: str | None = None  # the last fired trigger (see Event kind "triggered")


class Welcome(Message, tag="welcome"):
    proto: int
    server: str
    boot_id: str
    tick_interval: float


class State(Message, tag="state", omit_defaults=True):
    """The full drive state; also, encoded as-is, the live snapshot file."""

    version: str
    last_tick: str
    seq: int
    boot_id: str
    tick_ts: float
    tick_interval: float
    drives: dict[str, DriveView]
    id: int | None = None
    # Additive (absent unless set): the host whose sidecar computed this state, when it
    # is shared over NATS; and `stale`, set by a follower that knows the state is not
    # current (cut off from NATS, or its home silent). See docs/multi-host.md.
    origin: str | None = None
    stale: bool = False


class Event(Message, tag="event", omit_defaults=True):
    seq: int
    kind: EventKind
    drive: str
    ts: float
    pressure: float
    ratio: float
    band: Band
    from_band: Band | None = msgspec.field(default=None, name="from")
    to_band: Band | None = msgspec.field(default=None, name="to")
    request_id: str | None = None
    reason: str | None = None
    depth: Depth | None = None
    amount: float | None = None
    exit_code: int | None = None  # action_finished: the command's exit status (-N: signal N)
    detail: str | None = None  # action_*: the command, or why it ended as it did
    n: int = 0  # its place among the events of one state (the history orders by seq, n)


class Ack(Message, tag="ack"):
    id: int
    seq: int


class Pong(Message, tag="pong"):
    id: int


class Error(Message, tag="error", omit_defaults=True):
    code: str
    message: str
    id: int | None = None
    request_id: str | None = None


ServerMessage = Welcome | State | Event | Ack | Pong | Error

# --- encoding ------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_state_decoder: msgspec.json.Decoder[State] = msgspec.json.Decoder(State)
_spooled_decoder: msgspec.json.Decoder[Spooled] = msgspec.json.Decoder(Spooled)
# The `type` tags a client may send, read off the union itself.
CLIENT_TYPES: Final = frozenset(t.__struct_config__.tag for t in get_args(ClientMessage))


class _Envelope(msgspec.Struct):
    """Just enough of a frame to answer it when it fails validation."""

    type: Any = None
    id: Any = None
    request_id: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode(msg: msgspec.Struct) -> bytes:
    """Encode one message as JSON (no frame header)."""
    return _encoder.encode(msg)


def encode_message(msg: Message) -> bytes:
    """Encode one message as a whole frame, header included."""
    payload = _encoder.encode(msg)  # never empty: at least {"type":...}
    return frame_header(len(payload)) + payload


_TYPE_WORDS: Final = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}
_EXPECTED = re.compile(r"Expected `([^`]+)`(.*)")
_MISSING = re.compile(r"Object missing required field `(.*)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`")


def explain(exc: msgspec.MsgspecError) -> tuple[str, str]:
    """A msgspec validation error in words, as (where, what), e.g. ("amount",
    "expected a number >= 0.0") for "Expected `float` >= 0.0 - at `$.amount`"."""
    text = str(exc)
    head, sep, at = text.rpartition(" - at `")
    message, where = (head, at.rstrip("`")) if sep else (text, "$")
    where = where.removeprefix("$").lstrip(".")
    if m := _EXPECTED.match(message):
        kinds = " or ".join(_TYPE_WORDS.get(k.strip(), k.strip()) for k in m.group(1).split("|"))
        message = f"expected {kinds}{m.group(2).replace('`', '')}"
    elif m := _MISSING.match(message):
        where, message = ".".join(filter(None, (where, m.group(1)))), "missing (required)"
    elif m := _UNKNOWN.match(message):
        where, message = (
            ".".join(filter(None, (where, m.group(1)))),
            "unknown key (check the spelling)",
        )
    return where, message


def decode_client(payload: bytes) -> ClientMessage:
    """Decode a client frame, or raise RequestFailed saying why (with the id and
    request_id it had, when they could be read, so the answer can name them)."""
    try:
        return _client_decoder.decode(payload)
    except RecursionError:  # msgspec recurses per nesting level: a frame of "[[[[..."
        raise RequestFailed(E_BAD_FRAME, "frame is nested too deeply") from None
    except msgspec.DecodeError as exc:
        try:
            env = _envelope_decoder.decode(payload)
        except msgspec.DecodeError:
            raise RequestFailed(E_BAD_FRAME, f"frame is not a JSON object: {exc}") from None
        corr = env.id if isinstance(env.id, int) and not isinstance(env.id, bool) else None
        rid = env.request_id if isinstance(env.request_id, str) else None
        if not isinstance(env.type, str):
            raise RequestFailed(
                E_BAD_FRAME, "frame has no string field 'type'", id=corr, request_id=rid
            ) from None
        if env.type not in CLIENT_TYPES:
            raise RequestFailed(
                E_UNKNOWN_TYPE, f"unknown message type {env.type!r}", id=corr, request_id=rid
            ) from None
        where, what = explain(exc)
        message = f"{where}: {what}" if where else what
        raise RequestFailed(E_BAD_REQUEST, message, id=corr, request_id=rid) from None


def state_from_dict(obj: Any) -> State:
    """Validate a snapshot already parsed as plain JSON (see agentctx._core.snapshot)."""
    try:
        return msgspec.convert(obj, State)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"not a drive-state snapshot: {exc}") from None


def decode_spooled(payload: bytes) -> Spooled:
    try:
        return _spooled_decoder.decode(payload)
    except RecursionError:
        raise ProtocolError("not a spooled request: nested too deeply") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a spooled request: {exc}") from None
