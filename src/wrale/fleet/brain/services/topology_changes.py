"""Changes to the physical structure: create, update and delete sites, rooms, racks and
zones. Names are unique where they live, a rack keeps its occupied slots, and a delete of a
non-empty object needs an admin's force (which unplaces its devices, or takes them out of
the zone). Every change is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.base import Base
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.topology_views import (
    M,
    get,
    rack_view,
    room_view,
    site_view,
    zone_view,
)
from wrale.shared.errors import ConflictError, InvalidRequestError

T = TypeVar("T", Site, Room, Rack, Zone)
MAX_UNITS = 60


# ----------------------------------------------------------------------------- helpers


async def flush(session: AsyncSession) -> None:
    """Write pending changes now, so a clash caught by a unique constraint (two requests
    racing for one name or slot) is a 409 here rather than a failed commit later."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError(
            "another change just took this name or slot; reload and try again"
        ) from exc


async def _unique(
    session: AsyncSession, model: type[M], what: str, name: str, **scope: Any
) -> None:
    stmt = select(func.count()).select_from(model).where(model.name == name)  # type: ignore[attr-defined]
    for col, value in scope.items():
        stmt = stmt.where(getattr(model, col) == value)
    if await session.scalar(stmt):
        raise ConflictError(f"a {what} named {name!r} already exists here", name=name)


async def _count(session: AsyncSession, model: type[Base], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _add(
    session: AsyncSession, p: Principal, obj: T, kind: str, view: Callable[[T], dict[str, Any]]
) -> T:
    """Store a new object and audit its creation."""
    session.add(obj)
    await flush(session)
    audit.record(
        session, p, f"{kind}.create", resource_type=kind, resource_id=obj.id, after=view(obj)
    )
    return obj


async def _audit_update(
    session: AsyncSession,
    p: Principal,
    obj: T,
    kind: str,
    view: Callable[[T], dict[str, Any]],
    before: dict[str, Any],
) -> T:
    """Audit a change (only when something changed), then flush it."""
    if _changed(before, view(obj)):
        audit.record(
            session,
            p,
            f"{kind}.update",
            resource_type=kind,
            resource_id=obj.id,
            before=before,
            after=view(obj),
        )
    await flush(session)
    return obj


def _changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before != after


# ----------------------------------------------------------------------------- sites


async def create_site(
    session: AsyncSession, p: Principal, name: str, address: str | None = None
) -> Site:
    p.require(Role.OPERATOR, "creating sites")
    await _unique(session, Site, "site", name, tenant_id=p.tenant_id)
    site = Site(tenant_id=p.tenant_id, name=name, address=address)
    return await _add(session, p, site, "site", site_view)


async def update_site(
    session: AsyncSession, p: Principal, site_id: str, changes: dict[str, Any]
) -> Site:
    p.require(Role.OPERATOR, "changing sites")
    site = await get(session, Site, p.tenant_id, site_id, "site")
    before = site_view(site)
    if "name" in changes and changes["name"] != site.name:
        await _unique(session, Site, "site", changes["name"], tenant_id=p.tenant_id)
        site.name = changes["name"]
    if "address" in changes:
        site.address = changes["address"]
    return await _audit_update(session, p, site, "site", site_view, before)


async def delete_site(
    session: AsyncSession, p: Principal, site_id: str, *, force: bool = False
) -> None:
    p.require(Role.OPERATOR, "deleting sites")
    site = await get(session, Site, p.tenant_id, site_id, "site")
    rooms = await _count(session, Room, Room.site_id == site.id)
    if rooms and not force:
        raise ConflictError(
            f"site {site.name!r} still has {rooms} room(s); delete or move them first "
            "(or, as an admin, delete with force=true)",
            rooms=rooms,
        )
    if force and rooms:
        p.require(Role.ADMIN, "force-deleting a site with its rooms and racks")
        racks = select(Rack.id).join(Room, Room.id == Rack.room_id).where(Room.site_id == site.id)
        await _unplace(session, Device.rack_id.in_(racks))
    audit.record(
        session,
        p,
        "site.delete",
        resource_type="site",
        resource_id=site.id,
        before=site_view(site),
        details={"force": force, "rooms": rooms},
    )
    await session.delete(site)


# ----------------------------------------------------------------------------- rooms


async def create_room(session: AsyncSession, p: Principal, site_id: str, name: str) -> Room:
    p.require(Role.OPERATOR, "creating rooms")
    site = await get(session, Site, p.tenant_id, site_id, "site")
    await _unique(session, Room, "room", name, site_id=site.id)
    room = Room(tenant_id=p.tenant_id, site_id=site.id, name=name)
    return await _add(session, p, room, "room", room_view)


async def update_room(
    session: AsyncSession, p: Principal, room_id: str, changes: dict[str, Any]
) -> Room:
    p.require(Role.OPERATOR, "changing rooms")
    room = await get(session, Room, p.tenant_id, room_id, "room")
    before = room_view(room)
    site_id = changes.get("site_id") or room.site_id
    name = changes.get("name") or room.name
    if site_id != room.site_id:
        await get(session, Site, p.tenant_id, site_id, "site")
    if (site_id, name) != (room.site_id, room.name):
        await _unique(session, Room, "room", name, site_id=site_id)
    room.site_id, room.name = site_id, name
    return await _audit_update(session, p, room, "room", room_view, before)


async def delete_room(
    session: AsyncSession, p: Principal, room_id: str, *, force: bool = False
) -> None:
    p.require(Role.OPERATOR, "deleting rooms")
    room = await get(session, Room, p.tenant_id, room_id, "room")
    racks = await _count(session, Rack, Rack.room_id == room.id)
    if racks and not force:
        raise ConflictError(
            f"room {room.name!r} still has {racks} rack(s); delete or move them first "
            "(or, as an admin, delete with force=true)",
            racks=racks,
        )
    if force and racks:
        p.require(Role.ADMIN, "force-deleting a room with its racks")
        await _unplace(session, Device.rack_id.in_(select(Rack.id).where(Rack.room_id == room.id)))
    audit.record(
        session,
        p,
        "room.delete",
        resource_type="room",
        resource_id=room.id,
        before=room_view(room),
        details={"force": force, "racks": racks},
    )
    await session.delete(room)


# ----------------------------------------------------------------------------- racks


async def create_rack(
    session: AsyncSession,
    p: Principal,
    room_id: str,
    name: str,
    *,
    units: int = 42,
    power_budget_w: float | None = None,
    cooling_zone: str | None = None,
    power_feed: str | None = None,
) -> Rack:
    p.require(Role.OPERATOR, "creating racks")
    room = await get(session, Room, p.tenant_id, room_id, "room")
    _check_rack_fields(units, power_budget_w)
    await _unique(session, Rack, "rack", name, room_id=room.id)
    rack = Rack(
        tenant_id=p.tenant_id,
        room_id=room.id,
        name=name,
        units=units,
        power_budget_w=power_budget_w,
        cooling_zone=cooling_zone,
        power_feed=power_feed,
    )
    return await _add(session, p, rack, "rack", rack_view)


def _check_rack_fields(units: int, power_budget_w: float | None) -> None:
    if not 1 <= units <= MAX_UNITS:
        raise InvalidRequestError(f"units: a rack has 1 to {MAX_UNITS} units", field="units")
    if power_budget_w is not None and power_budget_w < 0:
        raise InvalidRequestError("power_budget_w: must be 0 or more", field="power_budget_w")


async def update_rack(
    session: AsyncSession, p: Principal, rack_id: str, changes: dict[str, Any]
) -> Rack:
    """Change a rack; shrinking it below an occupied slot is refused (409)."""
    p.require(Role.OPERATOR, "changing racks")
    rack = await get(session, Rack, p.tenant_id, rack_id, "rack")
    before = rack_view(rack)
    room_id = changes.get("room_id") or rack.room_id
    name = changes.get("name") or rack.name
    units = changes.get("units") or rack.units
    budget = changes.get("power_budget_w", rack.power_budget_w)
    _check_rack_fields(units, budget)
    if room_id != rack.room_id:
        await get(session, Room, p.tenant_id, room_id, "room")
    if (room_id, name) != (rack.room_id, rack.name):
        await _unique(session, Rack, "rack", name, room_id=room_id)
    if units < rack.units:
        above = await session.scalar(
            select(Device)
            .where(Device.rack_id == rack.id, Device.slot_u > units)
            .order_by(Device.slot_u.desc())
            .limit(1)
        )
        if above is not None:
            raise ConflictError(
                f"rack {rack.name!r} cannot shrink to {units} U: device {above.name!r} "
                f"({above.id}) sits in slot {above.slot_u}",
                device_id=above.id,
                slot_u=above.slot_u,
            )
    rack.room_id, rack.name, rack.units, rack.power_budget_w = room_id, name, units, budget
    if "cooling_zone" in changes:
        rack.cooling_zone = changes["cooling_zone"]
    if "power_feed" in changes:
        rack.power_feed = changes["power_feed"]
    return await _audit_update(session, p, rack, "rack", rack_view, before)


async def delete_rack(
    session: AsyncSession, p: Principal, rack_id: str, *, force: bool = False
) -> None:
    p.require(Role.OPERATOR, "deleting racks")
    rack = await get(session, Rack, p.tenant_id, rack_id, "rack")
    devices = await _count(session, Device, Device.rack_id == rack.id)
    if devices and not force:
        raise ConflictError(
            f"rack {rack.name!r} still holds {devices} device(s); move them first "
            "(or, as an admin, delete with force=true, which unplaces them)",
            devices=devices,
        )
    if force and devices:
        p.require(Role.ADMIN, "force-deleting a rack that holds devices")
        await _unplace(session, Device.rack_id == rack.id)
    audit.record(
        session,
        p,
        "rack.delete",
        resource_type="rack",
        resource_id=rack.id,
        before=rack_view(rack),
        details={"force": force, "devices": devices},
    )
    await session.delete(rack)


async def _unplace(session: AsyncSession, where: Any) -> None:
    await session.execute(
        update(Device)
        .where(where)
        .values(rack_id=None, slot_u=None)
        .execution_options(synchronize_session=False)
    )


# ----------------------------------------------------------------------------- zones


async def create_zone(
    session: AsyncSession, p: Principal, name: str, description: str | None = None
) -> Zone:
    p.require(Role.OPERATOR, "creating zones")
    await _unique(session, Zone, "zone", name, tenant_id=p.tenant_id)
    zone = Zone(tenant_id=p.tenant_id, name=name, description=description)
    return await _add(session, p, zone, "zone", zone_view)


async def update_zone(
    session: AsyncSession, p: Principal, zone_id: str, changes: dict[str, Any]
) -> Zone:
    p.require(Role.OPERATOR, "changing zones")
    zone = await get(session, Zone, p.tenant_id, zone_id, "zone")
    before = zone_view(zone)
    if "name" in changes and changes["name"] != zone.name:
        await _unique(session, Zone, "zone", changes["name"], tenant_id=p.tenant_id)
        zone.name = changes["name"]
    if "description" in changes:
        zone.description = changes["description"]
    return await _audit_update(session, p, zone, "zone", zone_view, before)


async def delete_zone(
    session: AsyncSession, p: Principal, zone_id: str, *, force: bool = False
) -> None:
    p.require(Role.OPERATOR, "deleting zones")
    zone = await get(session, Zone, p.tenant_id, zone_id, "zone")
    devices = await _count(session, Device, Device.zone_id == zone.id)
    if devices and not force:
        raise ConflictError(
            f"zone {zone.name!r} still holds {devices} device(s); move them first "
            "(or, as an admin, delete with force=true, which takes them out of the zone)",
            devices=devices,
        )
    if force and devices:
        p.require(Role.ADMIN, "force-deleting a zone that holds devices")
        await session.execute(
            update(Device)
            .where(Device.zone_id == zone.id)
            .values(zone_id=None)
            .execution_options(synchronize_session=False)
        )
    audit.record(
        session,
        p,
        "zone.delete",
        resource_type="zone",
        resource_id=zone.id,
        before=zone_view(zone),
        details={"force": force, "devices": devices},
    )
    await session.delete(zone)
