"""What a device's telemetry, event and status frames become: the points ingestion accepts,
the stored batch's Ack and summary, the bus messages and alerts of stored events, the live
status view. Runs in the caller's transaction and sends nothing; bus messages are returned
in ``out`` for the caller to publish after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.channel import alerts
from wrale.fleet.brain.channel.alerts import BusOut
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import telemetry
from wrale.fleet.brain.services.telemetry_bounds import MAX_FUTURE_S, MIN_TS, bounds_of
from wrale.fleet.sync.protocol import Ack, Status, TelemetryBatch


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
) -> tuple[Ack, int]:
    """Store batch ``m`` with its valid points ``pts``: its Ack and the points stored."""
    r = await telemetry.ingest_batch(s, device, m.seq, pts, now=now, prev=m.prev)
    if r.stored and pts:
        out.append(
            (device.tenant_id, "telemetry.summary", telemetry_summary(device.id, m.seq, pts))
        )
    seq = m.seq if r.stored else max(r.last_seq, 0)
    return Ack(stream="telemetry", seq=seq, gap=r.gap, session=session_id), r.points


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
