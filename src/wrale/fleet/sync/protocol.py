"""Messages of the device channel (protocol version 1) and their JSON encoding.

Pure: no I/O, no clocks. Every message is a frozen dataclass with a ``T`` type tag; a frame
is one JSON object ``{"t": <tag>, ...fields}``. ``decode`` validates shape and types and
raises ``ProtocolError`` naming the bad field, so both ends refuse garbage the same way.

Streams: ``telemetry`` and ``events`` batches carry a per-device, per-stream sequence number
``seq`` and ``prev`` (the seq of the batch before it, as far as the sender knows). The
receiver stores a batch only if ``prev <= last stored < seq``; it answers every batch with an
``Ack`` of its last stored seq, so a sender that sees an ack below what it has in flight
resends from there (go-back-N). Redelivery is therefore idempotent and gap-free even when
batches of one device arrive out of order (MQTT shared subscriptions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Literal, get_args

from wrale.fleet.sync.fields import (
    CHECKS,
    MAX_DEPTH,
    MAX_EVENTS,
    MAX_FRAME_BYTES,
    MAX_HELLO_BYTES,
    MAX_POINTS,
    ProtocolError,
    parse,
)
from wrale.fleet.sync.points import Points

PROTOCOL_VERSION: Final = 1
STREAMS: Final = ("telemetry", "events")

Stream = Literal["telemetry", "events"]
# the commands a device runs (both ends validate against this one vocabulary)
CommandOp = Literal[
    "set_fan",
    "clear_fan",
    "set_throttle",
    "run_diag",
    "arm",
    "disarm",
    "reboot",
    "shutdown",
    "safe_mode",
    "sim_fault",
    "sim_clear",
    "sim_load",
    "sim_ambient",
]
COMMAND_OPS: Final[tuple[str, ...]] = get_args(CommandOp)
CommandStatus = Literal["succeeded", "failed", "refused"]
Mode = Literal["normal", "safe", "autonomous"]
Json = dict[str, Any]

__all__ = [
    "COMMAND_OPS",
    "MAX_DEPTH",
    "MAX_EVENTS",
    "MAX_FRAME_BYTES",
    "MAX_HELLO_BYTES",
    "MAX_POINTS",
    "PROTOCOL_VERSION",
    "STREAMS",
    "Ack",
    "Command",
    "CommandOp",
    "CommandResult",
    "Desired",
    "EventsBatch",
    "Goodbye",
    "Hello",
    "Message",
    "ProtocolError",
    "Reported",
    "Status",
    "TelemetryBatch",
    "Welcome",
    "decode",
    "encode",
]


@dataclass(frozen=True, slots=True)
class Message:
    T: ClassVar[str] = ""

    def to_json(self) -> Json:
        """``{"t": tag, field: value, ...}`` in field order. Shallow: the values are the
        message's own (not the deep copy ``dataclasses.asdict`` makes of every point);
        messages hold only JSON values, so the encoded frame is the same."""
        out: Json = {"t": self.T}
        for name in _field_names(type(self)):
            out[name] = getattr(self, name)
        return out


_NAMES: dict[type[Message], tuple[str, ...]] = {}


def _field_names(cls: type[Message]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


# ----------------------------------------------------------------------------- device → server


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """First frame of a session. ``secret`` is the device credential (omitted over a
    WebSocket, where it travels in the Authorization header); ``acked`` is the highest seq
    per stream the agent has seen acknowledged; versions are those the agent has stored."""

    T: ClassVar[str] = "hello"
    device_id: str
    agent_version: str
    protocol: int = PROTOCOL_VERSION
    acked: dict[str, int] = field(default_factory=dict)
    desired_version: int = 0
    reported_version: int = 0
    mode: str = "normal"
    secret: str | None = None
    session: str = ""  # random per connection; MQTT replies carry it back


@dataclass(frozen=True, slots=True)
class TelemetryBatch(Message):
    """Points ``[metric, unix_ts, value]`` of outbox rows ``(prev, seq]``."""

    T: ClassVar[str] = "telemetry"
    seq: int
    prev: int
    points: Sequence[tuple[str, float, float]]  # decoded: ``Points`` (columns)

    def to_json(self) -> Json:
        out = Message.to_json(self)
        if isinstance(self.points, Points):
            out["points"] = self.points.to_json()
        return out


@dataclass(frozen=True, slots=True)
class EventsBatch(Message):
    """metald events ``{ts, type, severity, message, data}`` of outbox rows ``(prev, seq]``."""

    T: ClassVar[str] = "events"
    seq: int
    prev: int
    events: list[Json]


@dataclass(frozen=True, slots=True)
class Reported(Message):
    """What the device runs now: the full reported document at the agent's ``version``,
    which desired version it has applied, and each desired value it rejected with why
    (keys are dotted paths such as ``thermal.cpu_warning_c``)."""

    T: ClassVar[str] = "reported"
    version: int
    doc: Json
    applied_desired_version: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult(Message):
    T: ClassVar[str] = "cmd_result"
    id: str
    status: CommandStatus
    reason: str = ""
    result: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status(Message):
    """Heartbeat: mode, outbox depth and drops, and the newest readings (live view)."""

    T: ClassVar[str] = "status"
    ts: float
    mode: str = "normal"
    outbox: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    live: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- server → device


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Answer to ``Hello``: the server's last stored seq per stream (drop those and older)."""

    T: ClassVar[str] = "welcome"
    device_id: str
    server_version: str
    protocol: int = PROTOCOL_VERSION
    acked: dict[str, int] = field(default_factory=dict)
    heartbeat_s: float = 15.0
    session: str = ""


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Everything of ``stream`` up to ``seq`` is durably stored. ``gap`` is set when a batch
    was refused because one before it is missing: resend after ``seq``."""

    T: ClassVar[str] = "ack"
    stream: str
    seq: int
    gap: bool = False
    session: str = ""


@dataclass(frozen=True, slots=True)
class Desired(Message):
    T: ClassVar[str] = "desired"
    version: int
    doc: Json


@dataclass(frozen=True, slots=True)
class Command(Message):
    """Run ``op`` with ``args`` before ``deadline`` (unix seconds), else report it expired."""

    T: ClassVar[str] = "cmd"
    id: str
    op: str
    args: Json
    deadline: float


@dataclass(frozen=True, slots=True)
class Goodbye(Message):
    """The server ends the session: ``code`` is ``revoked``, ``quarantined``, ``protocol``,
    ``held`` (maintenance / decommissioned), ``replaced`` (a newer session) or ``shutdown``.
    ``retry`` says whether reconnecting can help."""

    T: ClassVar[str] = "goodbye"
    code: str
    message: str
    retry: bool = True
    session: str = ""


MESSAGES: Final[dict[str, type[Message]]] = {
    m.T: m
    for m in (
        Hello,
        TelemetryBatch,
        EventsBatch,
        Reported,
        CommandResult,
        Status,
        Welcome,
        Ack,
        Desired,
        Command,
        Goodbye,
    )
}


# ----------------------------------------------------------------------------- codec


def encode(msg: Message) -> str:
    """One frame of compact JSON (NaN and infinities refused: JSON has none)."""
    try:
        return json.dumps(msg.to_json(), separators=(",", ":"), allow_nan=False)
    except ValueError as e:
        raise ProtocolError(f"{msg.T}: {e}") from None


def decode(frame: str | bytes) -> Message:
    """Parse one frame; ``ProtocolError`` for anything malformed, unknown or oversized.
    Total: whatever the bytes, this returns a message or raises ``ProtocolError``."""
    try:
        return _decode(frame)
    except ProtocolError:
        raise
    except Exception as e:  # a check that missed a case must not escape as another error
        raise ProtocolError(f"malformed frame ({type(e).__name__})") from None


def _decode(frame: str | bytes) -> Message:
    raw = parse(frame)
    tag = raw.pop("t", None)
    cls = MESSAGES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {str(tag)[:40]!r}")
    known = _field_names(cls)
    extra = set(raw) - set(known)
    if extra:
        raise ProtocolError(f"{tag}: unknown field(s) {sorted(extra)[:10]}")
    values: Json = {}
    for name, value in raw.items():
        values[name] = CHECKS[name](value)
    if tag == "cmd_result" and values.get("status") not in ("succeeded", "failed", "refused"):
        raise ProtocolError("cmd_result.status must be succeeded, failed or refused")
    if tag in ("ack",) and values.get("stream") not in STREAMS:
        raise ProtocolError(f"ack.stream must be one of {STREAMS}")
    try:
        msg = cls(**values)
    except TypeError as e:
        raise ProtocolError(f"{tag}: {e}") from None
    if isinstance(msg, Hello) and msg.protocol != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {msg.protocol} is not supported (this end speaks {PROTOCOL_VERSION})"
        )
    if isinstance(msg, TelemetryBatch | EventsBatch) and msg.prev >= msg.seq:
        raise ProtocolError(f"{tag}: prev ({msg.prev}) must be below seq ({msg.seq})")
    return msg
