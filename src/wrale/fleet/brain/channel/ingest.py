"""What a device's telemetry, event and status frames become: the points ingestion accepts,
the stored batch's Ack and summary, the bus messages and alerts of stored events, the live
status view. Runs in the caller's transaction and sends nothing; bus messages are returned
in ``out`` for the caller to publish after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from wrale.fleet.brain.channel import alerts
from wrale.fleet.brain.channel.alerts import BusOut
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import telemetry, telemetry_many
from wrale.fleet.brain.services.telemetry import IngestResult
from wrale.fleet.brain.services.telemetry_bounds import MAX_FUTURE_S, MIN_TS, bounds_of
from wrale.fleet.brain.services.telemetry_store import executemany, fetch, is_pg
from wrale.fleet.sync.protocol import Ack, Message, Status, TelemetryBatch

# session.info: (device id, id(batch)) → the batch's valid points and IngestResult (None:
# left for the frame to store alone), in the frames' order
_PRESTORED = "wrale_prestored_telemetry"
_HELD = "wrale_prestored_devices"
# session.info: the boards heard from in the transaction, written by ``write_touches``
_TOUCHED = "wrale_touched_boards"
Prestored = tuple[list[tuple[str, float, float]], IngestResult | None]


def valid_points(
    points: Sequence[tuple[str, float, float]], now: float
) -> list[tuple[str, float, float]]:
    """The points ingestion accepts (metric name, timestamp window and the metric's physical
    bounds: ``telemetry_bounds``); the others are dropped and counted rather than refusing
    the batch (a batch that can never be stored would stall the device's outbox for ever)."""
    newest = now + MAX_FUTURE_S
    ok: list[tuple[str, float, float]] = []
    good: dict[str, tuple[float, float]] = {}
    for metric, ts, value in points:
        limits = good.get(metric)
        if limits is None:
            if not telemetry.METRIC_RE.match(metric):
                continue
            limits = good[metric] = bounds_of(metric)
        if MIN_TS <= ts <= newest and limits[0] <= value <= limits[1]:
            ok.append((metric, ts, value))
    return ok


def telemetry_summary(
    device_id: str, seq: int, points: Sequence[tuple[str, float, float]]
) -> dict[str, Any]:
    """What ``/api/v1/ws`` subscribers hear of a stored batch (as the REST upload says)."""
    newest: dict[str, tuple[float, float]] = {}
    for metric, ts, value in points:
        if metric not in newest or ts >= newest[metric][0]:
            newest[metric] = (ts, value)
    return {
        "device_id": device_id,
        "seq": seq,
        "points": len(points),
        "latest": {m: {"ts": ts, "value": v} for m, (ts, v) in sorted(newest.items())},
    }


async def store_telemetry(
    s: AsyncSession,
    device: Device,
    m: TelemetryBatch,
    pts: list[tuple[str, float, float]],
    now: float,
    out: BusOut,
    session_id: str,
    r: IngestResult | None = None,
) -> tuple[Ack, int]:
    """Store batch ``m`` with its valid points ``pts``: its Ack and the points stored
    (``r``: stored already, by ``prestore`` in this transaction)."""
    if r is None:
        r = await telemetry.ingest_batch(s, device, m.seq, pts, now=now, prev=m.prev)
    if r.stored and pts:
        out.append(
            (device.tenant_id, "telemetry.summary", telemetry_summary(device.id, m.seq, pts))
        )
    seq = m.seq if r.stored else max(r.last_seq, 0)
    return Ack(stream="telemetry", seq=seq, gap=r.gap, session=session_id), r.points


async def prestore(
    s: AsyncSession, groups: Sequence[tuple[str, Sequence[Message]]], now: float
) -> None:
    """Store the telemetry batches of many devices' frame groups ``(device id, frames)`` in
    one statement (PostgreSQL), ahead of the frames' own work in the same transaction;
    ``store_telemetry`` then takes each batch's result instead of storing it. The devices
    are loaded in one query too (the frames' ``get`` finds them in the session)."""
    ids = {d for d, msgs in groups if any(isinstance(m, TelemetryBatch) for m in msgs)}
    if not ids:
        return
    rows = await s.execute(select(Device).where(Device.id.in_(sorted(ids))))
    devices = {d.id: d for d in rows.scalars()}
    todo: list[tuple[str, int]] = []
    batches: list[tuple[Device, int, list[tuple[str, float, float]], int | None]] = []
    for device_id, msgs in groups:
        device = devices.get(device_id)
        if device is None:
            continue  # deleted: the frames' own work says so
        for m in msgs:
            if isinstance(m, TelemetryBatch):
                todo.append((device_id, id(m)))
                batches.append((device, m.seq, valid_points(m.points, now), m.prev))
    results = await telemetry_many.ingest_batches(s, batches, now=now)
    # the frames' ``get`` finds them (the session holds them weakly: keep them till commit)
    s.info.setdefault(_HELD, []).append(devices)
    done: dict[tuple[str, int], list[Prestored]] = s.info.setdefault(_PRESTORED, {})
    for key, b, r in zip(todo, batches, results, strict=True):
        done.setdefault(key, []).append((b[2], r))


def prestored(s: AsyncSession, device_id: str, m: TelemetryBatch) -> Prestored | None:
    """Batch ``m``'s valid points and result from ``prestore`` in this transaction (the
    result None: the frame stores it alone), or None when ``prestore`` did not see it."""
    ready = s.info.get(_PRESTORED, {}).get((device_id, id(m)))
    found: Prestored | None = ready.pop(0) if ready else None
    return found


def touch(s: AsyncSession, device: Device, session_id: str, now: float, mode: str) -> None:
    """A board heard from at ``now``: its device's and session's ``last_seen_at`` (and the
    session's mode), written for every board of the transaction at once by
    ``write_touches`` before the commit. The loaded ``device`` shows it at once."""
    set_committed_value(device, "last_seen_at", now)
    devices, sessions = s.info.setdefault(_TOUCHED, ({}, {}))
    devices[device.id] = now
    sessions[session_id] = (now, mode[:16])


# every board's device and session rows in one statement; the devices' row locks in id
# order (PostgreSQL locks the rows it updates in the order the join reaches them)
_PG_TOUCH = (
    "WITH u AS (SELECT * FROM unnest($1::varchar[], $2::float8[]) AS u(id, at)), "
    "k AS (SELECT d.id FROM devices d JOIN u ON d.id = u.id ORDER BY d.id FOR UPDATE OF d), "
    "d AS (UPDATE devices SET last_seen_at = u.at FROM u, k "
    "WHERE devices.id = u.id AND k.id = u.id RETURNING devices.id), "
    "c AS (UPDATE device_sessions SET last_seen_at = v.at, mode = v.mode "
    "FROM unnest($3::varchar[], $4::float8[], $5::varchar[]) AS v(id, at, mode) "
    "WHERE device_sessions.id = v.id RETURNING 1) "
    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM c)"
)


async def write_touches(s: AsyncSession) -> None:
    """Write what ``touch`` recorded in this transaction: one statement on PostgreSQL, one
    ``executemany`` per table on SQLite. ``StaleDataError`` if a device row is gone (as an
    ORM flush of its ``last_seen_at`` would raise: deleted meanwhile)."""
    touched: tuple[dict[str, float], dict[str, tuple[float, str]]] | None
    touched = s.info.pop(_TOUCHED, None)
    if not touched:
        return
    devices, sessions = touched
    ids = sorted(devices)
    conn = await s.connection()
    if is_pg(conn):
        sids = sorted(sessions)
        params = (
            ids,
            [devices[i] for i in ids],
            sids,
            [sessions[i][0] for i in sids],
            [sessions[i][1] for i in sids],
        )
        ((updated, _),) = await fetch(conn, _PG_TOUCH, params)
    else:
        result = await conn.exec_driver_sql(
            "UPDATE devices SET last_seen_at = ? WHERE id = ?", [(devices[i], i) for i in ids]
        )
        updated = result.rowcount
        rows = [(at, mode, sid) for sid, (at, mode) in sessions.items()]
        await executemany(
            conn, "UPDATE device_sessions SET last_seen_at = ?, mode = ? WHERE id = ?", rows
        )
    if updated != len(ids):
        raise StaleDataError(f"devices: {len(ids)} rows to update, {updated} matched")


async def event_effects(
    s: AsyncSession, device: Device, rows: list[dict[str, Any]], now: float, out: BusOut
) -> None:
    """The stored event rows' bus messages, and the alerts they raise or clear."""
    for row in rows:
        out.append(
            (
                device.tenant_id,
                "device.event",
                {
                    "device_id": device.id,
                    "name": device.name,
                    "seq": row["seq"],
                    "ts": row["ts"],
                    "type": row["type"],
                    "severity": row["severity"],
                    "message": row["message"],
                    "data": row["data"],
                },
            )
        )
        for effect in alerts.effects(row):
            await alerts.apply(s, device, effect, now, out)


def live_view(device_id: str, device_name: str, m: Status) -> dict[str, Any]:
    """What ``device.live`` subscribers hear of a Status frame."""
    return {
        "device_id": device_id,
        "name": device_name,
        "ts": m.ts,
        "mode": m.mode,
        "outbox": dict(m.outbox),
        "dropped": dict(m.dropped),
        "live": dict(m.live),
    }
