"""The dashboard's Alerts pages: alerts by state, filtered and paged (this module), the
alert-rule editor (``alerts_rules``, its writes in ``alerts_rule_actions``, its form checked
field by field with the brain's own rule checks in ``alerts_rule_form`` before
``services.alerts`` saves it) and one alert with its history, acknowledged, assigned or
cleared (``alerts_detail``). Reads only what one page shows; never writes directly."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.services.alert_rules import SEVERITIES
from wrale.user.ui.pages.alerts_common import (
    PAGE_SIZE,
    STATES,
    alert_rows,
    find_device,
    like_pattern,
    rack_options,
    user_options,
)
from wrale.user.ui.web import SessionDep, Viewer, ViewerDep, page_number, render

router = APIRouter(include_in_schema=False)


# ----------------------------------------------------------------------------- alert list


@dataclass(frozen=True)
class AlertFilters:
    """The list's query: a tab (state), filters, and the page number."""

    state: str = "active"
    severity: str = ""
    device: str = ""  # as typed: a device's name or id
    rack: str = ""
    page: int = 1

    @classmethod
    def parse(
        cls,
        state: str | None,
        severity: str | None,
        device: str | None,
        rack: str | None,
        page: str | None,
    ) -> AlertFilters:
        sev = (severity or "").upper()
        return cls(
            state=state if state in STATES else "active",
            severity=sev if sev in SEVERITIES else "",
            device=(device or "").strip()[:100],
            rack=(rack or "").strip()[:32],
            page=page_number(page),
        )

    def query(self, **change: Any) -> str:
        f = replace(self, **change)
        params = {
            "state": f.state,
            "severity": f.severity,
            "device": f.device,
            "rack": f.rack,
            "page": f.page if f.page > 1 else "",
        }
        return urlencode({k: v for k, v in params.items() if v})


async def _table_context(session: AsyncSession, viewer: Viewer, f: AlertFilters) -> dict[str, Any]:
    tenant = viewer.tenant_id
    where: list[ColumnElement[bool]] = [Alert.tenant_id == tenant]
    unknown_device = False
    if f.severity:
        where.append(Alert.severity == f.severity)
    if f.device:
        device_id = await find_device(session, tenant, f.device)
        unknown_device = device_id is None
        where.append(Alert.device_id == (device_id or "-"))
    if f.rack:
        where.append(Alert.rack_id == f.rack)
    grouped = await session.execute(
        select(Alert.state, func.count()).where(*where).group_by(Alert.state)
    )
    counts = dict.fromkeys(STATES, 0) | {s: int(n) for s, n in grouped.all()}
    total = counts.get(f.state, 0)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    f = replace(f, page=min(f.page, pages))
    rows = await session.scalars(
        select(Alert)
        .where(*where, Alert.state == f.state)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(PAGE_SIZE)
        .offset((f.page - 1) * PAGE_SIZE)
    )
    return {
        "f": f,
        "states": STATES,
        "counts": counts,
        "total": total,
        "pages": pages,
        "first": (f.page - 1) * PAGE_SIZE + 1,
        "unknown_device": unknown_device,
        "rows": await alert_rows(session, viewer, list(rows)),
        "users": await user_options(session, tenant) if viewer.can_operate else [],
    }


@router.get("/alerts")
async def alert_list(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    state: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    rack: str | None = None,
    page: str | None = None,
) -> Response:
    f = AlertFilters.parse(state, severity, device, rack, page)
    ctx = await _table_context(session, viewer, f)
    ctx.update(severities=SEVERITIES, racks=await rack_options(session, viewer.tenant_id))
    return render(request, "alerts/index.html", ctx)


@router.get("/alerts/_table")
async def alert_table(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    state: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    rack: str | None = None,
    page: str | None = None,
) -> Response:
    """The tabs, table and pager (refreshed live on alert events)."""
    f = AlertFilters.parse(state, severity, device, rack, page)
    return render(request, "alerts/_table.html", await _table_context(session, viewer, f))


@router.get("/alerts/_devices")
async def device_options(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    device: str | None = None,
    scope_id: str | None = None,
) -> Response:
    """A datalist of up to 20 device names containing what was typed (device filter, scope)."""
    typed = (device if device is not None else scope_id or "").strip()[:100]
    list_id = "device-options" if device is not None else "scope-options"
    names: list[str] = []
    if typed:
        rows = await session.scalars(
            select(Device.name)
            .where(
                Device.tenant_id == viewer.tenant_id, Device.name.ilike(like_pattern(typed), "\\")
            )
            .order_by(Device.name)
            .limit(20)
        )
        names = list(rows)
    return render(request, "alerts/_device_options.html", {"list_id": list_id, "names": names})
