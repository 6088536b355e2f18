"""Quarantine: an admin cuts a device off the channel (a board in tamper lockdown, a board
that behaves strangely) and later releases it. While quarantined the device is refused at
connect (Goodbye ``quarantined``, retry later) and its live session is ended; only an admin
ends it. Both are audited; the reason is kept until release.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.channel import DeviceQuarantine
from wrale.fleet.brain.services import audit, registry
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError


def quarantine_view(q: DeviceQuarantine | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {"reason": q.reason, "by": q.by, "at": q.at}


async def quarantine(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    reason: str,
    bus: EventBus | None,
) -> tuple[Device, DeviceQuarantine]:
    """Quarantine the device (admin): 409 if it already is, or is decommissioned."""
    p.require(Role.ADMIN, "quarantining devices")
    reason = reason.strip()
    if not reason:
        raise InvalidRequestError("reason: say why the device is quarantined")
    device = await registry.get_device(session, p.tenant_id, device_id)
    await registry.fresh_under_lock(session, device)  # before its quarantine row refers to it
    if device.status == "quarantined":
        raise ConflictError("the device is already quarantined")
    if device.status == "decommissioned":
        raise ConflictError("the device is decommissioned; it cannot connect anyway")
    previous = device.status
    q = await session.get(DeviceQuarantine, device.id)
    if q is not None:  # a leftover (cannot normally happen): replaced
        await session.delete(q)
        await session.flush()
    q = DeviceQuarantine(
        device_id=device.id, tenant_id=device.tenant_id, reason=reason, by=p.name, at=wall_now()
    )
    session.add(q)
    await registry.set_status(session, device, "quarantined", reason, bus, p)
    audit.record(
        session,
        p,
        "device.quarantine",
        resource_type="device",
        resource_id=device.id,
        before={"status": previous},
        after={"status": device.status, "quarantine": quarantine_view(q)},
        details={"reason": reason},
    )
    return device, q


async def release(
    session: AsyncSession, p: Principal, device_id: str, note: str | None, bus: EventBus | None
) -> Device:
    """End the quarantine (admin): the device may connect again (status ``unknown`` until
    it does). 409 if it is not quarantined."""
    p.require(Role.ADMIN, "releasing quarantined devices")
    device = await registry.get_device(session, p.tenant_id, device_id)
    if device.status != "quarantined":
        raise ConflictError(f"the device is not quarantined (it is {device.status})")
    q = await session.get(DeviceQuarantine, device.id)
    before = quarantine_view(q)
    if q is not None:
        await session.delete(q)
    await registry.set_status(
        session, device, "unknown", note or "released from quarantine", bus, p
    )
    audit.record(
        session,
        p,
        "device.release",
        resource_type="device",
        resource_id=device.id,
        before={"status": "quarantined", "quarantine": before},
        after={"status": device.status},
        details={"note": note} if note else None,
    )
    return device
