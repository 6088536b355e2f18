"""Physical topology: sites → rooms → racks → slots, zones, device placement and rack power.

Placement is validated (rack in the tenant, slot within its units, slot free); every change
is audited. Raises domain errors only; knows nothing of HTTP.

This module holds device placement and is the entry point callers import from: reads and
views live in ``topology_views``, changes to sites, rooms, racks and zones in
``topology_changes``; their public names are re-exported here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Zone
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.topology_changes import MAX_UNITS as MAX_UNITS
from wrale.fleet.brain.services.topology_changes import create_rack as create_rack
from wrale.fleet.brain.services.topology_changes import create_room as create_room
from wrale.fleet.brain.services.topology_changes import create_site as create_site
from wrale.fleet.brain.services.topology_changes import create_zone as create_zone
from wrale.fleet.brain.services.topology_changes import delete_rack as delete_rack
from wrale.fleet.brain.services.topology_changes import delete_room as delete_room
from wrale.fleet.brain.services.topology_changes import delete_site as delete_site
from wrale.fleet.brain.services.topology_changes import delete_zone as delete_zone
from wrale.fleet.brain.services.topology_changes import flush as flush
from wrale.fleet.brain.services.topology_changes import update_rack as update_rack
from wrale.fleet.brain.services.topology_changes import update_room as update_room
from wrale.fleet.brain.services.topology_changes import update_site as update_site
from wrale.fleet.brain.services.topology_changes import update_zone as update_zone
from wrale.fleet.brain.services.topology_views import RackPower as RackPower
from wrale.fleet.brain.services.topology_views import get as get
from wrale.fleet.brain.services.topology_views import location_view as location_view
from wrale.fleet.brain.services.topology_views import rack_power as rack_power
from wrale.fleet.brain.services.topology_views import rack_view as rack_view
from wrale.fleet.brain.services.topology_views import room_view as room_view
from wrale.fleet.brain.services.topology_views import site_view as site_view
from wrale.fleet.brain.services.topology_views import tree as tree
from wrale.fleet.brain.services.topology_views import zone_view as zone_view
from wrale.shared.errors import ConflictError, InvalidRequestError

# ----------------------------------------------------------------------------- placement


async def place_device(
    session: AsyncSession, p: Principal, device_id: str, changes: dict[str, Any]
) -> Device:
    """Set a device's rack slot and/or zone. Keys present in ``changes`` are set (``None``
    clears); ``rack_id`` and ``slot_u`` go together."""
    p.require(Role.OPERATOR, "placing devices")
    device = await get(session, Device, p.tenant_id, device_id, "device")
    if not changes:
        raise InvalidRequestError("give rack_id and slot_u, and/or zone_id")
    before = location_view(device)
    if "rack_id" in changes or "slot_u" in changes:
        rack_id, slot_u = changes.get("rack_id"), changes.get("slot_u")
        if (rack_id is None) != (slot_u is None):
            raise InvalidRequestError(
                "rack_id and slot_u go together (both set to place, both null to unplace)"
            )
        if rack_id is not None and slot_u is not None:
            await _check_slot(session, p.tenant_id, device, rack_id, slot_u)
        device.rack_id, device.slot_u = rack_id, slot_u
    if "zone_id" in changes:
        if changes["zone_id"] is not None:
            await get(session, Zone, p.tenant_id, changes["zone_id"], "zone")
        device.zone_id = changes["zone_id"]
    if before != location_view(device):
        audit.record(
            session,
            p,
            "device.place",
            resource_type="device",
            resource_id=device.id,
            before=before,
            after=location_view(device),
        )
    await flush(session)
    return device


async def _check_slot(
    session: AsyncSession, tenant_id: str, device: Device, rack_id: str, slot_u: int
) -> None:
    rack = await get(session, Rack, tenant_id, rack_id, "rack")
    if not 1 <= slot_u <= rack.units:
        raise InvalidRequestError(
            f"slot_u: rack {rack.name!r} has slots 1 to {rack.units}; {slot_u} is outside",
            field="slot_u",
            units=rack.units,
        )
    occupant = await session.scalar(
        select(Device).where(
            Device.rack_id == rack.id, Device.slot_u == slot_u, Device.id != device.id
        )
    )
    if occupant is not None:
        raise ConflictError(
            f"slot {slot_u} of rack {rack.name!r} is taken by device {occupant.name!r} "
            f"({occupant.id})",
            occupant_id=occupant.id,
            occupant_name=occupant.name,
        )


async def clear_location(session: AsyncSession, p: Principal, device_id: str) -> Device:
    return await place_device(
        session, p, device_id, {"rack_id": None, "slot_u": None, "zone_id": None}
    )
