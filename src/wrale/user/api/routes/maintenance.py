"""``/maintenance/windows`` and ``/devices/{id}/maintenance`` (``docs/maintenance.md``):
maintenance windows per fleet, site or group (everyone reads, operators write) and whether
disruptive work may happen on a board now, with the reason and the next opening."""

from __future__ import annotations

from fastapi import APIRouter, Response

from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.maintenance import MaintenanceWindow
from wrale.fleet.brain.services.maintenance import windows
from wrale.user.api.deps import OperatorDep, SessionDep, ViewerDep
from wrale.user.api.schemas.maintenance import (
    DeviceMaintenance,
    WindowCreate,
    WindowPublic,
    WindowUpdate,
)

router = APIRouter(tags=["maintenance"])


def _public(w: MaintenanceWindow) -> WindowPublic:
    return WindowPublic.model_validate(windows.window_view(w))


@router.get("/maintenance/windows")
async def list_windows(p: ViewerDep, session: SessionDep) -> list[WindowPublic]:
    """The organisation's maintenance windows (at most 200), oldest first."""
    return [_public(w) for w in await windows.list_windows(session, p.tenant_id)]


@router.post("/maintenance/windows", status_code=201)
async def create_window(body: WindowCreate, p: OperatorDep, session: SessionDep) -> WindowPublic:
    """A window: its cron expression and duration in its time zone, its scope (fleet, a
    site or a group) and its conditions. Disruptive commands to the boards it covers wait
    for it (422 names the field that is wrong)."""
    data = body.model_dump(exclude_none=True)
    data["conditions"] = body.conditions.model_dump(exclude_none=True)
    return _public(await windows.create_window(session, p, data))


@router.get("/maintenance/windows/{window_id}")
async def get_window(window_id: str, p: ViewerDep, session: SessionDep) -> WindowPublic:
    return _public(await windows.get_window(session, p.tenant_id, window_id))


@router.patch("/maintenance/windows/{window_id}")
async def update_window(
    window_id: str, body: WindowUpdate, p: OperatorDep, session: SessionDep
) -> WindowPublic:
    """Change the fields given; ``scope_id`` may be set to null only with scope fleet."""
    changes = body.model_dump(exclude_unset=True)
    if body.conditions is not None:
        changes["conditions"] = body.conditions.model_dump(exclude_none=True)
    return _public(await windows.update_window(session, p, window_id, changes))


@router.delete("/maintenance/windows/{window_id}", status_code=204)
async def delete_window(window_id: str, p: OperatorDep, session: SessionDep) -> Response:
    await windows.delete_window(session, p, window_id)
    return Response(status_code=204)


@router.get("/devices/{device_id}/maintenance")
async def device_maintenance(
    device_id: str, p: ViewerDep, session: SessionDep
) -> DeviceMaintenance:
    """Whether disruptive commands go to the board now (no window applies, or one is open
    with all its conditions), why not, each window's state and the next opening."""
    status = await windows.device_status(session, p.tenant_id, device_id, wall_now())
    return DeviceMaintenance.model_validate(status)
