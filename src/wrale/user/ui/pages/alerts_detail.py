"""One alert: its page with its history, and the operator's actions on it (acknowledge,
assign, clear), answered with the changed row or panel for htmx, else back where they came from.
Registered after the rule editor's routes, so ``/alerts/rules`` is never taken for an alert id."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models.alerts import Alert, AlertRule
from wrale.fleet.brain.services import alerts
from wrale.shared.errors import InvalidRequestError
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.alerts_common import (
    NOTE_MAX,
    alert_rows,
    form_str,
    safe_next,
    user_names,
    user_options,
)
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)


# ----------------------------------------------------------------------------- one alert


async def _detail_context(session: AsyncSession, viewer: Viewer, a: Alert) -> dict[str, Any]:
    [row] = await alert_rows(session, viewer, [a])
    events = [alerts.event_view(e) for e in await alerts.history(session, a.id)]
    actors = await user_names(
        session,
        viewer.tenant_id,
        (m.group(1) for e in events if (m := re.match(r"^assigned to (\w+)$", e["note"] or ""))),
    )
    for e in events:
        m = re.match(r"^assigned to (\w+)$", e["note"] or "")
        if m and m.group(1) in actors:
            e["note"] = f"assigned to {actors[m.group(1)]}"
    rule_exists = bool(
        a.rule_id
        and await session.scalar(
            select(AlertRule.id).where(
                AlertRule.id == a.rule_id, AlertRule.tenant_id == viewer.tenant_id
            )
        )
    )
    return {
        "a": row,
        "history": events,
        "rule_exists": rule_exists,
        "users": await user_options(session, viewer.tenant_id) if viewer.can_operate else [],
    }


@router.get("/alerts/{alert_id}")
async def alert_detail(
    request: Request, alert_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    a = await alerts.get_alert(session, viewer.tenant_id, alert_id)
    return render(request, "alerts/detail.html", await _detail_context(session, viewer, a))


async def _after_action(
    request: Request, session: AsyncSession, viewer: Viewer, a: Alert, form: FormData
) -> Response:
    """htmx: the changed row (or the detail panel); a plain form: back where it came from."""
    if not is_htmx(request):
        target = safe_next(form_str(form, "next", 2000), f"/alerts/{a.id}")
        return Response(status_code=303, headers={"Location": target})
    if form_str(form, "view") == "detail":
        ctx = await _detail_context(session, viewer, a)
        return render(request, "alerts/_detail.html", ctx)
    [row] = await alert_rows(session, viewer, [a])
    users = await user_options(session, viewer.tenant_id)
    return render(request, "alerts/_row.html", {"a": row, "users": users, "changed": True})


def _note(form: FormData) -> str | None:
    note = form_str(form, "note", NOTE_MAX + 1).strip()
    if len(note) > NOTE_MAX:
        raise InvalidRequestError(f"note: at most {NOTE_MAX} characters")
    return note or None


@router.post("/alerts/{alert_id}/ack")
async def alert_ack(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    a = await alerts.acknowledge(session, viewer.principal, alert_id, _note(form), state.bus)
    return await _after_action(request, session, viewer, a, form)


@router.post("/alerts/{alert_id}/assign")
async def alert_assign(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    user_id = form_str(form, "user_id", 32).strip() or None
    a = await alerts.assign(session, viewer.principal, alert_id, user_id, state.bus)
    return await _after_action(request, session, viewer, a, form)


@router.post("/alerts/{alert_id}/clear")
async def alert_clear(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    a = await alerts.clear(session, viewer.principal, alert_id, _note(form), state.bus)
    return await _after_action(request, session, viewer, a, form)
