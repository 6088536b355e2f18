"""Field checks of the device channel's frames: parsing a frame into bounded JSON and
validating each field by name (``CHECKS``). Pure: no I/O; every failure is a
``ProtocolError`` naming the field, never another exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Final

from wrale.fleet.sync.points import Points

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
MAX_HELLO_BYTES: Final = 16 * 1024  # a hello is small; a bigger first frame is refused unread
MAX_POINTS: Final = 10_000
MAX_EVENTS: Final = 1_000
MAX_DEPTH: Final = 32  # levels of objects and arrays in a free-form field (its top is 1)

Json = dict[str, Any]


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol version (says what is wrong)."""


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not a JSON number (NaN and infinities are refused)")


def parse(frame: str | bytes) -> Json:
    """One frame as a JSON object of bounded size (nesting is bounded per field below:
    the C parser itself fails cleanly with ``RecursionError`` on very deep input)."""
    if not isinstance(frame, str | bytes | bytearray):
        raise ProtocolError(f"a frame is text or bytes, not {type(frame).__name__}")
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        text = frame if isinstance(frame, str) else bytes(frame).decode("utf-8")
        raw = json.loads(text, parse_constant=_no_constant)
    except ProtocolError:
        raise
    except (ValueError, RecursionError, MemoryError) as e:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"frame is not JSON: {str(e)[:200]}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("frame must be a JSON object")
    return raw


def free_json(name: str, v: Any, depth: int = 1) -> None:
    """A free-form JSON value (a twin document, command args or result, event data):
    at most ``MAX_DEPTH`` levels, integers within 64 bits, finite numbers."""
    stack: list[tuple[Any, int]] = [(v, depth)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            if level > MAX_DEPTH:
                raise ProtocolError(f"{name} nests deeper than {MAX_DEPTH} levels")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((x, level + 1) for x in items)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**64:
                raise ProtocolError(f"{name}: an integer out of the 64-bit range")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ProtocolError(f"{name}: numbers must be finite")
        else:
            raise ProtocolError(f"{name}: not a JSON value")


def doc(name: str, v: Any) -> Json:
    out = obj(name, v)
    free_json(name, out)
    return out


def seq(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise ProtocolError(f"{name} must be an integer in [0, 2^63), not {str(v)[:40]}")
    return v


def num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProtocolError(f"{name} must be a finite number, not {str(v)[:40]}")
    try:
        f = float(v)
    except OverflowError:
        raise ProtocolError(f"{name} is out of range") from None
    if not math.isfinite(f):
        raise ProtocolError(f"{name} must be a finite number, not {f!r}")
    return f


def text(name: str, v: Any, max_len: int = 200) -> str:
    if not isinstance(v, str) or len(v) > max_len:
        raise ProtocolError(f"{name} must be a string of at most {max_len} characters")
    return v


def obj(name: str, v: Any) -> Json:
    if not isinstance(v, dict):
        raise ProtocolError(f"{name} must be an object")
    return v


def flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ProtocolError(f"{name} must be true or false")
    return v


def int_map(name: str, v: Any) -> dict[str, int]:
    return {text(f"{name} key", k, 32): seq(f"{name}.{k}", x) for k, x in obj(name, v).items()}


def points(v: Any) -> Points:
    """Checked ``(metric, ts, value)`` points, held in columns (``Points``: ~17 bytes a
    point instead of ~100 as tuples, while the batch waits to be stored)."""
    if not isinstance(v, list) or len(v) > MAX_POINTS:
        raise ProtocolError(f"points must be a list of at most {MAX_POINTS} [metric, ts, value]")
    return Points(_checked_points(v))


def _checked_points(v: list[Any]) -> Iterator[tuple[str, float, float]]:
    names: dict[str, str] = {}
    for i, p in enumerate(v):
        if not isinstance(p, list | tuple) or len(p) != 3:
            raise ProtocolError(f"points[{i}] must be [metric, ts, value]")
        metric, ts, value = p
        name = names.get(metric) if isinstance(metric, str) else None
        if name is None:
            name = names[metric] = text(f"points[{i}][0]", metric, 64)
        yield name, num(f"points[{i}][1]", ts), num(f"points[{i}][2]", value)


def events(v: Any) -> list[Json]:
    if not isinstance(v, list) or len(v) > MAX_EVENTS:
        raise ProtocolError(f"events must be a list of at most {MAX_EVENTS} objects")
    for i, e in enumerate(v):
        e = obj(f"events[{i}]", e)
        num(f"events[{i}].ts", e.get("ts"))
        text(f"events[{i}].type", e.get("type"), 64)
        text(f"events[{i}].severity", e.get("severity"), 16)
        free_json(f"events[{i}]", e)
    return list(v)


def str_map(name: str, v: Any, key_len: int, value_len: int) -> dict[str, str]:
    return {
        text(f"{name} key", k, key_len): text(f"{name}.{k}", x, value_len)
        for k, x in obj(name, v).items()
    }


def num_map(name: str, v: Any) -> dict[str, float]:
    return {text(f"{name} key", k, 64): num(f"{name}.{k}", x) for k, x in obj(name, v).items()}


CHECKS: Final[dict[str, Any]] = {
    "device_id": lambda v: text("device_id", v, 64),
    "agent_version": lambda v: text("agent_version", v, 32),
    "server_version": lambda v: text("server_version", v, 32),
    "protocol": lambda v: seq("protocol", v),
    "acked": lambda v: int_map("acked", v),
    "outbox": lambda v: int_map("outbox", v),
    "dropped": lambda v: int_map("dropped", v),
    "desired_version": lambda v: seq("desired_version", v),
    "reported_version": lambda v: seq("reported_version", v),
    "applied_desired_version": lambda v: seq("applied_desired_version", v),
    "version": lambda v: seq("version", v),
    "seq": lambda v: seq("seq", v),
    "prev": lambda v: seq("prev", v),
    "mode": lambda v: text("mode", v, 16),
    "secret": lambda v: None if v is None else text("secret", v, 200),
    "session": lambda v: text("session", v, 64),
    "points": points,
    "events": events,
    "doc": lambda v: doc("doc", v),
    "args": lambda v: doc("args", v),
    "result": lambda v: doc("result", v),
    "rejected": lambda v: str_map("rejected", v, 200, 1000),
    "live": lambda v: num_map("live", v),
    "id": lambda v: text("id", v, 64),
    "op": lambda v: text("op", v, 32),
    "status": lambda v: text("status", v, 16),
    "reason": lambda v: text("reason", v, 2000),
    "stream": lambda v: text("stream", v, 16),
    "code": lambda v: text("code", v, 32),
    "message": lambda v: text("message", v, 2000),
    "ts": lambda v: num("ts", v),
    "deadline": lambda v: num("deadline", v),
    "heartbeat_s": lambda v: num("heartbeat_s", v),
    "gap": lambda v: flag("gap", v),
    "retry": lambda v: flag("retry", v),
}
