"""``/devices/{id}/quarantine`` and ``/devices/{id}/release`` (admin): cut a device off the
device channel and let it back. Its live session ends through the hub (bus event here,
the hub's sweep on other replicas)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from wrale.fleet.brain.channel import quarantine as service
from wrale.user.api.deps import AdminDep, SessionDep, StateDep
from wrale.user.api.routes.devices import device_public
from wrale.user.api.schemas.common import Strict
from wrale.user.api.schemas.registry import PRINTABLE, DevicePublic

router = APIRouter(tags=["devices"])

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=PRINTABLE)]


class QuarantineRequest(Strict):
    reason: Reason = Field(description="why; shown to operators and in the device's Goodbye")


class ReleaseRequest(Strict):
    note: Reason | None = None


@router.post("/devices/{device_id}/quarantine")
async def quarantine_device(
    device_id: str, body: QuarantineRequest, p: AdminDep, session: SessionDep, state: StateDep
) -> DevicePublic:
    """Quarantine the device (admin): refused at connect and disconnected now, until
    released. 409 if already quarantined or decommissioned."""
    device, _ = await service.quarantine(session, p, device_id, body.reason, state.bus)
    return device_public(device)


@router.post("/devices/{device_id}/release")
async def release_device(
    device_id: str,
    p: AdminDep,
    session: SessionDep,
    state: StateDep,
    body: ReleaseRequest | None = None,
) -> DevicePublic:
    """End the quarantine (admin); the device may connect again. 409 if not quarantined."""
    device = await service.release(session, p, device_id, body.note if body else None, state.bus)
    return device_public(device)
