"""``/sites``, ``/rooms``, ``/racks``, ``/zones``, ``/topology`` and device placement
(``/devices/{id}/location``). Reads for every role; writes for operators and admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.base import Base
from wrale.fleet.brain.services import topology as topo
from wrale.user.api.deps import OperatorDep, PageDep, PageParams, PrincipalDep, SessionDep, StateDep
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.topology import (
    Id,
    LocationPublic,
    LocationUpdate,
    RackCreate,
    RackPowerPublic,
    RackPublic,
    RackUpdate,
    RoomCreate,
    RoomPublic,
    RoomUpdate,
    SiteCreate,
    SitePublic,
    SiteUpdate,
    TopologyTree,
    ZoneCreate,
    ZonePublic,
    ZoneUpdate,
)

router = APIRouter()
Force = Annotated[
    bool, Query(description="admin only: delete with everything under it (devices unplaced)")
]


async def _page(
    session: AsyncSession, model: Any, tenant_id: str, page: PageParams, *where: Any
) -> list[Any]:
    stmt = select(model).where(model.tenant_id == tenant_id, *where)
    return list(await fetch_page(session, stmt, model.id, page))


def _site(s: Site) -> SitePublic:
    return SitePublic.model_validate(topo.site_view(s))


def _room(r: Room) -> RoomPublic:
    return RoomPublic.model_validate(topo.room_view(r))


def _rack(r: Rack) -> RackPublic:
    return RackPublic.model_validate(topo.rack_view(r))


def _zone(z: Zone) -> ZonePublic:
    return ZonePublic.model_validate(topo.zone_view(z))


def _by_name(model: type[Base], name: str | None) -> tuple[Any, ...]:
    return (model.name == name,) if name else ()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- tree


@router.get("/topology", tags=["topology"])
async def get_topology(p: PrincipalDep, session: SessionDep) -> TopologyTree:
    """The whole physical tree: sites → rooms → racks → devices in slots, plus zones."""
    return TopologyTree.model_validate(await topo.tree(session, p.tenant_id))


# ----------------------------------------------------------------------------- sites

NameQ = Annotated[
    str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="exact name")
]


@router.get("/sites", tags=["topology"])
async def list_sites(
    p: PrincipalDep, session: SessionDep, page: PageDep, name: NameQ = None
) -> Page[SitePublic]:
    rows = await _page(session, Site, p.tenant_id, page, *_by_name(Site, name))
    return page_of(rows, page, _site)


@router.post("/sites", status_code=201, tags=["topology"])
async def create_site(body: SiteCreate, p: OperatorDep, session: SessionDep) -> SitePublic:
    return _site(await topo.create_site(session, p, body.name, body.address))


@router.get("/sites/{site_id}", tags=["topology"])
async def get_site(site_id: str, p: PrincipalDep, session: SessionDep) -> SitePublic:
    return _site(await topo.get(session, Site, p.tenant_id, site_id, "site"))


@router.patch("/sites/{site_id}", tags=["topology"])
async def update_site(
    site_id: str, body: SiteUpdate, p: OperatorDep, session: SessionDep
) -> SitePublic:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        changes.pop("name")
    return _site(await topo.update_site(session, p, site_id, changes))


@router.delete("/sites/{site_id}", status_code=204, tags=["topology"])
async def delete_site(
    site_id: str, p: OperatorDep, session: SessionDep, force: Force = False
) -> Response:
    await topo.delete_site(session, p, site_id, force=force)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- rooms


@router.get("/rooms", tags=["topology"])
async def list_rooms(
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    site_id: Annotated[Id | None, Query()] = None,
    name: NameQ = None,
) -> Page[RoomPublic]:
    where = (Room.site_id == site_id,) if site_id else ()
    rows = await _page(session, Room, p.tenant_id, page, *where, *_by_name(Room, name))
    return page_of(rows, page, _room)


@router.post("/rooms", status_code=201, tags=["topology"])
async def create_room(body: RoomCreate, p: OperatorDep, session: SessionDep) -> RoomPublic:
    return _room(await topo.create_room(session, p, body.site_id, body.name))


@router.get("/rooms/{room_id}", tags=["topology"])
async def get_room(room_id: str, p: PrincipalDep, session: SessionDep) -> RoomPublic:
    return _room(await topo.get(session, Room, p.tenant_id, room_id, "room"))


@router.patch("/rooms/{room_id}", tags=["topology"])
async def update_room(
    room_id: str, body: RoomUpdate, p: OperatorDep, session: SessionDep
) -> RoomPublic:
    return _room(await topo.update_room(session, p, room_id, body.model_dump(exclude_unset=True)))


@router.delete("/rooms/{room_id}", status_code=204, tags=["topology"])
async def delete_room(
    room_id: str, p: OperatorDep, session: SessionDep, force: Force = False
) -> Response:
    await topo.delete_room(session, p, room_id, force=force)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- racks


@router.get("/racks", tags=["topology"])
async def list_racks(
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    room_id: Annotated[Id | None, Query()] = None,
    cooling_zone: Annotated[
        str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    ] = None,
    name: NameQ = None,
) -> Page[RackPublic]:
    where: list[Any] = list(_by_name(Rack, name))
    if room_id:
        where.append(Rack.room_id == room_id)
    if cooling_zone:
        where.append(Rack.cooling_zone == cooling_zone)
    rows = await _page(session, Rack, p.tenant_id, page, *where)
    return page_of(rows, page, _rack)


@router.post("/racks", status_code=201, tags=["topology"])
async def create_rack(body: RackCreate, p: OperatorDep, session: SessionDep) -> RackPublic:
    rack = await topo.create_rack(
        session,
        p,
        body.room_id,
        body.name,
        units=body.units,
        power_budget_w=body.power_budget_w,
        cooling_zone=body.cooling_zone,
        power_feed=body.power_feed,
    )
    return _rack(rack)


@router.get("/racks/{rack_id}", tags=["topology"])
async def get_rack(rack_id: str, p: PrincipalDep, session: SessionDep) -> RackPublic:
    return _rack(await topo.get(session, Rack, p.tenant_id, rack_id, "rack"))


@router.patch("/racks/{rack_id}", tags=["topology"])
async def update_rack(
    rack_id: str, body: RackUpdate, p: OperatorDep, session: SessionDep
) -> RackPublic:
    return _rack(await topo.update_rack(session, p, rack_id, body.model_dump(exclude_unset=True)))


@router.delete("/racks/{rack_id}", status_code=204, tags=["topology"])
async def delete_rack(
    rack_id: str, p: OperatorDep, session: SessionDep, force: Force = False
) -> Response:
    await topo.delete_rack(session, p, rack_id, force=force)
    return Response(status_code=204)


@router.get("/racks/{rack_id}/power", tags=["topology"])
async def get_rack_power(rack_id: str, p: PrincipalDep, session: SessionDep) -> RackPowerPublic:
    """The rack's draw (sum of each device's latest ``power_w``) against its budget."""
    power = await topo.rack_power(session, p.tenant_id, rack_id)
    return RackPowerPublic(
        rack_id=power.rack_id,
        budget_w=power.budget_w,
        draw_w=power.draw_w,
        devices_reporting=power.devices_reporting,
        devices=power.devices,
        headroom_w=power.headroom_w,
        over_budget=power.over_budget,
    )


# ----------------------------------------------------------------------------- zones


@router.get("/zones", tags=["topology"])
async def list_zones(
    p: PrincipalDep, session: SessionDep, page: PageDep, name: NameQ = None
) -> Page[ZonePublic]:
    rows = await _page(session, Zone, p.tenant_id, page, *_by_name(Zone, name))
    return page_of(rows, page, _zone)


@router.post("/zones", status_code=201, tags=["topology"])
async def create_zone(body: ZoneCreate, p: OperatorDep, session: SessionDep) -> ZonePublic:
    return _zone(await topo.create_zone(session, p, body.name, body.description))


@router.get("/zones/{zone_id}", tags=["topology"])
async def get_zone(zone_id: str, p: PrincipalDep, session: SessionDep) -> ZonePublic:
    return _zone(await topo.get(session, Zone, p.tenant_id, zone_id, "zone"))


@router.patch("/zones/{zone_id}", tags=["topology"])
async def update_zone(
    zone_id: str, body: ZoneUpdate, p: OperatorDep, session: SessionDep
) -> ZonePublic:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        changes.pop("name")
    return _zone(await topo.update_zone(session, p, zone_id, changes))


@router.delete("/zones/{zone_id}", status_code=204, tags=["topology"])
async def delete_zone(
    zone_id: str, p: OperatorDep, session: SessionDep, force: Force = False
) -> Response:
    await topo.delete_zone(session, p, zone_id, force=force)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- placement


def _location(d: Device) -> LocationPublic:
    return LocationPublic.model_validate(topo.location_view(d))


@router.put("/devices/{device_id}/location", tags=["topology"])
async def place_device(
    device_id: str, body: LocationUpdate, p: OperatorDep, session: SessionDep, state: StateDep
) -> LocationPublic:
    """Put a device in a rack slot (``rack_id`` + ``slot_u``) and/or a zone (``zone_id``);
    a field given as null clears it, a field left out is kept."""
    device = await topo.place_device(session, p, device_id, body.model_dump(exclude_unset=True))
    state.bus.publish(p.tenant_id, "device.location", topo.location_view(device))
    return _location(device)


@router.delete("/devices/{device_id}/location", tags=["topology"])
async def clear_device_location(
    device_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> LocationPublic:
    """Take a device out of its rack slot and zone."""
    device = await topo.clear_location(session, p, device_id)
    state.bus.publish(p.tenant_id, "device.location", topo.location_view(device))
    return _location(device)
