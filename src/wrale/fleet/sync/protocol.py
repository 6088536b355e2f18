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
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Literal, get_args

PROTOCOL_VERSION: Final = 1
STREAMS: Final = ("telemetry", "events")
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
MAX_POINTS: Final = 10_000
MAX_EVENTS: Final = 1_000

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
    "MAX_EVENTS",
    "MAX_FRAME_BYTES",
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


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol version (says what is wrong)."""


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
    points: list[tuple[str, float, float]]


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


def _seq(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise ProtocolError(f"{name} must be an integer in [0, 2^63), not {v!r}")
    return v


def _num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ProtocolError(f"{name} must be a finite number, not {v!r}")
    return float(v)


def _str(name: str, v: Any, max_len: int = 200) -> str:
    if not isinstance(v, str) or len(v) > max_len:
        raise ProtocolError(f"{name} must be a string of at most {max_len} characters")
    return v


def _obj(name: str, v: Any) -> Json:
    if not isinstance(v, dict):
        raise ProtocolError(f"{name} must be an object")
    return v


def _int_map(name: str, v: Any) -> dict[str, int]:
    return {_str(f"{name} key", k, 32): _seq(f"{name}.{k}", x) for k, x in _obj(name, v).items()}


def _points(v: Any) -> list[tuple[str, float, float]]:
    if not isinstance(v, list) or len(v) > MAX_POINTS:
        raise ProtocolError(f"points must be a list of at most {MAX_POINTS} [metric, ts, value]")
    out: list[tuple[str, float, float]] = []
    for i, p in enumerate(v):
        if not isinstance(p, list | tuple) or len(p) != 3:
            raise ProtocolError(f"points[{i}] must be [metric, ts, value]")
        out.append(
            (
                _str(f"points[{i}][0]", p[0], 64),
                _num(f"points[{i}][1]", p[1]),
                _num(f"points[{i}][2]", p[2]),
            )
        )
    return out


def _events(v: Any) -> list[Json]:
    if not isinstance(v, list) or len(v) > MAX_EVENTS:
        raise ProtocolError(f"events must be a list of at most {MAX_EVENTS} objects")
    for i, e in enumerate(v):
        e = _obj(f"events[{i}]", e)
        _num(f"events[{i}].ts", e.get("ts"))
        _str(f"events[{i}].type", e.get("type"), 64)
        _str(f"events[{i}].severity", e.get("severity"), 16)
    return list(v)


_CHECKS: Final[dict[str, Any]] = {
    "device_id": lambda v: _str("device_id", v, 64),
    "agent_version": lambda v: _str("agent_version", v, 32),
    "server_version": lambda v: _str("server_version", v, 32),
    "protocol": lambda v: _seq("protocol", v),
    "acked": lambda v: _int_map("acked", v),
    "outbox": lambda v: _int_map("outbox", v),
    "dropped": lambda v: _int_map("dropped", v),
    "desired_version": lambda v: _seq("desired_version", v),
    "reported_version": lambda v: _seq("reported_version", v),
    "applied_desired_version": lambda v: _seq("applied_desired_version", v),
    "version": lambda v: _seq("version", v),
    "seq": lambda v: _seq("seq", v),
    "prev": lambda v: _seq("prev", v),
    "mode": lambda v: _str("mode", v, 16),
    "secret": lambda v: None if v is None else _str("secret", v, 200),
    "session": lambda v: _str("session", v, 64),
    "points": _points,
    "events": _events,
    "doc": lambda v: _obj("doc", v),
    "args": lambda v: _obj("args", v),
    "result": lambda v: _obj("result", v),
    "rejected": lambda v: {
        _str("rejected key", k): _str(f"rejected.{k}", x, 1000)
        for k, x in _obj("rejected", v).items()
    },
    "live": lambda v: {
        _str("live key", k, 64): _num(f"live.{k}", x) for k, x in _obj("live", v).items()
    },
    "id": lambda v: _str("id", v, 64),
    "op": lambda v: _str("op", v, 32),
    "status": lambda v: _str("status", v, 16),
    "reason": lambda v: _str("reason", v, 2000),
    "stream": lambda v: _str("stream", v, 16),
    "code": lambda v: _str("code", v, 32),
    "message": lambda v: _str("message", v, 2000),
    "ts": lambda v: _num("ts", v),
    "deadline": lambda v: _num("deadline", v),
    "heartbeat_s": lambda v: _num("heartbeat_s", v),
    "gap": lambda v: bool(v),
    "retry": lambda v: bool(v),
}


def decode(frame: str | bytes) -> Message:
    """Parse one frame; ``ProtocolError`` for anything malformed, unknown or oversized."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        raw = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"frame is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("frame must be a JSON object")
    tag = raw.pop("t", None)
    cls = MESSAGES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {tag!r}")
    known = {f.name: f for f in fields(cls)}
    extra = set(raw) - set(known)
    if extra:
        raise ProtocolError(f"{tag}: unknown field(s) {sorted(extra)}")
    values: Json = {}
    for name, value in raw.items():
        values[name] = _CHECKS[name](value)
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
