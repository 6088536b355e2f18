"""The dashboard's device page ``/devices/<id>``: identity and location, live gauges, charts
(with the ``/series`` JSON they draw), twin with the fan forms, commands, diagnostics,
events, alerts and audit trail. Each section is also an htmx fragment the page refreshes
when the live stream says this device changed. The sections are built in
``device_sections`` (gauges and charts in ``device_panels``); the writes are routes of
``device_actions``, each through a brain service.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from wrale.fleet.brain.services import twin as twin_svc
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.device_panels import build_series
from wrale.user.ui.pages.device_sections import (
    BASE,
    alerts_ctx,
    audit_ctx,
    commands_ctx,
    diagnostics_ctx,
    events_ctx,
    fragment_only,
    hex_or_none,
    identity_ctx,
    owned_device,
    page_ctx,
    section,
    twin_ctx,
)
from wrale.user.ui.web import SessionDep, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

# ----------------------------------------------------------------------------- routes


@router.get(BASE)
async def device_page(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    state: StateDep,
    events_before: Annotated[str | None, Query(max_length=64)] = None,
    commands_before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    device = await owned_device(session, viewer, device_id)
    ctx = await page_ctx(
        session,
        viewer,
        device,
        state.bus,
        events_before=hex_or_none(events_before),
        commands_before=hex_or_none(commands_before),
    )
    return render(request, "device/page.html", ctx)


@router.get(BASE + "/series")
async def device_series(
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    rng: Annotated[str, Query(alias="range", max_length=8)] = "1h",
) -> JSONResponse:
    """The charts' data for ``range`` (1h, 6h, 24h, 7d) as JSON."""
    device = await owned_device(session, viewer, device_id)
    data = await build_series(session, device, rng, time.time())
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get(BASE + "/identity")
async def identity_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep, state: StateDep
) -> Response:
    if (away := fragment_only(request, device_id, "identity")) is not None:
        return away
    device = await owned_device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    return section(request, "identity", {**await identity_ctx(session, device, t)})


@router.get(BASE + "/twin")
async def twin_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep, state: StateDep
) -> Response:
    if (away := fragment_only(request, device_id, "twin")) is not None:
        return away
    device = await owned_device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    return section(request, "twin", {"device": device, **twin_ctx(t)})


@router.get(BASE + "/commands")
async def commands_fragment(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    state: StateDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not is_htmx(request):
        where = f"?commands_before={hex_or_none(before)}" if hex_or_none(before) else ""
        return Response(
            status_code=303, headers={"Location": f"/devices/{device_id}{where}#commands"}
        )
    device = await owned_device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    ctx = await commands_ctx(session, viewer, device, t, before=hex_or_none(before))
    return section(request, "commands", {"device": device, **ctx})


@router.get(BASE + "/diagnostics")
async def diagnostics_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := fragment_only(request, device_id, "diagnostics")) is not None:
        return away
    device = await owned_device(session, viewer, device_id)
    return section(
        request, "diagnostics", {"device": device, **await diagnostics_ctx(session, device)}
    )


@router.get(BASE + "/events")
async def events_fragment(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not is_htmx(request):
        where = f"?events_before={hex_or_none(before)}" if hex_or_none(before) else ""
        return Response(
            status_code=303, headers={"Location": f"/devices/{device_id}{where}#events"}
        )
    device = await owned_device(session, viewer, device_id)
    ctx = await events_ctx(session, device, hex_or_none(before))
    return section(request, "events", {"device": device, **ctx})


@router.get(BASE + "/alerts")
async def alerts_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := fragment_only(request, device_id, "alerts")) is not None:
        return away
    device = await owned_device(session, viewer, device_id)
    return section(request, "alerts", {"device": device, **await alerts_ctx(session, device)})


@router.get(BASE + "/audit")
async def audit_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := fragment_only(request, device_id, "audit")) is not None:
        return away
    device = await owned_device(session, viewer, device_id)
    return section(request, "audit", {"device": device, **await audit_ctx(session, device)})
