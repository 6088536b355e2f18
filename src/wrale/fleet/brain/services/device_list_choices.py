"""What the device list's filters offer: the tenant's sites, rooms, racks, groups, status
counts and the tags in use. Read-only; re-exported by ``device_list``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.groups import Group


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
