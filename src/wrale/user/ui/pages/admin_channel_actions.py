"""The notification channels page's writes (admins only): create, change, test and delete
a channel through ``services.notify`` (which checks the role, the config and the egress
policy, and writes the audit entry). A refused form comes back with the error at its field
and nothing saved."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.services import notify, notify_route
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.notify_types import SendContext
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.api.deps import StateDep
from wrale.user.api.schemas.alerts import ChannelCreate
from wrale.user.ui.pages.admin import redirect, schema_errors, service_error, valid_id
from wrale.user.ui.pages.admin_channels import (
    FORM_FIELDS,
    ChannelForm,
    channel_row,
    channels_context,
    error_field,
    form_context,
)
from wrale.user.ui.web import AdminDep, SessionDep, Viewer, is_htmx, render

router = APIRouter(include_in_schema=False)

MESSAGES = {
    "name": "Give the channel a name of 1 to 100 characters.",
    "type": "Choose webhook, e-mail or chat.",
}


def _place(exc: Exception, errors: dict[str, str]) -> str | None:
    """Put a service error at its form field; the form-level message when it has none."""
    _, text = service_error(exc, FORM_FIELDS)
    field = getattr(exc, "details", {}).get("field")
    name = error_field(field)
    if field and text.lower().startswith(f"{field}: "):  # "config.host: …" → "…"
        text = text[len(field) + 2 :]
        text = text[:1].upper() + text[1:]
    if isinstance(exc, ConflictError) and "named" in text:
        name = "name"
    if name:
        errors[name] = text
        return None
    return text


async def _refused(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    f: ChannelForm,
    errors: dict[str, str],
    form_error: str | None,
    channel: dict[str, Any] | None,
) -> Response:
    await session.rollback()
    form_error = form_error or "The channel was not saved: correct the fields marked below."
    ctx = {
        "tab": "channels",
        **form_context(f, channel=channel, errors=errors, form_error=form_error),
    }
    if is_htmx(request):
        return render(request, "admin/_channel_form.html", ctx, status_code=422)
    if channel is None:
        ctx.update(notice=None, **await channels_context(session, viewer))
        return render(request, "admin/channels.html", ctx, status_code=422)
    return render(request, "admin/channel_edit.html", ctx, status_code=422)


@router.post("/admin/channels")
async def channel_create(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    f = ChannelForm.of(await request.form())
    config = f.config(editing=False)
    body, errors = schema_errors(
        ChannelCreate, {"name": f.name, "type": f.type, "config": config}, MESSAGES
    )
    form_error = None
    if not errors and isinstance(body, ChannelCreate):
        try:
            await notify.create_channel(
                session,
                viewer.principal,
                body.name,
                body.type,
                config,
                f.enabled,
                egress=EgressPolicy.from_settings(state.settings),
            )
        except (InvalidRequestError, ConflictError) as exc:
            form_error = _place(exc, errors)
        else:
            return redirect(request, f"/admin/channels?created={f.name}")
    return await _refused(request, session, viewer, f, errors, form_error, None)


@router.post("/admin/channels/{channel_id}")
async def channel_update(
    channel_id: str, request: Request, viewer: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    c = await notify.get_channel(
        session, viewer.tenant_id, valid_id(channel_id, "notification channel")
    )
    shown = channel_row(c)
    f = ChannelForm.of(await request.form())
    f.type = c.type  # a channel keeps its type
    _, errors = schema_errors(
        ChannelCreate, {"name": f.name, "type": c.type, "config": {}}, MESSAGES
    )
    form_error = None
    if not errors:
        try:
            await notify.update_channel(
                session,
                viewer.principal,
                c.id,
                name=f.name,
                config=f.config(editing=True),
                enabled=f.enabled,
                egress=EgressPolicy.from_settings(state.settings),
            )
        except (InvalidRequestError, ConflictError) as exc:
            form_error = _place(exc, errors)
        else:
            return redirect(request, f"/admin/channels?updated={f.name}")
    return await _refused(request, session, viewer, f, errors, form_error, shown)


@router.post("/admin/channels/{channel_id}/test")
async def channel_test(
    channel_id: str, request: Request, viewer: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    """Send one test notification now; the row says whether it was delivered."""
    settings = state.settings
    egress = EgressPolicy.from_settings(settings)
    cid = valid_id(channel_id, "notification channel")
    async with egress.client() as http:
        ctx = SendContext(http, egress, getattr(settings, "public_url", None))
        error = await notify_route.send_test(session, viewer.principal, cid, ctx)
    c = await notify.get_channel(session, viewer.tenant_id, cid)
    note = f"Test notification sent through {c.name}." if error is None else None
    if not is_htmx(request):
        return redirect(request, "/admin/channels")
    headers = {"HX-Trigger": json.dumps({"wrale-notice": note})} if note else None
    result = {"ok": error is None, "error": error}
    return render(
        request,
        "admin/_channel_row.html",
        {"ch": channel_row(c), "test_result": result},
        headers=headers,
    )


@router.post("/admin/channels/{channel_id}/delete")
async def channel_delete(
    channel_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    cid = valid_id(channel_id, "notification channel")
    c = await notify.get_channel(session, viewer.tenant_id, cid)
    name = c.name
    await notify.delete_channel(session, viewer.principal, cid)
    if not is_htmx(request):
        return redirect(request, "/admin/channels")
    headers = {"HX-Trigger": json.dumps({"wrale-notice": f"Channel {name} deleted."})}
    return Response(status_code=200, headers=headers)
