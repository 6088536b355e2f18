"""The device list of the dashboard: filters (name, status, tags, group, place, open alerts),
sorting (also by the latest telemetry) and counted pages, each answered in SQL at 10,000
devices. Read-only: no audit, no writes; the registry stays the owner of devices.

Sorting, counting and pages are here; the query and its WHERE clauses are
``device_list_filters``, the filters' choices ``device_list_choices`` (both re-exported here,
so callers keep using ``device_list.*``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.fleet.brain.services.device_list_choices import MAX_TAG_CHOICES as MAX_TAG_CHOICES
from wrale.fleet.brain.services.device_list_choices import Choice as Choice
from wrale.fleet.brain.services.device_list_choices import Choices as Choices
from wrale.fleet.brain.services.device_list_choices import choices as choices
from wrale.fleet.brain.services.device_list_choices import tags as tags
from wrale.fleet.brain.services.device_list_filters import ALERT_FILTERS as ALERT_FILTERS
from wrale.fleet.brain.services.device_list_filters import PLAIN_TAG as PLAIN_TAG
from wrale.fleet.brain.services.device_list_filters import DeviceQuery as DeviceQuery
from wrale.fleet.brain.services.device_list_filters import filters as filters
from wrale.fleet.brain.services.device_list_filters import group_clause as group_clause
from wrale.fleet.brain.services.device_list_filters import selector_clause as selector_clause
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

# sort key → the latest-telemetry metric it orders by (others order by a device column)
SORT_METRICS = {"cpu_temp": "cpu_temp_c", "power": "power_w", "fan": "fan_pct"}
SORTS = ("name", "status", "last_seen", *SORT_METRICS)
SHOWN_METRICS = ("cpu_temp_c", "gpu_temp_c", "ambient_temp_c", "power_w", "fan_pct", "on_battery")
# status sort: what needs a look first
STATUS_RANK = (
    "error",
    "offline",
    "quarantined",
    "maintenance",
    "unknown",
    "online",
    "decommissioned",
)
SEVERITY_RANK = ("CRITICAL", "MAJOR", "MINOR", "WARNING", "INFO")


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    name: str
    status: str
    tags: list[str]
    model: str | None
    last_seen_at: float | None
    rack_id: str | None
    rack_name: str | None
    room_name: str | None
    slot_u: int | None
    metrics: dict[str, float] = field(default_factory=dict)  # SHOWN_METRICS it has
    alerts: int = 0  # open alerts
    worst: str | None = None  # the most severe open alert's severity


@dataclass(frozen=True, slots=True)
class DevicePage:
    rows: list[DeviceRow]
    total: int
    offset: int
    limit: int


# ----------------------------------------------------------------------------- reading


async def count(session: AsyncSession, tenant_id: str, query: DeviceQuery) -> int:
    stmt = select(func.count()).select_from(Device).where(*await filters(session, tenant_id, query))
    return int(await session.scalar(stmt) or 0)


async def matching_ids(
    session: AsyncSession, tenant_id: str, query: DeviceQuery, limit: int
) -> list[str]:
    """Ids of the matching devices (by id), at most ``limit``."""
    stmt = select(Device.id).where(*await filters(session, tenant_id, query))
    return list((await session.scalars(stmt.order_by(Device.id).limit(limit))).all())


async def _ordered(session: AsyncSession, query: DeviceQuery, stmt: Select[Any]) -> Select[Any]:
    metric = SORT_METRICS.get(query.sort)
    if metric is not None:
        mid = (await lookup_metric_ids(session, [metric])).get(metric, -1)
        latest = aliased(TelemetryLatest)
        stmt = stmt.outerjoin(
            latest, and_(latest.device_num == Device.num, latest.metric_id == mid)
        )
        value = latest.value.desc() if query.desc else latest.value.asc()
        # devices without the metric come last either way
        return stmt.order_by(case((latest.value.is_(None), 1), else_=0), value, Device.id)
    if query.sort == "status":
        rank = case({s: i for i, s in enumerate(STATUS_RANK)}, value=Device.status, else_=99)
        return stmt.order_by(rank.desc() if query.desc else rank, Device.name, Device.id)
    if query.sort == "last_seen":
        seen = Device.last_seen_at.desc() if query.desc else Device.last_seen_at.asc()
        return stmt.order_by(case((Device.last_seen_at.is_(None), 1), else_=0), seen, Device.id)
    name = Device.name.desc() if query.desc else Device.name.asc()
    return stmt.order_by(name, Device.id)


async def page(
    session: AsyncSession, tenant_id: str, query: DeviceQuery, offset: int, limit: int
) -> DevicePage:
    """One page of matching devices with their place, latest readings and open alerts.

    ``offset`` past the end is moved to the last page."""
    clauses = await filters(session, tenant_id, query)
    total = int(await session.scalar(select(func.count()).select_from(Device).where(*clauses)) or 0)
    if offset >= total and total:
        offset = (total - 1) // limit * limit
    # first the page's ids alone (a narrow sort), then their rows
    order = await _ordered(session, query, select(Device.id).where(*clauses))
    ids = list((await session.scalars(order.offset(offset).limit(limit))).all())
    stmt = (
        select(
            Device.id,
            Device.num,
            Device.name,
            Device.status,
            Device.tags,
            Device.model,
            Device.last_seen_at,
            Device.rack_id,
            Device.slot_u,
            Rack.name.label("rack_name"),
            Room.name.label("room_name"),
        )
        .outerjoin(Rack, Rack.id == Device.rack_id)
        .outerjoin(Room, Room.id == Rack.room_id)
        .where(Device.id.in_(ids))
    )
    by_id = {r.id: r for r in (await session.execute(stmt)).all()} if ids else {}
    found = [by_id[i] for i in ids if i in by_id]
    metrics = await _latest(session, [int(r.num) for r in found])
    alerts = await _alerts(session, tenant_id, [r.id for r in found])
    rows = [
        DeviceRow(
            id=r.id,
            name=r.name,
            status=r.status,
            tags=list(r.tags or []),
            model=r.model,
            last_seen_at=r.last_seen_at,
            rack_id=r.rack_id,
            rack_name=r.rack_name,
            room_name=r.room_name,
            slot_u=r.slot_u,
            metrics=metrics.get(int(r.num), {}),
            alerts=alerts.get(r.id, (0, None))[0],
            worst=alerts.get(r.id, (0, None))[1],
        )
        for r in found
    ]
    return DevicePage(rows, total, offset, limit)


async def _latest(session: AsyncSession, nums: list[int]) -> dict[int, dict[str, float]]:
    if not nums:
        return {}
    ids = await lookup_metric_ids(session, SHOWN_METRICS)
    if not ids:
        return {}
    names = {i: n for n, i in ids.items()}
    rows = await session.execute(
        select(TelemetryLatest.device_num, TelemetryLatest.metric_id, TelemetryLatest.value).where(
            TelemetryLatest.device_num.in_(nums), TelemetryLatest.metric_id.in_(list(names))
        )
    )
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for num, mid, value in rows:
        out[int(num)][names[int(mid)]] = float(value)
    return out


async def _alerts(
    session: AsyncSession, tenant_id: str, device_ids: list[str]
) -> dict[str, tuple[int, str | None]]:
    """device id → (open alerts, the worst severity among them)."""
    if not device_ids:
        return {}
    rank = case({s: i for i, s in enumerate(SEVERITY_RANK)}, value=Alert.severity, else_=99)
    rows = await session.execute(
        select(Alert.device_id, func.count(), func.min(rank))
        .where(
            Alert.tenant_id == tenant_id,
            Alert.device_id.in_(device_ids),
            Alert.state.in_(OPEN_STATES),
        )
        .group_by(Alert.device_id)
    )
    return {
        str(d): (int(n), SEVERITY_RANK[w] if w is not None and w < len(SEVERITY_RANK) else None)
        for d, n, w in rows
    }
