"""Device events: stored once per batch (the ``prev <= last < seq`` rule on the ``events``
stream's mark), cleaned so any database takes them, and read back newest first.

The mark is advanced by one conditional UPDATE before anything is read, so two replicas
handed the same batch (MQTT redelivery) store it once; no business rules beyond that here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.channel import DeviceEvent, StreamSeq
from wrale.fleet.brain.models.telemetry import TelemetrySeq
from wrale.fleet.brain.services.telemetry_bounds import ts_ok

EVENTS = "events"
TELEMETRY = "telemetry"
MAX_DATA_CHARS = 8_000
MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Stored:
    """What happened to one batch: ``stored``, a ``gap`` (a batch before it is missing) or a
    duplicate (neither); ``last`` is the stream's mark afterwards (0: nothing yet)."""

    stored: bool
    gap: bool
    last: int


def _is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def last_seq(session: AsyncSession, device_id: str, stream: str) -> int:
    row = await session.scalar(
        select(StreamSeq.last_seq).where(
            StreamSeq.device_id == device_id, StreamSeq.stream == stream
        )
    )
    return int(row) if row is not None else 0


async def marks(session: AsyncSession, device: Device) -> dict[str, int]:
    """The last stored seq of each stream of ``device`` (0 where nothing is stored)."""
    tel = await session.scalar(
        select(TelemetrySeq.last_seq).where(TelemetrySeq.device_num == device.num)
    )
    return {
        TELEMETRY: max(int(tel or 0), 0),
        EVENTS: await last_seq(session, device.id, EVENTS),
    }


async def raise_marks(
    session: AsyncSession, device: Device, wanted: dict[str, int], now: float
) -> dict[str, int]:
    """Move each stream's mark up to ``wanted`` where it is below (never down); returns the
    streams that moved with their old mark. Used when an agent has had acknowledged what
    this database no longer holds (restored from a backup): those batches are gone from
    the agent's outbox, so waiting for them would stall the stream for ever."""
    have = await marks(session, device)
    moved: dict[str, int] = {}
    for stream, seq in wanted.items():
        if stream not in have or seq <= have[stream]:
            continue
        moved[stream] = have[stream]
        ins = pg_insert if _is_pg(session) else sqlite_insert
        if stream == TELEMETRY:
            tel = ins(TelemetrySeq).values(device_num=device.num, last_seq=seq, updated_at=now)
            await session.execute(
                tel.on_conflict_do_update(
                    index_elements=[TelemetrySeq.device_num],
                    set_={"last_seq": seq, "updated_at": now},
                    where=TelemetrySeq.last_seq < seq,
                )
            )
        else:
            other = ins(StreamSeq).values(
                device_id=device.id, stream=stream, last_seq=seq, updated_at=now
            )
            await session.execute(
                other.on_conflict_do_update(
                    index_elements=[StreamSeq.device_id, StreamSeq.stream],
                    set_={"last_seq": seq, "updated_at": now},
                    where=StreamSeq.last_seq < seq,
                )
            )
    return moved


async def advance(
    session: AsyncSession, device_id: str, stream: str, prev: int, seq: int, now: float
) -> Stored:
    """Advance ``stream``'s mark to ``seq`` iff ``prev <= mark < seq`` (a missing mark is 0)."""
    moved = await session.execute(
        update(StreamSeq)
        .where(
            StreamSeq.device_id == device_id,
            StreamSeq.stream == stream,
            StreamSeq.last_seq >= prev,
            StreamSeq.last_seq < seq,
        )
        .values(last_seq=seq, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(moved.rowcount or 0) == 1:  # type: ignore[attr-defined]
        return Stored(True, False, seq)
    if prev == 0:
        ins = (pg_insert if _is_pg(session) else sqlite_insert)(StreamSeq).values(
            device_id=device_id, stream=stream, last_seq=seq, updated_at=now
        )
        created = await session.execute(ins.on_conflict_do_nothing())
        if int(created.rowcount or 0) == 1:  # type: ignore[attr-defined]
            return Stored(True, False, seq)
    last = await last_seq(session, device_id, stream)
    return Stored(False, last < seq, last)


def clean_text(value: Any, limit: int) -> str:
    """A string without NUL (PostgreSQL refuses it) and at most ``limit`` characters."""
    return str(value if value is not None else "").replace("\x00", "")[:limit]


def strip_nul(value: Any) -> Any:
    """``value`` (JSON-like) without NUL characters in any string or key (PostgreSQL
    cannot store them; a frame holding one must not fail its whole group)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul(v) for v in value]
    return value


def clean_data(value: Any) -> dict[str, Any]:
    """An event's ``data`` as a small JSON object without NUL characters or non-finite
    numbers; anything else is kept as text under ``"raw"``."""
    if not isinstance(value, dict):
        return {} if value is None else {"raw": clean_text(value, 200)}
    try:
        text = json.dumps(value, allow_nan=False, default=str)
    except (ValueError, TypeError):
        text = json.dumps({k: clean_text(v, 200) for k, v in value.items()}, default=str)
    text = text.replace("\\u0000", "")
    if len(text) > MAX_DATA_CHARS:
        return {"truncated": True, "chars": len(text)}
    out: dict[str, Any] = json.loads(text)
    return out


def event_row(raw: dict[str, Any], now: float) -> dict[str, Any]:
    """One protocol event ``{ts, type, severity, message, data}`` as column values. A
    timestamp outside [2000-01-01, now + 1 day] (a board's wrong clock, or hostile) is
    replaced by ``now``, the receive time, and the row says so (``data.device_ts_refused``):
    the event is kept, and nothing stored can break a page that formats its time."""
    ts = raw.get("ts")
    data = clean_data(raw.get("data"))
    good = isinstance(ts, int | float) and math.isfinite(ts) and ts_ok(float(ts), now)
    if not good:
        data = {**data, "device_ts_refused": True}
    return {
        "ts": float(ts) if good and isinstance(ts, int | float) else now,
        "type": clean_text(raw.get("type"), 64) or "UNKNOWN",
        "severity": clean_text(raw.get("severity"), 16).lower() or "info",
        "message": clean_text(raw.get("message"), MAX_MESSAGE),
        "data": data,
    }


async def store_batch(
    session: AsyncSession,
    device: Device,
    seq: int,
    prev: int,
    events: Sequence[dict[str, Any]],
    now: float,
) -> tuple[Stored, list[dict[str, Any]]]:
    """Store one events batch of ``device`` once; returns the outcome and the rows stored
    (cleaned, in batch order) for the caller's alerts and bus events."""
    outcome = await advance(session, device.id, EVENTS, prev, seq, now)
    if not outcome.stored:
        return outcome, []
    rows = [
        {
            **event_row(e, now),
            "tenant_id": device.tenant_id,
            "device_id": device.id,
            "seq": seq,
            "idx": i,
            "created_at": now,
        }
        for i, e in enumerate(events)
    ]
    if rows:
        base = new_id()  # one time prefix, then the index: ids sort in batch order
        for r in rows:
            r["id"] = f"{base[:14]}{r['idx']:04x}{base[18:]}"
        await session.execute(insert(DeviceEvent), rows)
    return outcome, rows


async def list_events(
    session: AsyncSession,
    device_id: str,
    *,
    before_id: str | None = None,
    types: Sequence[str] = (),
    limit: int = 50,
) -> list[DeviceEvent]:
    """The device's events, newest received first; ``before_id`` continues a page."""
    stmt = select(DeviceEvent).where(DeviceEvent.device_id == device_id)
    if before_id:
        stmt = stmt.where(DeviceEvent.id < before_id)
    if types:
        stmt = stmt.where(DeviceEvent.type.in_(list(types)))
    stmt = stmt.order_by(DeviceEvent.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


def event_view(e: DeviceEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "device_id": e.device_id,
        "seq": e.seq,
        "ts": e.ts,
        "type": e.type,
        "severity": e.severity,
        "message": e.message,
        "data": dict(e.data or {}),
        "received_at": e.created_at,
    }
