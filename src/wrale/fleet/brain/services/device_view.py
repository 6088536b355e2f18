"""Read-only views of one device for the dashboard's device page: where it sits, its mode
and power source, its commands, alerts, diagnostics runs and audit trail, and its telemetry
in 10-second buckets. Every query is bounded to one device; nothing here writes.
"""

# ruff: noqa: S608 - SQL text interpolates only placeholders and constant names
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import AuditEntry, Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import ChannelSession, DeviceEvent
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.fleet.brain.services.telemetry_store import (
    fetch,
    is_pg,
    lookup_metric_ids,
    placeholders,
)

DIAG_OP = "run_diag"
DIAG_EVENT = "DIAGNOSTICS"
FAILOVER_EVENT = "SOURCE_FAILOVER"
POWER_SOURCES = ("main", "battery", "solar")


@dataclass(frozen=True, slots=True)
class Location:
    """Site → room → rack → slot of a device, and its free-form zone (each may be None)."""

    site_id: str | None = None
    site_name: str | None = None
    room_id: str | None = None
    room_name: str | None = None
    rack_id: str | None = None
    rack_name: str | None = None
    rack_units: int | None = None
    slot_u: int | None = None
    zone_id: str | None = None
    zone_name: str | None = None


async def location(session: AsyncSession, device: Device) -> Location:
    """The device's place in the topology (one query for the rack's chain, one for a zone)."""
    site_id = site_name = room_id = room_name = rack_name = None
    units: int | None = None
    if device.rack_id:
        row = (
            await session.execute(
                select(Rack.name, Rack.units, Room.id, Room.name, Site.id, Site.name)
                .join(Room, Room.id == Rack.room_id)
                .join(Site, Site.id == Room.site_id)
                .where(Rack.id == device.rack_id)
            )
        ).first()
        if row is not None:
            rack_name, units, room_id, room_name, site_id, site_name = row
    zone_name = None
    if device.zone_id:
        zone_name = await session.scalar(select(Zone.name).where(Zone.id == device.zone_id))
    return Location(
        site_id=site_id,
        site_name=site_name,
        room_id=room_id,
        room_name=room_name,
        rack_id=device.rack_id if rack_name is not None else None,
        rack_name=rack_name,
        rack_units=units,
        slot_u=device.slot_u if rack_name is not None else None,
        zone_id=device.zone_id if zone_name is not None else None,
        zone_name=zone_name,
    )


async def channel_mode(session: AsyncSession, device_id: str) -> tuple[str | None, bool]:
    """The agent's mode (normal / safe / autonomous) as its newest session last said it,
    and whether that session is still open."""
    row = (
        await session.execute(
            select(ChannelSession.mode, ChannelSession.closed_at)
            .where(ChannelSession.device_id == device_id)
            .order_by(ChannelSession.opened_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None, False
    return (row.mode or None), row.closed_at is None


async def last_failover_source(session: AsyncSession, device_id: str) -> str | None:
    """The power source the board last switched to (its newest SOURCE_FAILOVER event)."""
    data = await session.scalar(
        select(DeviceEvent.data)
        .where(DeviceEvent.device_id == device_id, DeviceEvent.type == FAILOVER_EVENT)
        .order_by(DeviceEvent.id.desc())
        .limit(1)
    )
    source = (data or {}).get("to_source")
    return source if source in POWER_SOURCES else None


def power_source(on_battery: float | None, last_switch: str | None) -> str | None:
    """main / battery / solar from the ``on_battery`` flag and the last failover. Pure."""
    if on_battery is None:
        return last_switch
    if on_battery >= 0.5:
        return "battery"
    return "solar" if last_switch == "solar" else "main"


async def commands(
    session: AsyncSession,
    device: Device,
    *,
    before_id: str | None = None,
    op: str | None = None,
    limit: int = 25,
) -> list[Command]:
    """The device's commands, newest first; ``before_id`` continues to older ones."""
    stmt = select(Command).where(
        Command.tenant_id == device.tenant_id, Command.device_id == device.id
    )
    if before_id:
        stmt = stmt.where(Command.id < before_id)
    if op:
        stmt = stmt.where(Command.op == op)
    return list((await session.scalars(stmt.order_by(Command.id.desc()).limit(limit))).all())


async def diagnostics_events(
    session: AsyncSession, device_id: str, limit: int = 10
) -> list[DeviceEvent]:
    """The board's DIAGNOSTICS events (one per run), newest first."""
    stmt = (
        select(DeviceEvent)
        .where(DeviceEvent.device_id == device_id, DeviceEvent.type == DIAG_EVENT)
        .order_by(DeviceEvent.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def alerts(session: AsyncSession, device: Device, cleared: int = 20) -> list[Alert]:
    """The device's open alerts (active, then acknowledged; newest first), then its
    ``cleared`` most recently raised cleared ones."""
    rank = case((Alert.state == "active", 0), else_=1)
    open_rows = await session.scalars(
        select(Alert)
        .where(
            Alert.tenant_id == device.tenant_id,
            Alert.device_id == device.id,
            Alert.state.in_(OPEN_STATES),
        )
        .order_by(rank, Alert.raised_at.desc())
        .limit(200)
    )
    done = await session.scalars(
        select(Alert)
        .where(
            Alert.tenant_id == device.tenant_id,
            Alert.device_id == device.id,
            Alert.state.not_in(OPEN_STATES),
        )
        .order_by(Alert.raised_at.desc())
        .limit(cleared)
    )
    return [*open_rows, *done]


async def audit_trail(
    session: AsyncSession, device: Device, related_ids: Sequence[str] = (), limit: int = 50
) -> list[AuditEntry]:
    """Audit entries about the device (its twin included) and about ``related_ids`` (its
    commands and alerts), newest first."""
    ids = [device.id, *dict.fromkeys(related_ids)][:201]
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.tenant_id == device.tenant_id, AuditEntry.resource_id.in_(ids))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def bucketed(
    session: AsyncSession,
    device: Device,
    metrics: Sequence[str],
    start: float,
    end: float,
    size_s: int = 10,
) -> dict[str, list[list[float]]]:
    """metric → ``[[bucket_ts, mean, min, max], …]`` of the raw points in [start, end],
    in ``size_s`` buckets (one grouped query over the raw table's primary key)."""
    ids = await lookup_metric_ids(session, metrics)
    if not ids:
        return {}
    names = {v: k for k, v in ids.items()}
    conn = await session.connection()
    a, b, c = placeholders(conn, 3).split(", ")
    marks = placeholders(conn, len(names), 4)
    floor = f"FLOOR(ts / {size_s})" if is_pg(conn) else f"CAST(ts / {size_s} AS INTEGER)"
    sql = (
        f"SELECT metric_id, {floor} * {size_s} AS bucket, AVG(value), MIN(value), MAX(value) "
        f"FROM telemetry_raw WHERE device_num = {a} AND ts >= {b} AND ts <= {c} "
        f"AND metric_id IN ({marks}) GROUP BY metric_id, bucket ORDER BY metric_id, bucket"
    )
    rows = await fetch(conn, sql, (device.num, start, end, *names))
    out: dict[str, list[list[float]]] = {}
    for mid, bucket, mean, lo, hi in rows:
        out.setdefault(names[int(mid)], []).append(
            [float(bucket), float(mean), float(lo), float(hi)]
        )
    return out


def diag_runs(cmds: Sequence[Command], events: Sequence[DeviceEvent]) -> list[dict[str, Any]]:
    """One row per diagnostics run, newest first: the ``run_diag`` command (its lifecycle
    and per-test results) joined by run id to the board's DIAGNOSTICS event. Pure."""
    by_run: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for c in cmds:
        result = c.result or {}
        tests = [_test(r) for r in result.get("results") or [] if isinstance(r, dict)]
        run_id = next((str(r["run_id"]) for r in tests if r.get("run_id")), None)
        row: dict[str, Any] = {
            "at": c.finished_at or c.sent_at or c.created_at,
            "run_id": run_id,
            "command": c,
            "event": None,
            "results": tests,
            "worst": _worst(str(r.get("status", "")) for r in tests) if tests else None,
            "summary": c.reason or _counts_text(result.get("summary")),
        }
        rows.append(row)
        if run_id:
            by_run[run_id] = row
    for e in events:
        data = e.data or {}
        run_id = str(data.get("run_id") or "") or None
        counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
        worst = _worst(k for k, v in counts.items() if v) if counts else None
        known = by_run.get(run_id) if run_id else None
        if known is not None:
            known["event"] = e
            known["worst"] = known["worst"] or worst
            continue
        rows.append(
            {
                "at": e.ts or e.created_at,
                "run_id": run_id,
                "command": None,
                "event": e,
                "results": [],
                "worst": worst,
                "summary": e.message,
            }
        )
    rows.sort(key=lambda r: float(r["at"] or 0.0), reverse=True)
    return rows


TEST_KEYS = ("name", "component", "status", "reading", "unit", "expected", "message", "run_id")


def _test(r: dict[str, Any]) -> dict[str, Any]:
    """One test result of a run with every key present (None where the board left it out)."""
    out = {k: r.get(k) for k in TEST_KEYS}
    out["status"] = str(out["status"] or "").upper() or None
    return out


_RANK = {"SKIPPED": 0, "PASS": 1, "WARNING": 2, "FAIL": 3}


def _worst(statuses: Any) -> str | None:
    known = [s.upper() for s in statuses if str(s).upper() in _RANK]
    return max(known, key=_RANK.__getitem__) if known else None


def _counts_text(summary: Any) -> str | None:
    if not isinstance(summary, dict) or not summary:
        return None
    return ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.items()))
