"""``/devices/{id}/twin``: the device's desired and reported state with their versions and
diff (everyone reads), and merge-patch writes of its explicit desired values under a
version precondition (operators; the tamper and security sections admins, and none of
tamper, security, fan or gpio while the device reports a tamper lockdown)."""

from __future__ import annotations

from fastapi import APIRouter

from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import twin
from wrale.user.api.deps import OperatorDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.twin import TwinPatch, TwinPublic

router = APIRouter(tags=["twin"])


def twin_public(t: DeviceTwin) -> TwinPublic:
    return TwinPublic.model_validate(twin.twin_view(t))


@router.get("/devices/{device_id}/twin")
async def get_twin(
    device_id: str, p: ViewerDep, session: SessionDep, state: StateDep
) -> TwinPublic:
    """Desired (composed from the effective policies and the explicit values) and
    reported documents, what the device rejected, and the per-path difference."""
    return twin_public(await twin.get_twin(session, p.tenant_id, device_id, state.bus))


@router.patch("/devices/{device_id}/twin")
async def patch_twin(
    device_id: str, body: TwinPatch, p: OperatorDep, session: SessionDep, state: StateDep
) -> TwinPublic:
    """Merge-patch the explicit desired values (RFC 7386: ``null`` removes). ``version``
    must be the desired version you read, else 409 with the current one. Changing the
    ``tamper`` or ``security`` section needs the admin role (403); while the device reports
    a tamper lockdown, ``tamper``, ``security``, ``fan`` and ``gpio`` do not change (409
    ``lockdown``: lift it with the admin-only ``disarm`` command)."""
    patch = body.desired.model_dump(exclude_unset=True)
    t = await twin.patch_twin(session, p, device_id, body.version, patch, state.bus)
    return twin_public(t)
