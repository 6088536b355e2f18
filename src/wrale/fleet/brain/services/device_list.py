"""The device list of the dashboard: filters (name, status, tags, group, place, open alerts),
sorting (also by the latest telemetry) and counted pages, each answered in SQL at 10,000
devices. Read-only: no audit, no writes; the registry stays the owner of devices."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids
from wrale.shared.errors import InvalidRequestError

# sort key → the latest-telemetry metric it orders by (others order by a device column)
SORT_METRICS = {"cpu_temp": "cpu_temp_c", "power": "power_w", "fan": "fan_pct"}
SORTS = ("name", "status", "last_seen", *SORT_METRICS)
ALERT_FILTERS = ("open", "active", "none")  # has an open alert, an unacknowledged one, none
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
PLAIN_TAG = re.compile(r"^[A-Za-z0-9_.:=/@+-]{1,64}$")  # the API's tag pattern


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Which devices, in which order. Validated by the caller (the page's parser)."""

    q: str | None = None  # name contains, case-insensitive
    status: tuple[str, ...] = ()  # any of
    tags: tuple[str, ...] = ()  # all of
    group_id: str | None = None  # its devices and its subgroups'
    rack_id: str | None = None
    room_id: str | None = None
    site_id: str | None = None
    alert: str | None = None  # one of ALERT_FILTERS
    sort: str = "name"
    desc: bool = False


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


# ----------------------------------------------------------------------------- filters


def _has_tag(session: AsyncSession, tag: str) -> ColumnElement[bool]:
    """``tag`` is one of the device's tags (the JSON list), on PostgreSQL or SQLite.

    A plain tag (the API's pattern) is stored as exactly ``"tag"`` in the JSON text, with
    nothing to escape, so a case-sensitive substring test is exact, and it spares parsing
    every device's JSON (several times faster at 10,000 devices)."""
    pg = session.get_bind().dialect.name == "postgresql"
    if PLAIN_TAG.match(tag):
        needle = f'"{tag}"'
        if pg:
            return func.strpos(cast(Device.tags, Text), needle) > 0
        return func.instr(Device.tags, needle) > 0
    if pg:
        return func.cast(Device.tags, JSONB).contains(func.jsonb_build_array(literal(tag)))
    each = func.json_each(Device.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def selector_clause(session: AsyncSession, selector: dict[str, Any]) -> ColumnElement[bool]:
    """A dynamic group's selector as SQL: the same answer as ``groups.matches``."""
    parts: list[ColumnElement[bool]] = [_has_tag(session, t) for t in selector.get("tags_all", [])]
    if selector.get("tags_any"):
        parts.append(or_(*(_has_tag(session, t) for t in selector["tags_any"])))
    if selector.get("status"):
        parts.append(Device.status.in_(list(selector["status"])))
    if "model" in selector:
        parts.append(Device.model == selector["model"])
    if "rack_id" in selector:
        parts.append(Device.rack_id == selector["rack_id"])
    if "zone_id" in selector:
        parts.append(Device.zone_id == selector["zone_id"])
    if "room_id" in selector:
        parts.append(Device.rack_id.in_(select(Rack.id).where(Rack.room_id == selector["room_id"])))
    if "site_id" in selector:
        in_site = select(Rack.id).join(Room, Room.id == Rack.room_id)
        parts.append(Device.rack_id.in_(in_site.where(Room.site_id == selector["site_id"])))
    return and_(true(), *parts)


async def group_clause(session: AsyncSession, tenant_id: str, group_id: str) -> ColumnElement[bool]:
    """Members of the group and of its subgroups (static members, selector matches)."""
    rows = (
        await session.execute(
            select(Group.id, Group.parent_id, Group.kind, Group.selector).where(
                Group.tenant_id == tenant_id
            )
        )
    ).all()
    groups = {r.id: r for r in rows}
    if group_id not in groups:
        raise InvalidRequestError(f"group: there is no group {group_id}", field="group")
    children: dict[str | None, list[str]] = defaultdict(list)
    for r in rows:
        children[r.parent_id].append(r.id)
    ids, todo = [], [group_id]
    while todo:
        gid = todo.pop()
        if gid in ids:
            continue
        ids.append(gid)
        todo.extend(children[gid])
    static = [g for g in ids if groups[g].kind == "static"]
    clauses: list[ColumnElement[bool]] = [
        selector_clause(session, groups[g].selector or {})
        for g in ids
        if groups[g].kind == "dynamic"
    ]
    if static:
        members = select(GroupMember.device_id).where(GroupMember.group_id.in_(static))
        clauses.append(Device.id.in_(members))
    return or_(false(), *clauses)


def _with_alert(tenant_id: str, states: Sequence[str]) -> ColumnElement[bool]:
    """The device has an alert in one of ``states`` (one pass over the tenant's alerts)."""
    return Device.id.in_(
        select(Alert.device_id).where(
            Alert.tenant_id == tenant_id,
            Alert.device_id.is_not(None),
            Alert.state.in_(list(states)),
        )
    )


async def filters(session: AsyncSession, tenant_id: str, query: DeviceQuery) -> list[Any]:
    """The WHERE clauses of ``query`` over ``Device``."""
    out: list[Any] = [Device.tenant_id == tenant_id]
    if query.q:
        out.append(func.lower(Device.name).contains(query.q.lower(), autoescape=True))
    if query.status:
        out.append(Device.status.in_(list(query.status)))
    out.extend(_has_tag(session, t) for t in query.tags)
    if query.group_id:
        out.append(await group_clause(session, tenant_id, query.group_id))
    if query.rack_id:
        out.append(Device.rack_id == query.rack_id)
    if query.room_id:
        out.append(Device.rack_id.in_(select(Rack.id).where(Rack.room_id == query.room_id)))
    if query.site_id:
        in_site = select(Rack.id).join(Room, Room.id == Rack.room_id)
        out.append(Device.rack_id.in_(in_site.where(Room.site_id == query.site_id)))
    if query.alert == "open":
        out.append(_with_alert(tenant_id, OPEN_STATES))
    elif query.alert == "active":
        out.append(_with_alert(tenant_id, ("active",)))
    elif query.alert == "none":
        out.append(~_with_alert(tenant_id, OPEN_STATES))
    return out


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


# ----------------------------------------------------------------------------- choices


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    label: str
    group: str = ""  # where it belongs (a rack's room, a group's kind)


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filters offer: the tenant's places, groups and status counts (the tags in
    use cost a pass over every device: ``tags`` gives them on their own)."""

    sites: list[Choice]
    rooms: list[Choice]
    racks: list[Choice]
    groups: list[Choice]
    statuses: dict[str, int]


MAX_TAG_CHOICES = 300


async def choices(session: AsyncSession, tenant_id: str) -> Choices:
    places = await session.execute(
        select(
            Site.id.label("site_id"),
            Site.name.label("site"),
            Room.id.label("room_id"),
            Room.name.label("room"),
            Rack.id.label("rack_id"),
            Rack.name.label("rack"),
        )
        .select_from(Site)
        .outerjoin(Room, Room.site_id == Site.id)
        .outerjoin(Rack, Rack.room_id == Room.id)
        .where(Site.tenant_id == tenant_id)
        .order_by(Site.name, Room.name, func.length(Rack.name), Rack.name)
    )
    rows = places.all()
    several = len({r.site_id for r in rows}) > 1
    sites: dict[str, Choice] = {}
    rooms: dict[str, Choice] = {}
    racks: list[Choice] = []
    for r in rows:
        sites.setdefault(r.site_id, Choice(r.site_id, r.site))
        if r.room_id is None:
            continue
        where = f"{r.site} · {r.room}" if several else r.room
        rooms.setdefault(r.room_id, Choice(r.room_id, r.room, r.site))
        if r.rack_id is not None:
            racks.append(Choice(r.rack_id, r.rack, where))
    groups = await session.execute(
        select(Group.id, Group.name, Group.kind)
        .where(Group.tenant_id == tenant_id)
        .order_by(Group.name)
    )
    statuses = await session.execute(
        select(Device.status, func.count())
        .where(Device.tenant_id == tenant_id)
        .group_by(Device.status)
    )
    return Choices(
        sites=list(sites.values()),
        rooms=list(rooms.values()),
        racks=racks,
        groups=[Choice(r.id, r.name, r.kind) for r in groups],
        statuses={str(s): int(n) for s, n in statuses},
    )


async def tags(session: AsyncSession, tenant_id: str, limit: int = MAX_TAG_CHOICES) -> list[str]:
    """The distinct tags in use, alphabetically (the first ``limit``)."""
    if session.get_bind().dialect.name == "postgresql":
        sql = (
            "SELECT DISTINCT t FROM devices, jsonb_array_elements_text(devices.tags::jsonb) t "
            "WHERE devices.tenant_id = :tenant ORDER BY t LIMIT :limit"
        )
    else:
        sql = (
            "SELECT DISTINCT j.value FROM devices, json_each(devices.tags) j "
            "WHERE devices.tenant_id = :tenant ORDER BY j.value LIMIT :limit"
        )
    rows = await session.execute(text(sql), {"tenant": tenant_id, "limit": limit})
    return [str(r[0]) for r in rows]
