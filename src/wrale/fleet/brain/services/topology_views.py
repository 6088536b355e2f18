"""The physical topology as it is read: a row in the tenant, each object's view, the whole
tree (sites → rooms → racks → devices in slots, plus zones) and a rack's power draw.
Writes nothing; changes live in ``topology_changes`` and ``topology``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.base import Base
from wrale.fleet.brain.services.lookup import get_owned

M = TypeVar("M", bound=Base)


async def get(session: AsyncSession, model: type[M], tenant_id: str, obj_id: str, what: str) -> M:
    """A row of ``model`` in the tenant, or ``NotFoundError`` (another tenant's is not found)."""
    return await get_owned(session, model, tenant_id, obj_id, what)


def site_view(s: Site) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "address": s.address, "created_at": s.created_at}


def room_view(r: Room) -> dict[str, Any]:
    return {"id": r.id, "site_id": r.site_id, "name": r.name, "created_at": r.created_at}


def rack_view(r: Rack) -> dict[str, Any]:
    return {
        "id": r.id,
        "room_id": r.room_id,
        "name": r.name,
        "units": r.units,
        "power_budget_w": r.power_budget_w,
        "cooling_zone": r.cooling_zone,
        "power_feed": r.power_feed,
        "created_at": r.created_at,
    }


def zone_view(z: Zone) -> dict[str, Any]:
    return {"id": z.id, "name": z.name, "description": z.description, "created_at": z.created_at}


def location_view(d: Device) -> dict[str, Any]:
    return {"device_id": d.id, "rack_id": d.rack_id, "slot_u": d.slot_u, "zone_id": d.zone_id}


async def tree(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """The whole physical tree: sites → rooms → racks → devices in slots, plus zones."""
    t = tenant_id
    sites = (await session.scalars(select(Site).where(Site.tenant_id == t))).all()
    rooms = (await session.scalars(select(Room).where(Room.tenant_id == t))).all()
    racks = (await session.scalars(select(Rack).where(Rack.tenant_id == t))).all()
    zones = (await session.scalars(select(Zone).where(Zone.tenant_id == t))).all()
    rows = (
        await session.execute(
            select(
                Device.id, Device.name, Device.status, Device.rack_id, Device.slot_u, Device.zone_id
            ).where(Device.tenant_id == t)
        )
    ).all()
    in_rack: dict[str, list[dict[str, Any]]] = defaultdict(list)
    in_zone: dict[str, int] = defaultdict(int)
    unplaced = 0
    for d in rows:
        if d.rack_id:
            in_rack[d.rack_id].append(
                {"id": d.id, "name": d.name, "slot_u": d.slot_u, "status": d.status}
            )
        if d.zone_id:
            in_zone[d.zone_id] += 1
        if not d.rack_id and not d.zone_id:
            unplaced += 1
    racks_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(racks, key=lambda r: r.name):
        devices = sorted(in_rack[r.id], key=lambda d: d["slot_u"] or 0)
        racks_of[r.room_id].append({**rack_view(r), "devices": devices})
    rooms_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for room in sorted(rooms, key=lambda r: r.name):
        rooms_of[room.site_id].append({**room_view(room), "racks": racks_of[room.id]})
    return {
        "sites": [
            {**site_view(s), "rooms": rooms_of[s.id]} for s in sorted(sites, key=lambda s: s.name)
        ],
        "zones": [
            {**zone_view(z), "device_count": in_zone[z.id]}
            for z in sorted(zones, key=lambda z: z.name)
        ],
        "unplaced_devices": unplaced,
    }


@dataclass
class RackPower:
    rack_id: str
    budget_w: float | None
    draw_w: float
    devices_reporting: int
    devices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headroom_w(self) -> float | None:
        return None if self.budget_w is None else self.budget_w - self.draw_w

    @property
    def over_budget(self) -> bool:
        return self.budget_w is not None and self.draw_w > self.budget_w


async def rack_power(session: AsyncSession, tenant_id: str, rack_id: str) -> RackPower:
    """A rack's draw: the sum of each device's latest ``power_w`` reading, and its budget."""
    rack = await get(session, Rack, tenant_id, rack_id, "rack")
    from wrale.fleet.brain.services.telemetry import latest_values  # another area's service

    devices = (
        await session.scalars(
            select(Device).where(Device.rack_id == rack.id).order_by(Device.slot_u)
        )
    ).all()
    latest = await latest_values(session, tenant_id, "power_w", [d.id for d in devices])
    rows = []
    for d in devices:
        at, value = latest.get(d.id, (None, None))
        rows.append({"id": d.id, "name": d.name, "slot_u": d.slot_u, "power_w": value, "at": at})
    return RackPower(
        rack_id=rack.id,
        budget_w=rack.power_budget_w,
        draw_w=round(sum(v for _, v in latest.values()), 3),
        devices_reporting=len(latest),
        devices=rows,
    )
