"""``/devices``: the registry (list with filters, read, pre-register, edit, status,
delete) and each device's credentials (list, rotate, revoke). Placement is topology's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import enrollment, registry
from wrale.user.api.broker_accounts import bar_broker, provision_broker
from wrale.user.api.deps import (
    AdminDep,
    OperatorDep,
    PageDep,
    PrincipalDep,
    SessionDep,
    StateDep,
)
from wrale.user.api.schemas.common import Page, page_of
from wrale.user.api.schemas.registry import (
    ID,
    PRINTABLE,
    Capability,
    CredentialIssued,
    CredentialPublic,
    CredentialRotate,
    CredentialsRevoked,
    DeviceCreate,
    DevicePublic,
    DeviceStatusChange,
    DeviceUpdate,
    Status,
    Tag,
)

router = APIRouter(tags=["devices"])


def device_public(d: Device) -> DevicePublic:
    return DevicePublic.model_validate(registry.device_view(d))


@router.get("/devices")
async def list_devices(
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    status: Annotated[list[Status] | None, Query(description="any of (repeatable)")] = None,
    tag: Annotated[list[Tag] | None, Query(description="all of (repeatable)")] = None,
    capability: Annotated[list[Capability] | None, Query(description="all of")] = None,
    model: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    rack_id: Annotated[str | None, Query(pattern=ID)] = None,
    zone_id: Annotated[str | None, Query(pattern=ID)] = None,
    q: Annotated[
        str | None,
        Query(max_length=100, pattern=PRINTABLE.replace("+", "*"), description="name contains"),
    ] = None,
) -> Page[DevicePublic]:
    """The organisation's devices, oldest first, filtered."""
    flt = registry.DeviceFilter(
        status=status or (),
        tags=tag or (),
        capability=capability or (),
        model=model,
        rack_id=rack_id,
        zone_id=zone_id,
        q=q,
    )
    rows = await registry.list_devices(
        session, p.tenant_id, flt, after_id=page.after, limit=page.limit + 1
    )
    return page_of(rows, page, device_public)


@router.post("/devices", status_code=201)
async def create_device(body: DeviceCreate, p: OperatorDep, session: SessionDep) -> DevicePublic:
    """Pre-register a device without enrollment (operator); rotate in a credential to let
    it connect."""
    fields: dict[str, Any] = body.model_dump(exclude_none=True)
    return device_public(await registry.create_device(session, p, **fields))


@router.get("/devices/{device_id}")
async def get_device(device_id: str, p: PrincipalDep, session: SessionDep) -> DevicePublic:
    return device_public(await registry.get_device(session, p.tenant_id, device_id))


@router.patch("/devices/{device_id}")
async def update_device(
    device_id: str, body: DeviceUpdate, p: OperatorDep, session: SessionDep
) -> DevicePublic:
    """Change name, model, hardware profile, tags or capabilities (operator)."""
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        del changes["name"]  # a device always has a name: null leaves it
    for key in ("tags", "capabilities"):
        if key in changes and changes[key] is None:
            changes[key] = []
    return device_public(await registry.update_device(session, p, device_id, changes))


@router.post("/devices/{device_id}/status")
async def change_status(
    device_id: str, body: DeviceStatusChange, p: OperatorDep, session: SessionDep, state: StateDep
) -> DevicePublic:
    """Maintenance, decommissioned, or back to unknown (operator)."""
    device = await registry.change_status(
        session, p, device_id, body.status, body.reason, state.bus
    )
    return device_public(device)


@router.delete("/devices/{device_id}", status_code=204)
async def delete_device(
    device_id: str, request: Request, p: AdminDep, session: SessionDep
) -> Response:
    """Delete the device and its credentials (admin). Decommissioning keeps the record."""
    await registry.delete_device(session, p, device_id)
    await bar_broker(request, device_id, delete=True)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- credentials


@router.get("/devices/{device_id}/credentials")
async def list_credentials(
    device_id: str, p: OperatorDep, session: SessionDep
) -> list[CredentialPublic]:
    """The device's credentials, without secrets (operator)."""
    rows = await enrollment.list_credentials(session, p, device_id)
    return [CredentialPublic.model_validate(enrollment.credential_view(c)) for c in rows]


@router.post("/devices/{device_id}/credentials/rotate", status_code=201)
async def rotate_credential(
    device_id: str,
    request: Request,
    p: OperatorDep,
    session: SessionDep,
    body: CredentialRotate | None = None,
) -> CredentialIssued:
    """A new secret, shown once; the previous ones end now or after ``grace_s``."""
    grace = body.grace_s if body is not None else 0.0
    cred, secret = await enrollment.rotate_credential(session, p, device_id, grace)
    await provision_broker(request, [(device_id, secret, cred.id)])
    return CredentialIssued(
        device_id=device_id,
        device_secret=secret,
        credential=CredentialPublic.model_validate(enrollment.credential_view(cred)),
    )


@router.post("/devices/{device_id}/credentials/revoke")
async def revoke_credentials(
    device_id: str, request: Request, p: OperatorDep, session: SessionDep
) -> CredentialsRevoked:
    """Revoke every credential of the device now (operator)."""
    count = await enrollment.revoke_credentials(session, p, device_id)
    await bar_broker(request, device_id)
    return CredentialsRevoked(device_id=device_id, revoked=count)
