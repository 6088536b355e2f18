"""The maintenance page ``/maintenance``: the queue (one visit per rack, most urgent first,
each board with its worn parts and their "replace before" dates, and the maintenance rules'
open tasks), the rules (``maintenance_rules``) and the maintenance windows (everyone reads;
operators create them with a form and delete them). Windows go through
``services.maintenance.windows`` (same checks, roles and audit as the API), the queue
through ``services.maintenance.wear`` with the open tasks merged in as the API does
(``services.maintenance.queue_tasks``); nothing is kept in the process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.wear import BoardWear, RackVisit
from wrale.fleet.brain.models import Site
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.maintenance import MaintenanceWindow
from wrale.fleet.brain.services.maintenance import tasks, wear, windows
from wrale.fleet.brain.services.maintenance.queue_tasks import merge_tasks
from wrale.fleet.brain.services.maintenance.tasks import PlacedTask
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.ui.pages.maintenance_form import (
    BLANK,
    FIELDS,
    FLAGS,
    SCOPES,
    conditions_text,
    duration_text,
    field_of,
    form_values,
    window_body,
)
from wrale.user.ui.pages.maintenance_rules_view import rules_ctx
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

PART_NAMES = {
    "fan_wear": "fan (bearing wear)",
    "dust": "heatsink (dust)",
    "battery_fade": "battery (fading)",
    "emmc": "eMMC storage (flash wear)",
}


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


async def _choices(session: AsyncSession, tenant_id: str) -> dict[str, list[tuple[str, str]]]:
    """The sites and groups a window may cover: [(id, name)] by name."""
    out: dict[str, list[tuple[str, str]]] = {}
    for scope, model in (("site", Site), ("group", Group)):
        rows = await session.execute(
            select(model.id, model.name).where(model.tenant_id == tenant_id).order_by(model.name)
        )
        out[scope] = [(str(i), str(n)) for i, n in rows.all()]
    return out


def window_rows(
    found: Sequence[MaintenanceWindow], choices: Mapping[str, Sequence[tuple[str, str]]]
) -> list[dict[str, Any]]:
    names = {i: n for pairs in choices.values() for i, n in pairs}
    return [
        {
            "w": w,
            "scope_name": "the whole fleet"
            if w.scope == "fleet"
            else f"{w.scope} {names.get(w.scope_id or '', w.scope_id or '?')}",
            "duration": duration_text(w.duration_s),
            "conditions": conditions_text(w.conditions or {}),
        }
        for w in found
    ]


def _part(t: Any) -> dict[str, Any]:
    return {
        "kind": t.kind,
        "part": PART_NAMES.get(t.kind, t.kind),
        "wear_pct": t.wear_pct,
        "slope": t.slope_pct_per_day,
        "replace_before": t.replace_before,
        "earliest": t.replace_earliest,
        "latest": t.replace_latest,
    }


@dataclass
class BoardRow:
    """A board of a visit: its worn parts and the rules' open tasks on it."""

    device_id: str
    name: str
    due: float | None
    parts: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    throttled_days: int = 0
    under_voltage_days: int = 0


@dataclass
class VisitRow:
    site_id: str | None
    rack_id: str | None
    site: str | None
    rack: str | None
    due: float | None
    devices: list[BoardRow] = field(default_factory=list)


def visit_rows(
    visits: Sequence[RackVisit], names: Mapping[str, str], placed: Sequence[PlacedTask] = ()
) -> list[VisitRow]:
    """The queue as the page shows it: each visit with its boards, their worn parts and
    their open tasks (merged as the API's queue does)."""

    def board(b: BoardWear) -> BoardRow:
        return BoardRow(
            b.device_id,
            names.get(b.device_id, b.device_id),
            b.due,
            [_part(t) for t in b.worn],
            throttled_days=b.throttled_days,
            under_voltage_days=b.under_voltage_days,
        )

    def new_visit(pt: PlacedTask) -> VisitRow:
        return VisitRow(pt.site_id, pt.rack_id, pt.site_name, pt.rack_name, None)

    def new_board(pt: PlacedTask) -> BoardRow:
        return BoardRow(pt.device_id, pt.device_name or pt.device_id, None)

    rows = [
        VisitRow(
            v.site,
            v.rack,
            names.get(v.site, v.site) if v.site else None,
            names.get(v.rack, v.rack) if v.rack else None,
            v.due,
            [board(b) for b in v.boards],
        )
        for v in visits
    ]
    return merge_tasks(rows, placed, new_visit, new_board, dict)


def _form(
    viewer: Viewer, choices: Any, values: Mapping[str, str] | None = None, **more: Any
) -> Any:
    blank = dict.fromkeys(FIELDS, "") | BLANK | {"enabled": "on"}
    return {
        "wform": {
            "values": blank | dict(values or {}),
            "errors": more.get("errors", {}),
            "message": more.get("message", ""),
            "scopes": SCOPES,
            "choices": choices,
        },
        "can_edit": viewer.can_operate,
    }


async def page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    status_code: int = 200,
    rule: tuple[Mapping[str, str], Mapping[str, str], str] | None = None,
    **form: Any,
) -> Response:
    """The whole page; ``form`` (values, errors, message) refills the window form and
    ``rule`` (values, errors, message) the rule form after a refusal."""
    now = time.time()
    q = await wear.queue(session, viewer.tenant_id, now)
    boards = [b for v in q.visits for b in v.boards]
    names = await wear.names(session, viewer.tenant_id, boards)
    choices = await _choices(session, viewer.tenant_id)
    found = await windows.list_windows(session, viewer.tenant_id)
    ctx: dict[str, Any] = {
        "now": now,
        "visits": visit_rows(q.visits, names, await tasks.queue_tasks(session, viewer.tenant_id)),
        "boards_read": q.boards_read,
        "truncated": q.truncated,
        "window_rows": window_rows(found, choices),
        "flags": FLAGS,
    }
    ctx |= await rules_ctx(session, viewer, *(rule or ()))
    ctx |= _form(viewer, choices, form.pop("values", None), **form)
    return render(request, "maintenance/index.html", ctx, status_code=status_code)


@router.get("/maintenance")
async def maintenance_page(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """The maintenance queue and the windows; operators add and delete windows here."""
    return await page(request, session, viewer)


@router.post("/maintenance/windows")
async def window_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    values = form_values(await request.form())
    errors: dict[str, str] = {}
    try:
        await windows.create_window(session, viewer.principal, window_body(values))
    except (InvalidRequestError, NotFoundError) as exc:
        errors[field_of(exc, values.get("scope", ""))] = exc.message
    else:
        return redirect(request, "/maintenance")
    await session.rollback()  # nothing of a refused form is kept
    message = errors.pop("form", "") or "The window was not created: correct the field marked."
    if is_htmx(request):
        choices = await _choices(session, viewer.tenant_id)
        ctx = _form(viewer, choices, values, errors=errors, message=message)
        return render(request, "maintenance/_form.html", ctx, status_code=422)
    return await page(
        request, session, viewer, values=values, errors=errors, message=message, status_code=422
    )


@router.post("/maintenance/windows/{window_id}/delete")
async def window_delete(
    request: Request, viewer: OperatorDep, session: SessionDep, window_id: str
) -> Response:
    await windows.delete_window(session, viewer.principal, window_id)
    return redirect(request, "/maintenance")
