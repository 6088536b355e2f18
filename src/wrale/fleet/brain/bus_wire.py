"""The bus's events as PostgreSQL NOTIFY payloads, and back. Pure: no I/O.

A payload is JSON ``{"r": replica, "n": number, "e": [{"t", "k", "d", "a"}, …]}``: several
events packed under PostgreSQL's limit (8000 bytes; ``PAYLOAD_MAX`` leaves room). The
number, one per payload and per replica, keeps equal payloads apart (PostgreSQL folds
identical notifications of one transaction into one) and shows a receiver what it missed.

An event too large for one payload is sent trimmed: its scalar fields (ids, status,
version, severity, short strings) only, with ``"trimmed": true``; a receiver that needs the
rest reads it from the database or the API. One that cannot fit even so is not sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wrale.fleet.brain.bus import BusEvent

PAYLOAD_MAX = 7_800  # bytes; PostgreSQL refuses 8000 and more
SCALAR_MAX = 200  # characters of a string kept in a trimmed event
# what a trimmed event keeps first when even its scalars are too many
KEY_FIELDS = ("id", "device_id", "status", "version", "severity", "event", "reason", "seq")


@dataclass(frozen=True, slots=True)
class Packet:
    """One received payload: who sent it, its number, its events (``remote=True``)."""

    replica: str
    number: int
    events: tuple[BusEvent, ...]


def _dump(value: Any) -> str:
    # ASCII only: one character is one byte, so len() measures the payload
    return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=True)


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= SCALAR_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int)


def trimmed(data: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """``data`` cut to its scalar fields (key fields first) so that it encodes in at most
    ``budget`` bytes, marked ``"trimmed": true``; None when not even that fits."""
    scalars = {k: v for k, v in data.items() if isinstance(k, str) and _scalar(v)}
    first = [k for k in KEY_FIELDS if k in scalars]
    out: dict[str, Any] = {"trimmed": True}
    if len(_dump(out)) > budget:
        return None
    for key in [*first, *(k for k in scalars if k not in first)]:
        out[key] = scalars[key]
        if len(_dump(out)) > budget:
            del out[key]
            if key in first:
                continue
            break
    return out


def _event_json(ev: BusEvent, budget: int) -> str | None:
    body = {"t": ev.tenant_id, "k": ev.kind, "d": ev.data, "a": ev.at}
    text = _dump(body)
    if len(text) <= budget:
        return text
    frame = len(_dump({**body, "d": {}})) - 2  # the event without its data
    data = trimmed(ev.data, budget - frame)
    return None if data is None else _dump({**body, "d": data})


def encode(replica: str, first_number: int, events: Iterable[BusEvent]) -> list[str]:
    """Payloads carrying ``events`` in order, numbered from ``first_number``; each at most
    ``PAYLOAD_MAX`` bytes. An event that cannot fit even trimmed is left out."""

    def head(n: int) -> str:
        return _dump({"r": replica, "n": n})[:-1] + ',"e":['

    budget = PAYLOAD_MAX - len(head(first_number + 10**9)) - 2  # "]}" and a large number
    payloads: list[str] = []
    parts: list[str] = []
    size = 0
    for ev in events:
        text = _event_json(ev, budget)
        if text is None:
            continue
        if parts and size + 1 + len(text) > budget:
            payloads.append(head(first_number + len(payloads)) + ",".join(parts) + "]}")
            parts, size = [], 0
        size += len(text) + (1 if parts else 0)
        parts.append(text)
    if parts:
        payloads.append(head(first_number + len(payloads)) + ",".join(parts) + "]}")
    return payloads


def decode(payload: str) -> Packet:
    """The packet in ``payload``; ``ValueError`` when it is not one (never trust the wire:
    anything that can connect to the database can NOTIFY)."""
    try:
        raw = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    replica, number, items = raw.get("r"), raw.get("n"), raw.get("e")
    if not isinstance(replica, str) or not isinstance(number, int) or isinstance(number, bool):
        raise ValueError("no replica or number")
    if not isinstance(items, list):
        raise ValueError("no events")
    return Packet(replica, number, tuple(_event(item) for item in items))


def _event(item: Any) -> BusEvent:
    if not isinstance(item, dict):
        raise ValueError("an event is not an object")
    tenant, kind, data, at = item.get("t"), item.get("k"), item.get("d"), item.get("a")
    if not (isinstance(tenant, str) and isinstance(kind, str) and isinstance(data, dict)):
        raise ValueError("an event lacks its tenant, kind or data")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise ValueError("an event lacks its time")
    return BusEvent(tenant, kind, data, float(at), remote=True)


def missed(expected: int | None, number: int) -> int:
    """How many payloads of a replica were lost if ``expected`` was due and ``number``
    came (0 for the first heard from it, or when it restarted and counts from 0 again)."""
    if expected is None or number < expected:
        return 0
    return number - expected
